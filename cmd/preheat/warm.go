package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
)

// warmOptions are preheat warm's settings; the demo fills them directly.
type warmOptions struct {
	target, metricsURL, metricsToken string
	cacheURL, cacheToken             string
	readyAddr                        string
	initMode                         bool
	readyFile, webhook, webhookToken string
	report                           string

	deadline, minWarm, window, hold, interval time.Duration
	minResponses                              int
	onDeadline                                string
	jitterMetric, compileMetric               string
	noJIT                                     bool
	jitterQuantile                            float64
	maxJitter, maxCompileRate, maxLatency     float64
	holdTolerance                             float64

	rate, speed     float64
	startRate       float64
	maxCPUPressure  float64
	pressureFile    string
	concurrency     int
	correlate       string
	replayRules     // --header, --mutating, --rewrite, --rehearse and the safety switches
	noBackoff       bool
	responseTimeout time.Duration
	route, mode     string
	maxAge          time.Duration
	dryRun          bool
	dryRunSessions  int
	keepWarming     bool
	progress        time.Duration

	// Set by tests and the demo only; no flag sets them.
	allowShortWindow bool // a --window under 10s
	stopAfterRelease bool // return once the run ends, as --init does, but with exit status 0 either way
}

// defaultMinResponses is --min-responses' default: about a second of
// replay at 600 msg/s, or a minute at the back-off floor of a 200 msg/s
// warm-up. On the JVM fixture the compile rate settles after some 25,000
// messages; 500 only proves the warm-up reached the pod.
const defaultMinResponses = 500

// defaultHoldTolerance is --hold-tolerance's default, readiness's own
// (Options.HoldTolerance): a settled JIT's late compiles bump its rate to
// 22-37 ms/s over a 20 ms/s limit, a wave runs at hundreds.
const defaultHoldTolerance = 2

// repeated is a repeatable flag whose values are kept whole (rules may hold
// commas).
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

