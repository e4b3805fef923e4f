package demo

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// capturer is a tap, as 'preheat tap' runs it (capture.Serve), recording
// into a directory log.
type capturer struct {
	url  string // the tap's websocket URL, without a path
	stop func() // ends Serve and waits for it: the shutdown of 'preheat tap'
}

// startCapture starts a tap in front of upstream, capturing whole sessions
// into the directory log at dir.
func startCapture(upstream, dir string, logger *slog.Logger, set *metrics.Set) (*capturer, error) {
	prod, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: logger, Metrics: set})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*capturer, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = prod.Close(ctx)
		return nil, err
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "demo-tap", Logger: logger, Metrics: set})
	if err != nil {
		return fail(err)
	}
	tap, err := capture.NewTap(upstream, rec, &capture.TapOptions{Logger: logger, Metrics: set})
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = capture.Serve(ctx, ln, tap, prod, &capture.ServeOptions{Logger: logger})
			}()
			return &capturer{url: "ws://" + ln.Addr().String(), stop: sync.OnceFunc(func() { cancel(); <-done })}, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rec.Close(ctx)
	return fail(err)
}

// close stops the tap as 'preheat tap' stops on SIGTERM: no new
// connections, open sessions closed, then what was captured flushed to the
// stream on a deadline of its own. It is safe to call twice.
func (c *capturer) close() { c.stop() }

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
