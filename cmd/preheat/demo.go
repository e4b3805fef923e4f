package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

type demoOptions struct {
	dir          string
	keep         bool
	report       string
	clients      int
	queries      int
	think        time.Duration
	scale        float64
	firstTraffic time.Duration
	window       time.Duration
	minWarm      time.Duration
	captureMax   time.Duration
	deadline     time.Duration
	maxJitter    float64
}

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run preheat end to end on one machine with embedded defaults",
		usage:   "[--clients 16] [--first-traffic 20s] [--dir DIR] [--report DIR]",
		help: `Runs the whole story on this machine, with nothing to install:

 1. Synthetic clients of a sync protocol talk to a simulated JVM sync server
    (server A) through the tap, which records their sessions, redacted, into a
    local directory log, until server A is warm.
 2. The replay cache reads that stream and serves whole sessions.
 3. A second simulated server (B) starts cold; 'preheat warm' replays cached
    sessions against it, watches its scheduler jitter and JIT compile time until
    they flatten, and releases it.
 4. A third (C) starts cold and is not warmed.
 5. The same real traffic then goes to each for --first-traffic: B right after its
    release, then C cold, then B again (its steady state). The demo prints
    their latency side by side and writes the warm report (JSON and an HTML
    page of the curves).

The simulated servers model a JVM honestly (interpreted, C1 and C2 tiers per code
path, a background compiler that burns CPU, safepoint pauses, a jitter task that
shares the worker pool) but warm faster than a real one (--scale).`,
		flags: func(fs *flag.FlagSet) any {
			o := &demoOptions{}
			fs.StringVar(&o.dir, "dir", "", "directory for the demo's stream; default a new temporary directory, removed afterwards")
			fs.BoolVar(&o.keep, "keep", false, "keep the temporary stream directory for 'preheat inspect'")
			fs.StringVar(&o.report, "report", "", "directory for the warm report; default a new temporary directory, kept")
			fs.IntVar(&o.clients, "clients", 16, "synthetic clients connected at once")
			fs.IntVar(&o.queries, "queries", 20, "queries per client session")
			fs.DurationVar(&o.think, "think", 40*time.Millisecond, "each client's pause between a result and its next query")
			fs.Float64Var(&o.scale, "scale", 0.25, "the simulated servers' warm-up work as a fraction of the default model's")
			fs.DurationVar(&o.firstTraffic, "first-traffic", 20*time.Second, "how long each server's first traffic is measured")
			fs.DurationVar(&o.window, "window", 10*time.Second, "the warm run's signal window")
			fs.DurationVar(&o.minWarm, "min-warm", 10*time.Second, "the warm run's earliest release")
			fs.DurationVar(&o.captureMax, "capture-max", 3*time.Minute, "longest the capture phase waits for server A to warm")
			fs.DurationVar(&o.deadline, "deadline", 3*time.Minute, "the warm run's deadline")
			fs.Float64Var(&o.maxJitter, "max-jitter", 0, "the warm run's jitter limit in seconds (default warm's, 0.02)")
			return o
		},
		run: runDemo,
	}
}

// demoServer is one simulated sync server listening on loopback.
type demoServer struct {
	name string
	sim  *coldserver.Server
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startDemoServer(name string, scale float64, seed uint64) (*demoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sim := coldserver.New(&coldserver.Options{Scale: scale, Seed: seed})
	d := &demoServer{name: name, sim: sim, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: sim, ErrorLog: log.New(io.Discard, "", 0)}}
	go func() {
		defer close(d.done)
		_ = d.srv.Serve(ln)
	}()
	return d, nil
}

func (d *demoServer) url() string     { return "ws://" + d.ln.Addr().String() + "/sync" }
func (d *demoServer) metrics() string { return "http://" + d.ln.Addr().String() + "/metrics" }

func (d *demoServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.sim.Close() // ends the websocket handlers, which Shutdown does not wait for
	_ = d.srv.Shutdown(ctx)
	<-d.done
}

