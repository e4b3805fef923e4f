package loadtest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// ServeMetrics serves GET /metrics on ln while the run lasts: the load
// test's metrics (Options.Metrics), the first target's replayer's
// (Options.ReplayMetrics) and the process's, in the Prometheus text format.
// It serves until stop is called; stop shuts the server down, giving open
// requests 5s, closes ln and waits for it.
func (r *Runner) ServeMetrics(ln net.Listener) (stop func()) {
	sets := []*metrics.Set{r.opts.Metrics, r.opts.ReplayMetrics}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		for _, s := range sets {
			s.WritePrometheus(w)
		}
		metrics.WriteProcessMetrics(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	r.log.Info("loadtest: serving metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
}
