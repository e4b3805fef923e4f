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

// capturer is a tap, as 'preheat tap' runs it, recording into a
// directory log.
type capturer struct {
	url  string // the tap's websocket URL, without a path
	prod *dirlog.Producer
	rec  *capture.Recorder
	tap  *capture.Tap
	srv  *http.Server
	done chan struct{} // closed when srv stops serving
	stop func()
}

// startCapture starts a tap in front of upstream, capturing whole sessions
// into the directory log at dir. What it started before a failure is
// stopped by the same shutdown as a running tap.
func startCapture(upstream, dir string, logger *slog.Logger, set *metrics.Set) (_ *capturer, err error) {
	c := &capturer{}
	c.stop = sync.OnceFunc(c.shutdown)
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.prod, err = dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: logger, Metrics: set}); err != nil {
		return nil, err
	}
	c.rec, err = capture.NewRecorder(c.prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "demo-tap", Logger: logger, Metrics: set})
	if err != nil {
		return nil, err
	}
	if c.tap, err = capture.NewTap(upstream, c.rec, &capture.TapOptions{Logger: logger, Metrics: set}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.url = "ws://" + ln.Addr().String()
	c.srv = &http.Server{Handler: c.tap, ErrorLog: log.New(io.Discard, "", 0)}
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

// close stops the tap as 'preheat tap' stops on SIGTERM. It is safe to
// call twice.
func (c *capturer) close() { c.stop() }

// shutdown stops what startCapture started, in the order of 'preheat
// tap': no new connections, open sessions closed, then what was captured
// flushed to the stream on a deadline of its own, which the sessions
// cannot have used up.
func (c *capturer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.srv != nil {
		_ = c.srv.Shutdown(ctx)
		<-c.done
	}
	if c.tap != nil {
		_ = c.tap.Shutdown(ctx)
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if c.rec != nil {
		_ = c.rec.Close(fctx)
	}
	if c.prod != nil {
		_ = c.prod.Close(fctx)
	}
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