func runDemo(ctx context.Context, e *env, args []string) error {
	o := e.opts.(*demoOptions)
	switch {
	case len(args) > 0:
		return usagef("unexpected arguments %q", args)
	case o.clients <= 0 || o.queries <= 0:
		return usagef("--clients and --queries must be positive")
	case o.scale <= 0 || o.firstTraffic <= 0:
		return usagef("--scale and --first-traffic must be positive")
	}
	// Every server, client and the warmer share this process's Go heap,
	// which is small (about 10 MB live) and so collected every two seconds,
	// each time with a stop of the world of a millisecond or more on two
	// busy cores that every simulated server feels alike. Collecting a
	// quarter as often keeps the demo's own collector out of the latency
	// it reports about the simulated JVMs. GOGC, when set, still decides.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !o.keep {
			defer os.RemoveAll(tmp)
		}
	}
	reportDir := o.report
	if reportDir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-report-")
		if err != nil {
			return err
		}
		reportDir = tmp
	}
	out := e.stdout
	quiet := discardLog()
	started := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(out, "preheat demo: capture, cache, warm and release a cold server, then compare first traffic\n\n")

	// Three simulated servers with the same code (seed), each its own JVM.
	var servers []*demoServer
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for _, name := range []string{"A", "B", "C"} {
		s, err := startDemoServer(name, o.scale, 1)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	srvA, srvB, srvC := servers[0], servers[1], servers[2]

	// The tap in front of server A, capturing into the directory log.
	set := metrics.NewSet()
	prod, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: quiet, Metrics: set})
	if err != nil {
		return err
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "demo-tap", Logger: quiet, Metrics: set})
	if err != nil {
		prod.Close(ctx)
		return err
	}
	tap, err := capture.NewTap("ws://"+srvA.ln.Addr().String(), rec, &capture.TapOptions{Logger: quiet, Metrics: set})
	if err != nil {
		rec.Close(ctx)
		prod.Close(ctx)
		return err
	}
	tapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rec.Close(ctx)
		prod.Close(ctx)
		return err
	}
	tapSrv := &http.Server{Handler: tap, ErrorLog: log.New(io.Discard, "", 0)}
	tapDone := make(chan struct{})
	go func() {
		defer close(tapDone)
		_ = tapSrv.Serve(tapLn)
	}()
	stopCapture := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = tapSrv.Shutdown(sctx)
		_ = tap.Shutdown(sctx)
		_ = rec.Close(sctx)
		_ = prod.Close(sctx)
		<-tapDone
	})
	defer stopCapture()

	// The replay cache, reading the stream as it is written.
	cons, err := dirlog.NewConsumer(dir, stream.Start{}, &dirlog.ConsumerOptions{Logger: quiet, Metrics: set})
	if err != nil {
		return err
	}
	defer cons.Close()
	cache := replaycache.New(cons, &replaycache.Options{Logger: quiet, Metrics: set})
	cacheLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cacheSrv := &http.Server{Handler: replaycache.NewServer(cache, &replaycache.ServerOptions{Logger: quiet, Metrics: set}), ErrorLog: log.New(io.Discard, "", 0)}
	cacheCtx, stopCache := context.WithCancel(context.Background())
	var cacheWG sync.WaitGroup
	cacheWG.Go(func() { _ = cache.Run(cacheCtx) })
	cacheWG.Go(func() { _ = cacheSrv.Serve(cacheLn) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cacheSrv.Shutdown(sctx)
		stopCache()
		cacheWG.Wait()
	}()
	cacheURL := "http://" + cacheLn.Addr().String()

	fmt.Fprintf(out, "  server A  %s  behind the tap ws://%s (capturing into file://%s)\n", srvA.url(), tapLn.Addr(), dir)
	fmt.Fprintf(out, "  server B  %s  cold; will be warmed\n", srvB.url())
	fmt.Fprintf(out, "  server C  %s  cold; will not be warmed\n", srvC.url())
	fmt.Fprintf(out, "  cache     %s\n\n", cacheURL)

	// 1. Capture: clients through the tap until server A is warm.
	say("capture: %d clients through the tap to server A until it is warm", o.clients)
	load := newDemoLoad("ws://"+tapLn.Addr().String()+"/sync?client=web", o)
	capCtx, stopLoad := context.WithTimeout(ctx, o.captureMax)
	loadDone := make(chan *demoLatency, 1)
	go func() { loadDone <- load.run(capCtx, 1) }()
	tick := time.NewTicker(3 * time.Second)
	for srvA.sim.State().WarmAt.IsZero() && capCtx.Err() == nil {
		select {
		case <-tick.C:
			st := srvA.sim.State()
			p50, p99 := load.window()
			say("  server A: %d requests, paths interpreted/C1/C2 %d/%d/%d, compile %.0f ms so far, client latency p50 %s p99 %s",
				st.Requests, st.Tiers[0], st.Tiers[1], st.Tiers[2], st.CompileMillis, fmtMS(p50), fmtMS(p99))
		case <-capCtx.Done():
		}
	}
	tick.Stop()
	stopLoad()
	captured := <-loadDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	stA := srvA.sim.State()
	if stA.WarmAt.IsZero() {
		say("server A did not finish warming within --capture-max; going on with what was captured")
	} else {
		say("server A is warm (by its own count) after %v; %d client sessions captured", stA.WarmAt.Sub(started).Round(100*time.Millisecond), captured.sessions.Load())
	}
	stopCapture()
	if err := waitCache(ctx, cache, int(captured.sessions.Load())); err != nil {
		return err
	}
	if err := checkRedacted(ctx, cacheURL); err != nil {
		return err
	}
	say("cache: %d whole sessions held; connect tokens arrive redacted (%s)", cache.Status().Sessions, redact.Marker)

	// 2. Warm server B from the cache.
	say("warm: replaying cached sessions against server B until its jitter and compile time flatten")
	wo := &warmOptions{
		target: srvB.url(), metricsURL: srvB.metrics(), cacheURL: cacheURL,
		report: reportDir, deadline: o.deadline, minWarm: o.minWarm, minResponses: defaultMinResponses, window: o.window, holdTolerance: defaultHoldTolerance, interval: time.Second, maxJitter: o.maxJitter,
		onDeadline: "open", jitterMetric: "jvm_scheduler_jitter_seconds", jitterQuantile: 0.99,
		compileMetric: "jvm_compilation_time_ms_total", rate: 400, concurrency: 8, correlate: "id",
		responseTimeout: 10 * time.Second, mode: "coverage", progress: 3 * time.Second,
		allowShortWindow: true, stopAfterRelease: true,
	}
	warmStart := time.Now()
	res, err := warm(ctx, &env{stdout: out, stderr: e.stderr, log: demoLogger(out, started)}, wo)
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	stB := srvB.sim.State()
	mutationsB := srvB.sim.Mutations() // before real traffic, which mutates
	releasedAfter := res.Decision.At.Sub(warmStart)
	say("warm: %s after %v: %s", res.Decision.Outcome, releasedAfter.Round(100*time.Millisecond), res.Decision.Reason)
	say("warm: %d sessions replayed, %d messages sent, %d mutating messages not sent; server B saw %d mutations",
		res.Stats.SessionsCompleted, res.Stats.MessagesSent, res.Stats.MessagesSkipped["mutating"], mutationsB)

	// 3. First traffic: B right after release, then C cold, then B again,
	// warm for a while now: the steady state of the same server.
	measure := func(s *demoServer, what string) *demoLatency {
		say("%s: %v of real clients to server %s", what, o.firstTraffic, s.name)
		l := newDemoLoad(s.url()+"?client=web", o)
		fctx, cancel := context.WithTimeout(ctx, o.firstTraffic)
		defer cancel()
		done := make(chan *demoLatency, 1)
		go func() { done <- l.run(fctx, 1000) }()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case lat := <-done:
				return lat
			case <-tick.C:
				st := s.sim.State()
				p50, p99 := l.window()
				say("  server %s: %d requests, last 5s p50 %s p99 %s, compile %.0f ms so far", s.name, l.lat.count(), fmtMS(p50), fmtMS(p99), st.CompileMillis)
			}
		}
	}
	warmed := measure(srvB, "first traffic")
	unwarmed := measure(srvC, "first traffic")
	steady := measure(srvB, "steady state")
	if ctx.Err() != nil {
		return ctx.Err()
	}

	fmt.Fprintf(out, "\nFirst %v of traffic (%d clients, client-measured request latency):\n\n", o.firstTraffic, o.clients)
	fmt.Fprintf(out, "  %-28s %9s %9s %9s %14s\n", "", "requests", "p50", "p99", "p99 vs steady")
	sp99 := steady.quantile(99)
	for _, row := range []struct {
		name string
		l    *demoLatency
	}{{"server B, warmed by preheat", warmed}, {"server C, not warmed", unwarmed}, {"server B, steady state", steady}} {
		fmt.Fprintf(out, "  %-28s %9d %9s %9s %13.2fx\n", row.name, row.l.count(), fmtMS(row.l.quantile(50)), fmtMS(row.l.quantile(99)),
			float64(row.l.quantile(99))/float64(max(sp99, 1)))
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Server B was released after %v (%s).\n", releasedAfter.Round(100*time.Millisecond), res.Decision.Outcome)
	if !stB.WarmAt.IsZero() {
		fmt.Fprintf(out, "  95%% of its calls ran fully compiled (C2) code from %v on, by the simulator's own count.\n", stB.WarmAt.Sub(warmStart).Round(100*time.Millisecond))
	}
	if quiet, ok := compileQuiet(res.Report, 20, 10); ok {
		fmt.Fprintf(out, "  Its compile rate had stayed under 20 ms/s for 10s at %.0fs: release / that = %.2f.\n", quiet, releasedAfter.Seconds()/quiet)
	}
	if mutationsB > 0 {
		return fmt.Errorf("server B received %d mutating messages during warm-up", mutationsB)
	}
	fmt.Fprintf(out, "No mutating message reached server B (%d were in the captured sessions and skipped).\n", res.Stats.MessagesSkipped["mutating"])
	if len(res.ReportPaths) == 2 {
		fmt.Fprintf(out, "\nWarm report: %s\n             %s\n", res.ReportPaths[1], res.ReportPaths[0])
	}
	if o.keep || o.dir != "" {
		fmt.Fprintf(out, "The stream is kept: preheat inspect --stream file://%s\n", dir)
	}
	return nil
}

