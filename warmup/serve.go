package warmup

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeReady serves Handler on ln, the ready server of a sidecar, until
// stop is called; stop shuts it down, giving open requests 5s, closes ln
// and waits for it. failed receives the error that ended serving if it
// ended before stop.
func (w *Warmup) ServeReady(ln net.Listener) (stop func(), failed <-chan error) {
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelDebug)}
	fail := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fail <- err
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, fail
}
