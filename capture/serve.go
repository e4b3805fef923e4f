package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/preheatdev/preheat/stream"
)

// flushTimeout is how long Serve gives the recorder and then the producer
// to put what was captured into the stream, once the sessions are done.
const flushTimeout = 10 * time.Second

// ServeOptions configure Serve. The zero value is usable.
type ServeOptions struct {
	// AdminListener, when set, gets the admin API of the tap's recorder
	// (Recorder.AdminHandler with Admin), served until the stream is
	// flushed. Default nil: none.
	AdminListener net.Listener
	// Admin configures the admin API; its Reload is also what Reloads
	// call, and Serve makes the two call it one at a time. Default nil:
	// AdminHandler's defaults.
	Admin *AdminOptions
	// Reloads, when set, asks for reloads (cmd/preheat passes SIGHUP):
	// each value received calls Admin.Reload, which reports its own
	// failures, until the shutdown begins. Default nil: none.
	Reloads <-chan os.Signal
	// ShutdownTimeout is how long, once ctx ends, plain requests and open
	// websocket sessions get to finish before the sessions are closed.
	// Default 30s.
	ShutdownTimeout time.Duration
	// Logger receives the shutdown's events, and the tap's HTTP server's
	// errors at debug level. Default slog.Default().
	Logger *slog.Logger
}

// Serve runs t, a tap whose recorder puts sessions into prod, as a
// service: it serves t on ln and the admin API on o.AdminListener until
// ctx ends or serving fails. Then it shuts down in the order that loses
// nothing: no new connections; plain requests and open sessions get
// o.ShutdownTimeout, then the sessions still open are closed; then the
// recorder is closed and prod after it, on a deadline of their own (10s),
// which the sessions cannot have used up; the admin API last. Serve owns
// ln, the admin listener, the recorder and prod once called; it returns
// once they are closed, with the first error of serving. o may be nil.
func Serve(ctx context.Context, ln net.Listener, t *Tap, prod stream.Producer, o *ServeOptions) error {
	opts := ServeOptions{}
	if o != nil {
		opts = *o
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	admin := AdminOptions{}
	if opts.Admin != nil {
		admin = *opts.Admin
	}
	if reload := admin.Reload; reload != nil {
		var mu sync.Mutex
		admin.Reload = func() error {
			mu.Lock()
			defer mu.Unlock()
			return reload()
		}
	}
	opts.Admin = &admin
	log, rec := opts.Logger, t.rec
	srv := &http.Server{
		Handler:           t,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var adminSrv *http.Server
	if opts.AdminListener != nil {
		if rec == nil {
			ln.Close()
			opts.AdminListener.Close()
			if prod != nil {
				prod.Close(ctx)
			}
			return errors.New("serve admin: the tap has no recorder")
		}
		adminSrv = &http.Server{Handler: rec.AdminHandler(opts.Admin), ReadHeaderTimeout: 10 * time.Second}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	if adminSrv != nil {
		g.Go(func() error {
			if err := adminSrv.Serve(opts.AdminListener); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve admin: %w", err)
			}
			return nil
		})
	}
	if opts.Reloads != nil && opts.Admin.Reload != nil {
		g.Go(func() error {
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-opts.Reloads:
					_ = opts.Admin.Reload()
				}
			}
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "timeout", opts.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
		defer cancel()
		srv.Shutdown(sctx) // stop accepting; wait for plain requests
		t.Shutdown(sctx)   // wait for websocket sessions, then close them
		// Capture gets its own deadline: the sessions may have used all of
		// the first.
		fctx, fcancel := context.WithTimeout(context.Background(), flushTimeout)
		defer fcancel()
		if rec != nil {
			if err := rec.Close(fctx); err != nil {
				log.Warn("capture not fully flushed", "err", err)
			}
		}
		if prod != nil {
			if err := prod.Close(fctx); err != nil {
				log.Warn("stream not fully flushed", "err", err)
			}
		}
		if adminSrv != nil {
			adminSrv.Shutdown(fctx)
		}
		return nil
	})
	return g.Wait()
}