// compileQuiet returns the first time, in seconds from the report's start,
// at which the compile rate has stayed under limit for span seconds.
func compileQuiet(rep *readiness.Report, limit, span float64) (float64, bool) {
	for _, s := range rep.Signals {
		if s.Name != readiness.Compile.String() {
			continue
		}
		start := -1.0
		for _, p := range s.Points {
			switch {
			case p.V >= limit:
				start = -1
			case start < 0:
				start = p.T
			}
			if start >= 0 && p.T-start >= span {
				return p.T, true
			}
		}
	}
	return 0, false
}

// waitCache waits until the cache holds n sessions or the stream's end is
// reached (a few seconds at most).
func waitCache(ctx context.Context, cache *replaycache.Cache, n int) error {
	deadline := time.Now().Add(15 * time.Second)
	for cache.Status().Sessions < n && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if cache.Status().Sessions == 0 {
		return errors.New("cache: no whole sessions were captured")
	}
	return nil
}

// checkRedacted reads one cached session back and checks its connect token
// was redacted by the tap.
func checkRedacted(ctx context.Context, cacheURL string) error {
	c, err := replaycache.NewClient(cacheURL, nil)
	if err != nil {
		return err
	}
	r, err := c.Select(ctx, replaycache.SelectRequest{Mode: replaycache.Newest, Filter: replaycache.Filter{Limit: 1}})
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer r.Close()
	s, err := r.Next()
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, ev := range s.Events {
		if strings.Contains(string(ev.Payload), `"type":"connect"`) {
			if strings.Contains(string(ev.Payload), `"tok_`) || !strings.Contains(string(ev.Payload), redact.Marker) {
				return fmt.Errorf("cache: a connect token was not redacted: %s", ev.Payload)
			}
			return nil
		}
	}
	return errors.New("cache: a session without its connect message")
}

