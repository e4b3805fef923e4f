package demo

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// capturer is the tap in front of server A, as 'preheat tap' runs it,
// recording into the demo's directory log.
type capturer struct {
	url  string // the tap's websocket URL, without a path
	prod *dirlog.Producer
	rec  *capture.Recorder
	tap  *capture.Tap
	srv  *http.Server
	done chan struct{}
	stop func()
}

// startCapture starts a tap in front of upstream, capturing whole sessions
// into the directory log at dir.
func startCapture(ctx context.Context, upstream, dir string, logger *slog.Logger, set *metrics.Set) (*capturer, error) {
	prod, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: logger, Metrics: set})
	if err != nil {
		return nil, err
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "demo-tap", Logger: logger, Metrics: set})
	if err != nil {
		prod.Close(ctx)
		return nil, err
	}
	tap, err := capture.NewTap(upstream, rec, &capture.TapOptions{Logger: logger, Metrics: set})
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			c := &capturer{url: "ws://" + ln.Addr().String(), prod: prod, rec: rec, tap: tap,
				srv: &http.Server{Handler: tap, ErrorLog: log.New(io.Discard, "", 0)}, done: make(chan struct{})}
			c.stop = sync.OnceFunc(c.shutdown)
			go func() {
				defer close(c.done)
				_ = c.srv.Serve(ln)
			}()
			return c, nil
		}
	}
	rec.Close(ctx)
	prod.Close(ctx)
	return nil, err
}

// close stops the tap as 'preheat tap' stops on SIGTERM: no new
// connections, open sessions closed, what was captured flushed. It is safe
// to call twice.
func (c *capturer) close() { c.stop() }

func (c *capturer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(ctx)
	_ = c.tap.Shutdown(ctx)
	_ = c.rec.Close(ctx)
	_ = c.prod.Close(ctx)
	<-c.done
}

// captureUntilWarm drives the fleet through the tap until server A is
// warm by its own count, or CaptureMax passes, reporting its progress
// every three seconds; it returns the fleet's record.
func (r *run) captureUntilWarm(ctx context.Context, tap *capturer, a *server) *Latency {
	r.say("capture: %d clients through the tap to server A until it is warm", r.o.Clients)
	fleet := r.fleet(tap.url + "/sync?client=web")
	ctx, stop := context.WithTimeout(ctx, r.o.CaptureMax)
	defer stop()
	done := make(chan *Latency, 1)
	go func() { done <- fleet.Run(ctx, 1) }()
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for a.sim.State().WarmAt.IsZero() && ctx.Err() == nil {
		select {
		case <-tick.C:
			st := a.sim.State()
			p50, p99 := fleet.Latency().Window()
			r.say("  server A: %d requests, paths interpreted/C1/C2 %d/%d/%d, compile %.0f ms so far, client latency p50 %s p99 %s",
				st.Requests, st.Tiers[0], st.Tiers[1], st.Tiers[2], st.CompileMillis, FormatLatency(p50), FormatLatency(p99))
		case <-ctx.Done():
		}
	}
	stop()
	return <-done
}