func warmCommand() *command {
	return &command{
		name:    "warm",
		summary: "replay sessions against a cold pod until it is warm, then release it",
		usage:   "--target ws://... [--metrics http://.../metrics | --no-jit] --cache http://... [--ready-addr :8099 | --init] [flags]",
		help: `Replays captured sessions from a replay cache against a cold pod, under a message
rate and a session concurrency limit that back off when the pod's latency or error
rate climbs (and, with --max-cpu-pressure, while the node's CPU is contended, so
that neighbours keep their share), and watches the pod's warmth signals until they
flatten: scheduler jitter and JIT compile time scraped from its Prometheus
endpoint, and the replay's own response latency. Then it releases the pod:

  --ready-addr ADDR   serve GET /readyz: 503 while warming, 200 once released
                      (a native sidecar's readiness probe); also /status, /report,
                      /report.json, /metrics and /healthz
  --init              exit 0 once released (an init container); exit 1 when the
                      deadline passes under --on-deadline=closed
  --ready-file PATH   write the decision as JSON to PATH on release
  --webhook URL       POST the decision as JSON to URL on release (the router)

Every run ends by --deadline: under --on-deadline=open (the default) the pod is
released anyway and the reason logged and counted; under closed it is not.
A cache that is unreachable, a target that crashes or a metrics endpoint that
never answers all end there.

` + replayRulesHelp + ` --dry-run
prints what would be sent and skipped, without touching the target.

` + replayRewriteHelp,
		flags: func(fs *flag.FlagSet) any {
			o := &warmOptions{}
			fs.StringVar(&o.target, "target", "", "the cold pod's websocket URL, ws:// or wss:// (without a path, each session's recorded route is used); required")
			fs.StringVar(&o.metricsURL, "metrics", "", "the pod's Prometheus endpoint, http(s)://.../metrics; required unless --no-jit")
			fs.StringVar(&o.metricsToken, "metrics-token", os.Getenv("PREHEAT_METRICS_TOKEN"), "bearer token for --metrics (default $PREHEAT_METRICS_TOKEN)")
			fs.StringVar(&o.cacheURL, "cache", "", "the replay cache's URL, http(s)://host:port; required")
			fs.StringVar(&o.cacheToken, "cache-token", os.Getenv("PREHEAT_CACHE_TOKEN"), "bearer token for --cache (default $PREHEAT_CACHE_TOKEN)")
			fs.StringVar(&o.readyAddr, "ready-addr", "", "serve /readyz and the run's status on this address, such as :8099")
			fs.BoolVar(&o.initMode, "init", false, "init-container mode: exit 0 once released, 1 if not released by the deadline")
			fs.StringVar(&o.readyFile, "ready-file", "", "on release, write the decision as JSON to this file")
			fs.StringVar(&o.webhook, "webhook", "", "on release, POST the decision as JSON to this URL")
			fs.StringVar(&o.webhookToken, "webhook-token", os.Getenv("PREHEAT_WEBHOOK_TOKEN"), "bearer token for --webhook (default $PREHEAT_WEBHOOK_TOKEN)")
			fs.StringVar(&o.report, "report", "", "write the warm report to this directory: warm-report.json and warm-report.html")
			fs.DurationVar(&o.deadline, "deadline", 10*time.Minute, "end the run by then, warm or not")
			fs.StringVar(&o.onDeadline, "on-deadline", "open", "at the deadline: open (release anyway) or closed (do not release)")
			fs.DurationVar(&o.minWarm, "min-warm", 30*time.Second, "never release before this")
			fs.IntVar(&o.minResponses, "min-responses", defaultMinResponses, "never release before the replay has had this many responses: an idle pod's signals are flat too (0: no minimum, for a target that never answers)")
			fs.DurationVar(&o.window, "window", 10*time.Second, "sliding window each signal is judged over (at least 10s; longer than the lull between JIT waves)")
			fs.DurationVar(&o.hold, "hold", 0, "how long every signal must stay flat before release (default the window)")
			fs.Float64Var(&o.holdTolerance, "hold-tolerance", defaultHoldTolerance, "once every signal is flat, the hold breaks on a value over this many times its limit, not over the limit itself (1: strict; a settled JIT's late compiles hover near the limit)")
			fs.DurationVar(&o.interval, "interval", time.Second, "scrape interval")
			fs.StringVar(&o.jitterMetric, "jitter-metric", readiness.DefaultJitterMetric, "scheduler jitter metric, seconds (histogram, summary or gauge)")
			fs.Float64Var(&o.jitterQuantile, "jitter-quantile", 0.99, "quantile of a jitter histogram")
			fs.StringVar(&o.compileMetric, "compile-metric", readiness.DefaultCompileMetric, "JIT compile time counter, ms; until it is seen the release waits for the deadline (see --no-jit)")
			fs.BoolVar(&o.noJIT, "no-jit", false, "the target has no JIT (Node, Go, a JVM under -Xint): decide on replay latency and any jitter gauge alone; --metrics becomes optional (also --compile-metric '')")
			fs.Float64Var(&o.maxJitter, "max-jitter", 0, "jitter limit in seconds (default none: jitter is judged on flatness; 0.02 suits quiet nodes)")
			fs.Float64Var(&o.maxCompileRate, "max-compile-rate", 0, "compile limit in ms per second (default 20; negative: none)")
			fs.Float64Var(&o.maxLatency, "max-latency", 0, "replay latency limit in ms (default none: only flatness is judged)")
			fs.Float64Var(&o.rate, "rate", 200, "client messages per second across all sessions (backs off adaptively)")
			fs.Float64Var(&o.startRate, "start-rate", 0, "messages per second at the start, climbing by a tenth of --rate a second (default --rate: no ramp)")
			fs.Float64Var(&o.maxCPUPressure, "max-cpu-pressure", 0, "back off while the node's CPU stall share (Linux PSI, 0-1) is over this, to spare neighbours, at the cost of a longer warm-up (default 0: off; 0.1-0.2 for shared nodes, see docs/benchmarks-jvm.md)")
			fs.StringVar(&o.pressureFile, "cpu-pressure-file", replayer.DefaultPressureFile, "PSI file --max-cpu-pressure reads")
			fs.IntVar(&o.concurrency, "concurrency", 16, "sessions replayed at once")
			fs.Float64Var(&o.speed, "speed", 0, "replay pace as a multiple of the recorded pace; 0: as fast as --rate allows")
			fs.StringVar(&o.correlate, "correlate", "id", "JSON field tying a response to its request (\"\": latency is time to the next server message)")
			fs.DurationVar(&o.responseTimeout, "response-timeout", 10*time.Second, "a request without a response by then counts as a timeout")
			o.replayRules.register(fs)
			fs.BoolVar(&o.noBackoff, "no-backoff", false, "hold --rate whatever the target's latency and errors")
			fs.StringVar(&o.route, "route", "", "replay only sessions whose route starts with this")
			fs.StringVar(&o.mode, "mode", "coverage", "how the cache picks sessions: coverage, newest or random")
			fs.DurationVar(&o.maxAge, "max-age", 0, "replay only sessions that connected this recently")
			fs.BoolVar(&o.dryRun, "dry-run", false, "print what would be sent and skipped for --dry-run-sessions sessions; touch nothing")
			fs.IntVar(&o.dryRunSessions, "dry-run-sessions", 5, "sessions --dry-run prints")
			fs.BoolVar(&o.keepWarming, "keep-warming", false, "keep replaying after release (default: stop, the pod takes real traffic)")
			fs.DurationVar(&o.progress, "progress", 5*time.Second, "log a progress line this often")
			return o
		},
		run: runWarm,
	}
}

