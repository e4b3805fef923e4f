package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves a certificate and key from files and picks up new
// ones without a restart: on a handshake at most every checkEvery it looks
// at the files, and reloads them when either changed. A bad new pair is
// logged and the previous one kept.
type certReloader struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size and modification time of both files
	lastCheck time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, checkEvery: 5 * time.Second, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
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

// reload loads the pair now.
func (r *certReloader) reload() error {
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

// getCertificate is a tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	due := time.Since(r.lastCheck) >= r.checkEvery
	if due {
		r.lastCheck = time.Now()
	}
	cert, stamp := r.cert, r.stamp
	r.mu.Unlock()
	if due {
		if now, err := r.fileStamp(); err == nil && now != stamp {
			if err := r.reload(); err != nil {
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
