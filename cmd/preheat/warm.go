package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// warmOptions are preheat warm's flags.
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

	canary         string // the reference's URL; "": no canary
	canaryRate     float64
	canaryDuration time.Duration
	onRegression   string
}

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
                      deadline passes under --on-deadline=closed; exit 3 when a
                      canary found a regression and held the pod (see below)
  --ready-file PATH   write the decision as JSON to PATH on release
  --webhook URL       POST the decision as JSON to URL on release (the router)

Every run ends by --deadline: under --on-deadline=open (the default) the pod is
released anyway and the reason logged and counted; under closed it is not.
A cache that is unreachable, a target that crashes or a metrics endpoint that
never answers all end there.

--canary ws://REFERENCE compares the warm pod with a pod of the version in service
before the release: the same sessions, reads only, go to both at the same moments,
at most --canary-rate messages a second to each, for --canary-duration (never past
--deadline), and latency overall and per message kind and error rates are
compared (paired by interval, block bootstrap, 99% family-wise, 5% minimum
effect; docs/canary.md). The outcome, in the log, the report, /status and
/metrics, is no_regression, regression ("candidate is 14% slower at p99 on
tasks.search, 99% CI +9% to +19%") or inconclusive (too few responses, or a
reference that failed): inconclusive releases. On a regression,
--on-regression=hold (the default) keeps the pod unready until --deadline, so that
a rolling update stalls, and ends the run unreleased (exit 3 under --init);
release releases it and says so loudly.

` + replayRulesHelp + ` --dry-run
prints what would be sent and skipped, without touching the target.