func runWarm(ctx context.Context, e *env, args []string) error {
	o := e.opts.(*warmOptions)
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	_, err := warm(ctx, e, o)
	return err
}

// loadMeter tells readiness how much of --rate the back-off lets the replay
// send (readiness.Options.LoadShare). Its share is the rate limit over
// --rate while the limit is what paces the replay, and 1 while the replay
// sends well under its limit for reasons of its own (few or slow sessions,
// a slow pod at --concurrency): lowering the limit then takes no load off
// the pod.
type loadMeter struct {
	sent uint64
	at   time.Time
}

// share is called once per readiness interval with the messages sent so
// far and the current rate limit.
func (m *loadMeter) share(now time.Time, sent uint64, limit, rate float64) float64 {
	prevSent, prevAt := m.sent, m.at
	m.sent, m.at = sent, now
	if limit >= rate || prevAt.IsZero() || !now.After(prevAt) || sent < prevSent {
		return 1
	}
	if sending := float64(sent-prevSent) / now.Sub(prevAt).Seconds(); sending < 0.8*limit {
		return 1 // the limit does not bind
	}
	return limit / rate
}

// warmResult is what a warm run produced.
type warmResult struct {
	Decision readiness.Decision
	Report   *readiness.Report
	Stats    replayer.Stats
	// ReportPaths are the files written, if any.
	ReportPaths []string
}

func (o *warmOptions) validate() error {
	switch {
	case o.cacheURL == "":
		return usagef("--cache is required")
	case o.target == "" && !o.dryRun:
		return usagef("--target is required")
	case o.metricsURL == "" && !o.dryRun && !o.noJIT && o.compileMetric != "":
		return usagef("--metrics is required (a target without a JIT may go without: --no-jit releases on replay latency)")
	case o.window < 10*time.Second && !o.allowShortWindow:
		return usagef("--window %v: at least 10s, longer than the lull between JIT compile waves", o.window)
	case o.deadline <= 0:
		return usagef("--deadline must be positive")
	case o.minResponses < 0:
		return usagef("--min-responses must not be negative")
	case !(o.holdTolerance >= 1) || math.IsInf(o.holdTolerance, 0): // NaN too
		return usagef("--hold-tolerance %v: a factor of at least 1 (1: a strict hold)", o.holdTolerance)
	case o.minWarm < 0 || o.minWarm > o.deadline:
		return usagef("--min-warm %v: between 0 and --deadline", o.minWarm)
	case o.onDeadline != "open" && o.onDeadline != "closed":
		return usagef("--on-deadline %q: open or closed", o.onDeadline)
	case o.rate == 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return usagef("--rate must be a finite number other than 0 (negative: no limit)")
	case o.concurrency <= 0:
		return usagef("--concurrency must be positive")
	case o.speed < 0:
		return usagef("--speed must not be negative")
	case o.startRate < 0:
		return usagef("--start-rate must not be negative")
	case !(o.maxCPUPressure >= 0 && o.maxCPUPressure < 1): // NaN too
		return usagef("--max-cpu-pressure %v: a share of time, 0 (off) up to below 1", o.maxCPUPressure)
	case o.initMode && o.keepWarming:
		return usagef("--init and --keep-warming do not go together: an init container ends at release")
	}
	return nil
}

