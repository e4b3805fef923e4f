package replaycache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
)

// ServeOptions configure Serve. The zero value is usable.
type ServeOptions struct {
	// TLS, when set, serves HTTPS with it: HTTP/1.1 and HTTP/2 by ALPN.
	// Default nil: plain HTTP/1.1, and HTTP/2 without TLS (h2c) for
	// clients that ask.
	TLS *tls.Config
	// ShutdownTimeout is how long open requests, live followers included,
	// get to finish once ctx ends before they are cut. Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives the shutdown's events, and the HTTP server's errors
	// at debug level. Default slog.Default().
	Logger *slog.Logger
}

// Serve runs the cache c as a service: it reads c's stream (Cache.Run) and
// serves s on ln until ctx ends, serving fails or reading fails. Then it
// gives open requests o.ShutdownTimeout and cuts those left, and only then
// stops reading, so that a live session's followers get its events until
// they are done. It returns the first error of serving or reading; it does
// not close c's consumer. o may be nil.
func Serve(ctx context.Context, ln net.Listener, c *Cache, s *Server, o *ServeOptions) error {
	opts := ServeOptions{}
	if o != nil {
		opts = *o
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if opts.TLS != nil {
		srv.TLSConfig = opts.TLS
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true) // h2c, for clients that ask
	}

	// Reading goes on while open requests finish: it has its own context.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if opts.TLS != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := c.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read stream: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-runCtx.Done():
		}
		opts.Logger.Info("shutting down", "timeout", opts.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close() // followers still streaming at the deadline
		}
		stopRun()
		return nil
	})
	return g.Wait()
}