` + replayRewriteHelp,
		setup: withFlags(warmFlags, runWarm),
	}
}

// warmFlags declares the warm command's flags into a new warmOptions.
func warmFlags(fs *flag.FlagSet) *warmOptions {
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
	fs.DurationVar(&o.deadline, "deadline", readiness.DefaultMaxWarm, "end the run by then, warm or not")
	fs.StringVar(&o.onDeadline, "on-deadline", "open", "at the deadline: open (release anyway) or closed (do not release)")
	fs.DurationVar(&o.minWarm, "min-warm", readiness.DefaultMinWarm, "never release before this")
	fs.IntVar(&o.minResponses, "min-responses", warmup.DefaultMinResponses, "never release before the replay has had this many responses: an idle pod's signals are flat too (0: no minimum, for a target that never answers)")
	fs.DurationVar(&o.window, "window", readiness.DefaultWindow, "sliding window each signal is judged over (at least 10s; longer than the lull between JIT waves)")
	fs.DurationVar(&o.hold, "hold", 0, "how long every signal must stay flat before release (default the window)")
	fs.Float64Var(&o.holdTolerance, "hold-tolerance", readiness.DefaultHoldTolerance, "once every signal is flat, the hold breaks on a value over this many times its limit, not over the limit itself (1: strict; a settled JIT's late compiles hover near the limit)")
	fs.DurationVar(&o.interval, "interval", readiness.DefaultInterval, "scrape interval")
	fs.StringVar(&o.jitterMetric, "jitter-metric", readiness.DefaultJitterMetric, "scheduler jitter metric, seconds (histogram, summary or gauge)")
	fs.Float64Var(&o.jitterQuantile, "jitter-quantile", readiness.DefaultJitterQuantile, "quantile of a jitter histogram")
	fs.StringVar(&o.compileMetric, "compile-metric", readiness.DefaultCompileMetric, "JIT compile time counter, ms; until it is seen the release waits for the deadline (see --no-jit)")
	fs.BoolVar(&o.noJIT, "no-jit", false, "the target has no JIT (Node, Go, a JVM under -Xint): decide on replay latency and any jitter gauge alone; --metrics becomes optional (also --compile-metric '')")
	fs.Float64Var(&o.maxJitter, "max-jitter", 0, "jitter limit in seconds (default none: jitter is judged on flatness; 0.02 suits quiet nodes)")
	fs.Float64Var(&o.maxCompileRate, "max-compile-rate", 0, fmt.Sprintf("compile limit in ms per second (default %v; negative: none)", readiness.DefaultMaxCompileRate))
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
	fs.StringVar(&o.canary, "canary", "", "once warm, compare the pod with this pod of the version in service, ws:// or wss:// (its Service, say), before the release")
	fs.Float64Var(&o.canaryRate, "canary-rate", canary.DefaultRate, "the canary's cap on the messages a second sent to each of the pod and the reference")
	fs.DurationVar(&o.canaryDuration, "canary-duration", canary.DefaultDuration, "how long the canary replays (never past --deadline)")
	fs.StringVar(&o.onRegression, "on-regression", "hold", "when the canary finds a regression: hold (stay unready until --deadline, then end unreleased) or release (release, and say so loudly)")
	return o
}

func runWarm(ctx context.Context, e *env, o *warmOptions, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if err := o.validate(); err != nil {
		return err
	}
	log := e.log
	if err := o.replayRules.validate(log, false); err != nil {
		return err
	}
	ropts, err := o.replayOptions(log)
	if err != nil {
		return err
	}
	req, err := o.selectRequest()
	if err != nil {
		return err
	}
	cache, err := replaycache.NewClient(o.cacheURL, &replaycache.ClientOptions{Token: o.cacheToken})
	if err != nil {
		return usagef("--cache: %v", err)
	}
	srcOpts := &replayer.CacheSourceOptions{Request: req, Logger: log, Metrics: metrics.NewSet()}
	if o.dryRun {
		srcOpts.Max, srcOpts.Request.Limit = o.dryRunSessions, o.dryRunSessions
		d, err := warmup.NewDryRun(o.target, ropts, e.stdout)
		if err != nil {
			return usagef("%v", err)
		}
		return d.Run(ctx, replayer.NewCacheSource(cache, srcOpts))
	}
	w, err := warmup.New(o.target, o.metricsURL, replayer.NewCacheSource(cache, srcOpts), o.warmupOptions(ropts, srcOpts.Metrics, log))
	if err != nil {
		return usagef("%v", err)
	}
	defer w.Close()

	var readyFailed <-chan error
	if o.readyAddr != "" {
		ln, err := net.Listen("tcp", o.readyAddr)
		if err != nil {
			return fmt.Errorf("listen on --ready-addr: %w", err)
		}
		var stop func()
		stop, readyFailed = w.ServeReady(ln)
		defer stop()
		log.Info("warm: serving /readyz", "addr", ln.Addr().String())
	}
	metricsURL := o.metricsURL
	if metricsURL == "" {
		metricsURL = "none (--no-jit: replay latency decides)"
	}
	log.Info("warm: starting", "target", o.target, "metrics", metricsURL, "cache", o.cacheURL,
		"rate", o.rate, "concurrency", o.concurrency, "deadline", o.deadline, "window", o.window, "on_deadline", o.onDeadline)
	if o.canary != "" {
		log.Info("warm: a canary will compare the pod with the version in service once warm", "reference", o.canary,
			"rate", o.canaryRate, "duration", o.canaryDuration, "on_regression", o.onRegression)
	}

	res, err := w.Run(ctx)
	if err != nil {
		return err
	}
	if o.report != "" {
		if paths, err := warmup.WriteReport(o.report, res.Report); err != nil {
			log.Error("warm: writing the report failed", "err", err)
		} else {
			log.Info("warm: report written", "html", paths[1], "json", paths[0])
		}
	}
	if o.initMode || readyFailed == nil {
		switch {
		case res.Decision.Outcome == readiness.OutcomeHeld:
			return exitCode(3)
		case !res.Decision.Release:
			return exitCode(1)
		}
		return nil
	}
	// A sidecar: keep answering the probe until the pod stops.
	select {
	case <-ctx.Done():
	case err := <-readyFailed:
		return fmt.Errorf("ready server: %w", err)
	}
	return nil
}

func (o *warmOptions) validate() error {
	switch {
	case o.cacheURL == "":
		return usagef("--cache is required")
	case o.target == "" && !o.dryRun:
		return usagef("--target is required")
	case o.metricsURL == "" && !o.dryRun && !o.noJIT && o.compileMetric != "":
		return usagef("--metrics is required (a target without a JIT may go without: --no-jit releases on replay latency)")
	case o.window < 10*time.Second:
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
	case o.canary != "" && o.keepWarming:
		return usagef("--canary and --keep-warming do not go together: the canary measures the pod under its own traffic only")
	case o.canary != "" && !strings.HasPrefix(o.canary, "ws://") && !strings.HasPrefix(o.canary, "wss://"):
		return usagef("--canary %q: a ws:// or wss:// URL of a pod of the version in service", o.canary)
	case !(o.canaryRate > 0) || math.IsInf(o.canaryRate, 0):
		return usagef("--canary-rate %v: a positive number of messages a second", o.canaryRate)
	case o.canaryDuration <= 0:
		return usagef("--canary-duration must be positive")
	case o.onRegression != "hold" && o.onRegression != "release":
		return usagef("--on-regression %q: hold or release", o.onRegression)
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
	return warmup.Select(mode, replaycache.Filter{Route: o.route, MaxAge: o.maxAge}), nil
}

// warmupOptions translates the flags into a warm-up's options; the source's
// metric set is served with the run's.
func (o *warmOptions) warmupOptions(ropts *replayer.Options, sourceMetrics *metrics.Set, log *slog.Logger) *warmup.Options {
	wo := &warmup.Options{
		Replay: ropts,
		Readiness: &readiness.Options{
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
			NoMinWarm:      o.minWarm == 0, // --min-warm 0 is none; MinWarm 0, the default
			MaxWarm:        o.deadline,
			MinResponses:   o.minResponses,
			MaxJitter:      o.maxJitter,
			MaxCompileRate: o.maxCompileRate,
			MaxLatency:     o.maxLatency,
			FailClosed:     o.onDeadline == "closed",
			Logger:         log,
		},
		Release: &readiness.GateOptions{
			File: o.readyFile, Webhook: o.webhook, WebhookToken: o.webhookToken, Logger: log,
		},
		KeepWarming: o.keepWarming,
		Progress:    o.progress,
		Metrics:     []*metrics.Set{sourceMetrics},
		Logger:      log,
	}
	if o.minResponses == 0 {
		wo.Readiness.MinResponses = -1 // likewise
	}
	if o.canary != "" {
		wo.Canary = &warmup.Canary{Reference: o.canary, ReleaseOnRegression: o.onRegression == "release",
			Options: &canary.Options{Rate: o.canaryRate, Duration: o.canaryDuration}}
	}
	if len(o.rehearse) > 0 {
		wo.Facts = func(st replayer.Stats) []readiness.Fact {
			return []readiness.Fact{{Name: "Mutations sent as rehearsals", Value: fmt.Sprintf("%d (--rehearse %s)", st.MessagesRehearsed, strings.Join(o.rehearse, " "))}}
		}
	}
	return wo
}