// replayOptions builds the replayer's options from the flags.
func (o *warmOptions) replayOptions(log *slog.Logger) (*replayer.Options, error) {
	ro := &replayer.Options{
		Speed:           o.speed,
		Rate:            o.rate,
		Concurrency:     o.concurrency,
		Correlate:       o.correlate,
		ResponseTimeout: o.responseTimeout,
		NoBackoff:       o.noBackoff,
		StartRate:       o.startRate,
		MaxCPUPressure:  o.maxCPUPressure,
		PressureFile:    o.pressureFile,
		Logger:          log,
	}
	if err := o.replayRules.apply(ro); err != nil {
		return nil, err
	}
	return ro, nil
}

func (o *warmOptions) selectRequest() (replaycache.SelectRequest, error) {
	mode, err := replaycache.ParseMode(o.mode)
	if err != nil {
		return replaycache.SelectRequest{}, usagef("--mode: %v", err)
	}
	return replaycache.SelectRequest{Mode: mode, Filter: replaycache.Filter{
		Route: o.route, MaxAge: o.maxAge, CompleteOnly: true, MinClientFrames: 2,
	}}, nil
}

// warm runs one warm-up: replay, watch, release. It returns when the run
// has ended (and, with --ready-addr and without --init, once ctx ends after
// the release, so the probe keeps answering 200).
func warm(ctx context.Context, e *env, o *warmOptions) (warmResult, error) {
	if err := o.validate(); err != nil {
		return warmResult{}, err
	}
	log := e.log
	if err := o.replayRules.validate(log, false); err != nil {
		return warmResult{}, err
	}
	ropts, err := o.replayOptions(log)
	if err != nil {
		return warmResult{}, err
	}
	req, err := o.selectRequest()
	if err != nil {
		return warmResult{}, err
	}
	cache, err := replaycache.NewClient(o.cacheURL, &replaycache.ClientOptions{Token: o.cacheToken})
	if err != nil {
		return warmResult{}, usagef("--cache: %v", err)
	}
	sets := warmSets{replay: metrics.NewSet(), source: metrics.NewSet(), readiness: metrics.NewSet(), gate: metrics.NewSet()}
	ropts.Metrics = sets.replay
	srcOpts := &replayer.CacheSourceOptions{Request: req, Logger: log, Metrics: sets.source}

	if o.dryRun {
		srcOpts.Max = o.dryRunSessions
		srcOpts.Request.Limit = o.dryRunSessions
		ropts.DryRun = e.stdout
		target := o.target
		if target == "" {
			target = "ws://dry-run.invalid"
		}
		r, err := replayer.New(target, ropts)
		if err != nil {
			return warmResult{}, usagef("%v", err)
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = r.Run(dctx, replayer.NewCacheSource(cache, srcOpts))
		st := r.Stats()
		fmt.Fprintf(e.stdout, "dry run: %d sessions, %d messages skipped %v\n", st.SessionsCompleted, sum(st.MessagesSkipped), st.MessagesSkipped)
		if errors.Is(err, context.DeadlineExceeded) {
			return warmResult{Stats: st}, fmt.Errorf("dry run: the cache gave no sessions within 30s")
		}
		return warmResult{Stats: st}, err
	}

	wopts := &readiness.Options{
		Interval:       o.interval,
		BearerToken:    o.metricsToken,
		JitterMetric:   o.jitterMetric,
		JitterQuantile: o.jitterQuantile,
		CompileMetric:  o.compileMetric,
		NoJIT:          o.noJIT || o.compileMetric == "",
		Window:         o.window,
		Hold:           o.hold,
		HoldTolerance:  o.holdTolerance,
		MinWarm:        o.minWarm,
		MaxWarm:        o.deadline,
		MinResponses:   o.minResponses,
		MaxJitter:      o.maxJitter,
		MaxCompileRate: o.maxCompileRate,
		MaxLatency:     o.maxLatency,
		FailClosed:     o.onDeadline == "closed",
		Logger:         log,
		Metrics:        sets.readiness,
	}
	if o.minWarm == 0 {
		wopts.MinWarm = time.Nanosecond // 0 means the default; the flag said none
	}
	var rp *replayer.Replayer // set before the watcher runs
	if o.rate > 0 && o.speed == 0 && !o.noBackoff {
		// A back-off that holds the replay down must not make a pod that
		// compiles slowly because it is replayed slowly look warm.
		var m loadMeter
		wopts.LoadShare = func() float64 { return m.share(time.Now(), rp.Stats().MessagesSent, rp.RateLimit(), o.rate) }
	}
	watcher, err := readiness.NewWatcher(o.metricsURL, wopts)
	if err != nil {
		return warmResult{}, usagef("%v", err)
	}
	ropts.OnResponse = func(r replayer.Response) { watcher.ObserveLatency(r.At, r.Latency) }
	rp, err = replayer.New(o.target, ropts)
	if err != nil {
		return warmResult{}, usagef("%v", err)
	}
	src := replayer.NewCacheSource(cache, srcOpts)
	// The router learns which pod is ready from the webhook's headers.
	hookHeader := http.Header{"X-Preheat-Target": {o.target}}
	if host, err := os.Hostname(); err == nil {
		hookHeader.Set("X-Preheat-Host", host)
	}
	gate := readiness.NewGate(&readiness.GateOptions{
		File: o.readyFile, Webhook: o.webhook, WebhookToken: o.webhookToken, WebhookHeader: hookHeader,
		Logger: log, Metrics: sets.gate,
	})

	run := &warmRun{o: o, e: e, watcher: watcher, replay: rp, source: src, gate: gate, sets: sets}
	defer run.stopReplay()
	var srv *http.Server
	var srvDone chan error
	if o.readyAddr != "" {
		ln, err := net.Listen("tcp", o.readyAddr)
		if err != nil {
			return warmResult{}, fmt.Errorf("listen on --ready-addr: %w", err)
		}
		srv = &http.Server{Handler: run.handler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		srvDone = make(chan error, 1)
		go func() { srvDone <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			<-srvDone
		}()
		log.Info("warm: serving /readyz", "addr", ln.Addr().String())
	}
	metricsURL := o.metricsURL
	if metricsURL == "" {
		metricsURL = "none (--no-jit: replay latency decides)"
	}
	log.Info("warm: starting", "target", o.target, "metrics", metricsURL, "cache", o.cacheURL,
		"rate", o.rate, "concurrency", o.concurrency, "deadline", o.deadline, "window", o.window, "on_deadline", o.onDeadline)

	res, err := run.run(ctx)
	if err != nil {
		return res, err
	}
	if o.report != "" {
		paths, werr := writeReport(o.report, "warm-report", res.Report, readiness.WriteJSON, readiness.WriteHTML)
		if werr != nil {
			log.Error("warm: writing the report failed", "err", werr)
		} else {
			res.ReportPaths = paths
			log.Info("warm: report written", "html", paths[1], "json", paths[0])
		}
	}
	if o.stopAfterRelease {
		return res, nil
	}
	if o.initMode || srv == nil {
		if !res.Decision.Release {
			return res, exitCode(1)
		}
		return res, nil
	}
	// A sidecar: keep answering the probe until the pod stops.
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		srvDone <- err
		return res, fmt.Errorf("ready server: %w", err)
	}
	return res, nil
}

// warmSets are a run's metric sets, served on the ready server's /metrics.
type warmSets struct{ replay, source, readiness, gate *metrics.Set }

// warmRun is one run's moving parts, shared with its HTTP handlers.
type warmRun struct {
	o       *warmOptions
	e       *env
	watcher *readiness.Watcher
	replay  *replayer.Replayer
	source  *replayer.CacheSource
	gate    *readiness.Gate
	sets    warmSets

	cancelReplay context.CancelFunc
	replayDone   chan error

	mu     sync.Mutex
	result *warmResult
}

// replayStopGrace bounds how long the end of a warm-up waits for the
// sessions in flight to close normally (see replayer.Replayer.Stop) before
// it drops them. The release waits for it.
const replayStopGrace = 2 * time.Second

// stopReplay ends the replay and waits for it; safe to call twice. Sessions
// in flight close as clients leave, not by a dropped connection: a JVM that
// never saw a dropped connection during the warm-up deoptimizes its request
// reading path when it sees one, just as it is released
// (docs/benchmarks-jvm.md, "The warm-up's end", session 7).
func (w *warmRun) stopReplay() {
	if w.replayDone == nil {
		return
	}
	w.replay.Stop()
	grace := time.NewTimer(replayStopGrace)
	defer grace.Stop()
	var err error
	select {
	case err = <-w.replayDone:
	case <-grace.C:
		w.e.log.Warn("warm: sessions did not close within the grace period; dropping them", "grace", replayStopGrace)
		w.cancelReplay()
		err = <-w.replayDone
	}
	w.cancelReplay()
	if err != nil && !errors.Is(err, context.Canceled) {
		w.e.log.Warn("warm: replay ended with an error", "err", err)
	}
	w.replayDone = nil
}

func (w *warmRun) run(ctx context.Context) (warmResult, error) {
	log := w.e.log
	replayCtx, cancel := context.WithCancel(ctx)
	w.cancelReplay = cancel
	w.replayDone = make(chan error, 1)
	go func() { w.replayDone <- w.replay.Run(replayCtx, w.source) }()
	progressDone := make(chan struct{})
	progressCtx, stopProgress := context.WithCancel(ctx)
	go func() {
		defer close(progressDone)
		w.logProgress(progressCtx)
	}()

	d, werr := w.watcher.Run(ctx)
	stopProgress()
	<-progressDone
	if werr != nil {
		w.stopReplay()
		return w.finish(d), werr
	}
	if !w.o.keepWarming {
		w.stopReplay()
	}
	if d.Release {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.gate.Release(rctx, d)
		cancel()
		if err != nil {
			log.Error("warm: released, but notifying failed", "err", err)
		}
	} else {
		w.gate.Fail(d.Reason)
	}
	return w.finish(d), nil
}

func (w *warmRun) finish(d readiness.Decision) warmResult {
	res := warmResult{Decision: d, Report: w.buildReport(), Stats: w.replay.Stats()}
	w.mu.Lock()
	w.result = &res
	w.mu.Unlock()
	return res
}

func (w *warmRun) buildReport() *readiness.Report {
	rep := w.watcher.Report()
	rep.Target = w.o.target
	st := w.replay.Stats()
	facts := []readiness.Fact{
		{Name: "Sessions replayed", Value: fmt.Sprintf("%d started, %d completed, %d stopped at the end, %d failed %s", st.SessionsStarted, st.SessionsCompleted, st.SessionsStopped, sum(st.SessionsFailed), fmtCounts(st.SessionsFailed))},
		{Name: "Messages sent", Value: strconv.FormatUint(st.MessagesSent, 10)},
		{Name: "Messages not sent", Value: fmt.Sprintf("%d %s", sum(st.MessagesSkipped), fmtCounts(st.MessagesSkipped))},
		{Name: "Messages not sent, by kind", Value: fmtKinds(st.SkippedByKind, 8)},
		{Name: "Protocol", Value: fmt.Sprintf("%d control messages sent, %d answers to the server, %d waits for the recorded order expired", st.MessagesControl, st.Answered, st.OrderWaitsExpired)},
		{Name: "Responses measured", Value: fmt.Sprintf("%d (timeouts %d)", st.Responses, st.Timeouts)},
		{Name: "Replay latency p50 / p99", Value: fmt.Sprintf("%v / %v", st.LatencyP50.Round(10*time.Microsecond), st.LatencyP99.Round(10*time.Microsecond))},
		{Name: "Message kinds covered", Value: strconv.Itoa(w.source.KindsCovered())},
		{Name: "Replay rate limit at the end", Value: fmtRate(st.RateLimit)},
		{Name: "Concurrency", Value: strconv.Itoa(w.o.concurrency)},
	}
	if len(w.o.rehearse) > 0 {
		facts = append(facts, readiness.Fact{Name: "Mutations sent as rehearsals", Value: fmt.Sprintf("%d (--rehearse %s)", st.MessagesRehearsed, strings.Join(w.o.rehearse, " "))})
	}
	if w.o.maxCPUPressure > 0 {
		last := "unreadable"
		if st.CPUPressure >= 0 {
			last = fmt.Sprintf("%.3f", st.CPUPressure)
		}
		facts = append(facts, readiness.Fact{Name: "Node CPU pressure limit / last second", Value: fmt.Sprintf("%.3f / %s", w.o.maxCPUPressure, last)})
	}
	rep.Facts = append(facts, rep.Facts...)
	return rep
}

func (w *warmRun) logProgress(ctx context.Context) {
	if w.o.progress <= 0 {
		return
	}
	t := time.NewTicker(w.o.progress)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ws := w.watcher.Status()
		st := w.replay.Stats()
		attrs := []any{"elapsed", ws.Elapsed.Round(time.Second), "sessions", st.SessionsCompleted, "active", st.Active,
			"failed", fmtCounts(st.SessionsFailed), "sent", st.MessagesSent, "skipped", fmtCounts(st.MessagesSkipped), "rate", fmtRate(st.RateLimit),
			"flat_for", ws.FlatFor.Round(time.Second)}
		if st.CPUPressure >= 0 {
			attrs = append(attrs, "cpu_pressure", fmt.Sprintf("%.3f", st.CPUPressure))
		}
		for _, s := range ws.Signals {
			if s.Present {
				attrs = append(attrs, s.Signal.String(), fmt.Sprintf("%.4g flat=%v", s.Value, s.Flat))
			}
		}
		w.e.log.Info("warm: progress", attrs...)
	}
}

