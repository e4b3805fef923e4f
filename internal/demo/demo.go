package demo

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture/redact"
)

// run is one demo run's settings and story.
type run struct {
	*printer
	o         Options
	dir       string // the stream's directory
	reportDir string
	quiet     *slog.Logger // for the components: the story is the output
}

// Run runs the demo, printing its story to out: capture through the tap
// until server A is warm, the cache, the warm-up and release of server B,
// then the same first traffic to B, to C cold and to B again. It returns
// when everything it started has stopped. opts may be nil.
func Run(ctx context.Context, out io.Writer, opts *Options) error {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	r := &run{printer: &printer{w: out, started: time.Now()}, o: o, dir: o.Dir, reportDir: o.Report, quiet: slog.New(slog.DiscardHandler)}
	if r.dir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-")
		if err != nil {
			return err
		}
		r.dir = tmp
		if !o.Keep {
			defer os.RemoveAll(tmp)
		}
	}
	if r.reportDir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-report-")
		if err != nil {
			return err
		}
		r.reportDir = tmp
	}
	r.printf("preheat demo: capture, cache, warm and release a cold server, then compare first traffic\n\n")

	// Three simulated servers with the same code (seed), each its own JVM.
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for _, name := range []string{"A", "B", "C"} {
		s, err := startServer(name, o.Scale, 1)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	a, b, c := servers[0], servers[1], servers[2]
	set := metrics.NewSet()
	tap, err := startCapture("ws://"+a.ln.Addr().String(), r.dir, r.quiet, set)
	if err != nil {
		return err
	}
	defer tap.close()
	cache, err := startCache(r.dir, 0, r.quiet, set)
	if err != nil {
		return err
	}
	defer cache.close()
	r.printf("  server A  %s  behind the tap %s (capturing into file://%s)\n", a.url(), tap.url, r.dir)
	r.printf("  server B  %s  cold; will be warmed\n", b.url())
	r.printf("  server C  %s  cold; will not be warmed\n", c.url())
	r.printf("  cache     %s\n\n", cache.url)

	// 1. Capture: clients through the tap until server A is warm.
	captured := r.captureUntilWarm(ctx, tap, a)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if st := a.sim.State(); st.WarmAt.IsZero() {
		r.say("server A did not finish warming within --capture-max; going on with what was captured")
	} else {
		r.say("server A is warm (by its own count) after %v; %d client sessions captured", st.WarmAt.Sub(r.started).Round(100*time.Millisecond), captured.Sessions())
	}
	tap.close()

	// 2. The cache holds what was captured, redacted.
	if err := WaitSessions(ctx, cache.cache, int(captured.Sessions())); err != nil {
		return err
	}
	if err := checkRedacted(ctx, cache.url); err != nil {
		return err
	}
	r.say("cache: %d whole sessions held; connect tokens arrive redacted (%s)", whole(cache.cache.Status()), redact.Marker)

	// 3. Warm server B from the cache.
	w, err := r.warm(ctx, b, cache.url)
	if err != nil {
		return err
	}

	// 4. First traffic: B right after release, then C cold, then B again,
	// warm for a while now: the steady state of the same server.
	ft := firstTraffic{warmed: r.measure(ctx, b, "first traffic"), unwarmed: r.measure(ctx, c, "first traffic"), steady: r.measure(ctx, b, "steady state")}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := r.summarize(w, ft); err != nil {
		return err
	}
	if o.Keep || o.Dir != "" {
		r.printf("The stream is kept: preheat inspect --stream file://%s\n", r.dir)
	}
	return nil
}

// fleet returns the demo's client fleet for url.
func (r *run) fleet(url string) *Fleet {
	return NewFleet(url, &FleetOptions{Clients: r.o.Clients, Queries: r.o.Queries, Think: r.o.Think})
}
