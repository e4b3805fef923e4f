// Package certreload serves a TLS certificate and key from files, as the
// tap's and the cache's listeners do, and picks up new files without a
// restart: a rotated pair is served on the next handshakes. It owns the
// reloading, not the listener.
package certreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate and key from files and picks up new ones
// without a restart: on a handshake at most every 5 seconds it looks at the
// files, and reloads them when either changed. A bad new pair is logged and
// the previous one kept. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size and modification time of both files
	lastCheck time.Time
}

// New loads the pair certFile and keyFile, and returns a Reloader serving
// it; log gets the outcome of later reloads.
func New(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, checkEvery: 5 * time.Second, log: log}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// Reload loads the pair now, as on a SIGHUP; on an error the previous pair
// stays.
func (r *Reloader) Reload() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %q and key %q: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert, r.stamp, r.lastCheck = &cert, stamp, time.Now()
	r.mu.Unlock()
	return nil
}

// GetCertificate is a tls.Config.GetCertificate: the current pair, after
// a reload if the files changed.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	due := time.Since(r.lastCheck) >= r.checkEvery
	if due {
		r.lastCheck = time.Now()
	}
	cert, stamp := r.cert, r.stamp
	r.mu.Unlock()
	if due {
		if now, err := r.fileStamp(); err == nil && now != stamp {
			if err := r.Reload(); err != nil {
				r.log.Error("keeping the previous TLS certificate", "err", err)
			} else {
				r.log.Info("reloaded TLS certificate", "cert", r.certFile)
				r.mu.Lock()
				cert = r.cert
				r.mu.Unlock()
			}
		}
	}
	return cert, nil
}