// handler serves the ready server: /readyz, /healthz, /status, /report,
// /report.json, /metrics.
func (w *warmRun) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", w.gate)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { io.WriteString(rw, "ok\n") })
	mux.HandleFunc("GET /status", func(rw http.ResponseWriter, _ *http.Request) {
		ws := w.watcher.Status()
		type signal struct {
			Name    string  `json:"name"`
			Present bool    `json:"present"`
			Flat    bool    `json:"flat"`
			Value   float64 `json:"value"`
			Why     string  `json:"why"`
		}
		var sigs []signal
		for _, s := range ws.Signals {
			v := s.Value
			if v != v { // NaN does not encode
				v = -1
			}
			sigs = append(sigs, signal{s.Signal.String(), s.Present, s.Flat, v, s.Why})
		}
		writeJSON(rw, map[string]any{
			"elapsed_seconds":  ws.Elapsed.Seconds(),
			"ready":            w.gate.Ready(),
			"flat_for_seconds": ws.FlatFor.Seconds(),
			"signals":          sigs,
			"decision":         ws.Decision,
			"replay":           w.replay.Stats(),
			"scrapes":          ws.Scrapes,
			"scrape_errors":    ws.ScrapeErrors,
		})
	})
	mux.HandleFunc("GET /report.json", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = readiness.WriteJSON(rw, w.currentReport())
	})
	mux.HandleFunc("GET /report", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = readiness.WriteHTML(rw, w.currentReport())
	})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
		for _, s := range []*metrics.Set{w.sets.replay, w.sets.source, w.sets.readiness, w.sets.gate} {
			s.WritePrometheus(rw)
		}
		metrics.WriteProcessMetrics(rw)
	})
	return mux
}