// demoLogger prints the warm run's progress lines compactly.
func demoLogger(w io.Writer, started time.Time) *slog.Logger {
	return slog.New(slog.NewTextHandler(&prefixWriter{w: w, started: started}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}))
}

type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	started time.Time
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%5.1fs]   ", time.Since(p.started).Seconds())
	return p.w.Write(b)
}

// demoLoad is a fleet of synthetic clients: each runs sessions of a connect
// and queries (every tenth a mutation), awaiting each answer and pausing
// between them.
type demoLoad struct {
	url     string
	clients int
	queries int
	think   time.Duration
	lat     *demoLatency
}

func newDemoLoad(url string, o *demoOptions) *demoLoad {
	return &demoLoad{url: url, clients: o.clients, queries: o.queries, think: o.think, lat: newDemoLatency()}
}

// demoLatency collects request latencies.
type demoLatency struct {
	sessions atomic.Int64
	errors   atomic.Int64

	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	recent *hdrhistogram.Histogram
}

func newDemoLatency() *demoLatency {
	return &demoLatency{all: hdrhistogram.New(1, int64(time.Minute), 2), recent: hdrhistogram.New(1, int64(time.Minute), 2)}
}

func (l *demoLatency) record(d time.Duration) {
	v := min(max(int64(d), 1), int64(time.Minute))
	l.mu.Lock()
	_ = l.all.RecordValue(v)
	_ = l.recent.RecordValue(v)
	l.mu.Unlock()
}