func (w *warmRun) currentReport() *readiness.Report {
	w.mu.Lock()
	res := w.result
	w.mu.Unlock()
	if res != nil {
		return res.Report
	}
	return w.buildReport()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeReport writes a report as dir/base.json and dir/base.html and
// returns their paths, JSON first.
func writeReport[R any](dir, base string, r R, writeJSON, writeHTML func(io.Writer, R) error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	paths := []string{filepath.Join(dir, base+".json"), filepath.Join(dir, base+".html")}
	for i, write := range []func(io.Writer, R) error{writeJSON, writeHTML} {
		f, err := os.Create(paths[i])
		if err == nil {
			err = errors.Join(write(f, r), f.Close())
		}
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", paths[i], err)
		}
	}
	return paths, nil
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// fmtKinds formats skip counts by reason and kind, the n most frequent
// kinds of each reason: "mutating: updateTask 12, deleteTask 3; unknown: ...".
func fmtKinds(m map[string]map[string]uint64, n int) string {
	reasons := make([]string, 0, len(m))
	for r := range m {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var parts []string
	for _, r := range reasons {
		kinds := make([]string, 0, len(m[r]))
		for k := range m[r] {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool {
			a, b := m[r][kinds[i]], m[r][kinds[j]]
			return a > b || a == b && kinds[i] < kinds[j]
		})
		var ks []string
		for i, k := range kinds {
			if i == n {
				ks = append(ks, fmt.Sprintf("%d more kinds", len(kinds)-n))
				break
			}
			if k == "" {
				k = "(no kind)"
			}
			ks = append(ks, fmt.Sprintf("%s %d", strconv.Quote(k), m[r][kinds[i]]))
		}
		parts = append(parts, r+": "+strings.Join(ks, ", "))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func fmtRate(r float64) string {
	if r < 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f msg/s", r)
}