func (l *demoLatency) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Duration(l.all.ValueAtQuantile(q))
}

func (l *demoLatency) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.TotalCount()
}

// window returns the p50 and p99 since its last call.
func (d *demoLoad) window() (time.Duration, time.Duration) {
	l := d.lat
	l.mu.Lock()
	defer l.mu.Unlock()
	p50, p99 := time.Duration(l.recent.ValueAtQuantile(50)), time.Duration(l.recent.ValueAtQuantile(99))
	l.recent.Reset()
	return p50, p99
}

// run drives the clients until ctx ends and returns their latencies.
func (d *demoLoad) run(ctx context.Context, seed uint64) *demoLatency {
	var wg sync.WaitGroup
	for i := range d.clients {
		wg.Go(func() {
			g := corpus.New(seed*1000 + uint64(i))
			for ctx.Err() == nil {
				if err := d.session(ctx, g); err != nil && ctx.Err() == nil {
					d.lat.errors.Add(1)
					select { // a refused dial must not spin
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	return d.lat
}

func (d *demoLoad) session(ctx context.Context, g *corpus.Generator) error {
	c, _, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	if err := c.Write(ctx, websocket.MessageText, g.Connect()); err != nil {
		return err
	}
	if _, err := awaitID(ctx, c, 0); err != nil {
		return err
	}
	for q := range d.queries {
		msg := g.Query(g.Kind())
		if q%10 == 9 {
			msg = g.Mutation() // real clients change things; warm-up must not
		}
		id := g.LastID()
		start := time.Now()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return err
		}
		if _, err := awaitID(ctx, c, id); err != nil {
			return err
		}
		d.lat.record(time.Since(start))
		if d.think > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d.think):
			}
		}
	}
	d.lat.sessions.Add(1)
	return c.Close(websocket.StatusNormalClosure, "done")
}

// awaitID reads until the reply with the given id, skipping pushed updates.
func awaitID(ctx context.Context, c *websocket.Conn, id int) ([]byte, error) {
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		var m struct {
			ID *int `json:"id"`
		}
		if json.Unmarshal(msg, &m) == nil && m.ID != nil && *m.ID == id {
			return msg, nil
		}
	}
}

func fmtMS(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
