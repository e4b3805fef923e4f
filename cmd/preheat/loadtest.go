package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
)

// loadtestOptions are preheat loadtest's settings.
type loadtestOptions struct {
	source, sourceToken string
	sessions            int
	mode, route         string
	window, loadTimeout time.Duration

	target, compare    string
	rate               multiplier
	rateGiven          bool
	sessionsPerSecond  float64
	concurrency        int
	duration, drain    time.Duration
	ramp, rampUp       time.Duration
	rampDown           time.Duration
	speed              float64
	maxActive          int
	interval           time.Duration
	abortAfter         time.Duration
	thresholds         repeated
	failOnRegression   bool
	minEffect          float64
	confidence         float64
	report, metricsAdr string
	progress           time.Duration

	correlate       string
	responseTimeout time.Duration
	allowMutations  bool
	replayRules
}

// multiplier is a --rate value: "3x" or "3", a multiple of the recorded
// arrival rate.
type multiplier float64

func (m *multiplier) String() string { return strconv.FormatFloat(float64(*m), 'g', -1, 64) + "x" }

func (m *multiplier) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "x"), 64)
	if err != nil || v <= 0 || v != v || v > 1e6 {
		return fmt.Errorf("rate %q: want a positive multiple of the recorded rate such as 3x", s)
	}
	*m = multiplier(v)
	return nil
}

func loadtestCommand() *command {
	return &command{
		name:    "loadtest",
		summary: "replay the captured corpus against staging at a multiple of real load",
		usage:   "--source URL --target URL [--rate 3x | --sessions-per-second N | --concurrency N] --duration D [flags]",
		help: `Replays captured sessions, whole, against a staging target at a multiple of
the load they were recorded under, measures the target's latency (HDR
histograms, overall and per message kind), errors by class and throughput,
and judges the run against thresholds, for CI pipelines.

Sources (--source):
  http(s)://HOST:PORT     a replay cache ('preheat cache'); --sessions of them are
                          loaded, the recorded rate is that of the whole cache
  file:///DIR, kinesis:// a stream, read to its end and reassembled in-process:
                          every session a directory log retains, the last 15m
                          of a Kinesis stream; --window sets how far back
  FILE or file:///FILE    a corpus file: JSON lines of events, as written by
                          'preheat inspect --session ID --json' or a cache's
                          /v1/select?format=jsonl; "-" reads standard input
The corpus is loaded first; a run cycles through it.

Load (one of):
  --rate 3x                   open model (the default, at 1x): sessions start at
                              3 times the recorded arrival rate, whether or not
                              earlier ones have finished, so latency is free of
                              coordinated omission
  --sessions-per-second N     open model at a fixed rate
  --concurrency N             closed model: N sessions at once, each followed by
                              the next as soon as it ends
--ramp (or --ramp-up, --ramp-down) ramps the start rate (the sessions at once
in the closed model) linearly at the start and the end of --duration. Within a
session, messages keep their recorded pace (--speed).

Thresholds (--threshold, repeatable) fail the run with exit status 1:
  p99<250ms  p50<=20ms  p99.9<1s  max<2s  mean<30ms   latency of every response
  p99[tasks.list]<100ms                               latency of one message kind
  errors<0.1%  errors[connect]<=0                     errors per operation (a
                                                      session's connection or a
                                                      message sent)
  rps>=500                                            responses per second
With --compare they are checked against both targets.

--compare URL drives a second target with the same sessions at the same moments
and reports each metric's difference (p50, p90, p99, mean, throughput, error
rate) with a confidence interval from a paired bootstrap over --interval
slices: "candidate is 12% slower at p99" only when the interval excludes no
change and the change is at least --min-effect. --fail-on-regression exits 1
on any finding that the candidate is worse.

A target that is down, or goes down, ends the run after --abort-after without
a connection, with a summary and exit status 1; a run interrupted by a signal
also prints its summary. --report DIR writes loadtest-report.json and
loadtest-report.html (latency over time, percentiles). --metrics-addr serves
Prometheus metrics while the run lasts.

` + replayRulesHelp + `
A load test against staging must not mutate: --allow-mutations is the only way
to send everything.

` + replayRewriteHelp + `

Exit status: 0 when the run completed and every threshold passed; 1 when a
threshold failed, a regression was found under --fail-on-regression, the run
was aborted or could not run; 2 on a bad command line.`,
		setup: withFlags(loadtestFlags, runLoadtest),
	}
}

// loadtestFlags declares the loadtest command's flags into a new loadtestOptions.
func loadtestFlags(fs *flag.FlagSet) *loadtestOptions {
	o := &loadtestOptions{rate: 1}
	fs.StringVar(&o.source, "source", "", "where sessions come from: a replay cache http(s)://, a stream file:///DIR or kinesis://STREAM, or a corpus file; required")
	fs.StringVar(&o.sourceToken, "source-token", os.Getenv("PREHEAT_CACHE_TOKEN"), "bearer token for a cache --source (default $PREHEAT_CACHE_TOKEN)")
	fs.IntVar(&o.sessions, "sessions", 1000, "distinct sessions to load from a cache or stream")
	fs.StringVar(&o.mode, "mode", "random", "how sessions are picked from a cache or stream: random, newest or coverage")
	fs.StringVar(&o.route, "route", "", "replay only sessions whose route starts with this (cache or stream)")
	fs.DurationVar(&o.window, "window", 0, "stream source: sessions that connected this recently (default: every session a file:// log retains; 15m of a kinesis:// stream)")
	fs.DurationVar(&o.loadTimeout, "load-timeout", 2*time.Minute, "give up loading the corpus after this long")
	fs.StringVar(&o.target, "target", "", "the target's websocket URL, ws:// or wss:// (without a path, each session's recorded route is used); required")
	fs.StringVar(&o.compare, "compare", "", "a second target driven with the same sessions at the same moments, and compared")
	fs.Func("rate", "open model: a multiple of the recorded arrival rate, such as 3x (default 1x)", func(s string) error {
		o.rateGiven = true
		return o.rate.Set(s)
	})
	fs.Float64Var(&o.sessionsPerSecond, "sessions-per-second", 0, "open model at this fixed rate instead")
	fs.IntVar(&o.concurrency, "concurrency", 0, "closed model: this many sessions at once")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long sessions are started for, ramps included")
	fs.DurationVar(&o.ramp, "ramp", 0, "ramp up at the start and down at the end over this long")
	fs.DurationVar(&o.rampUp, "ramp-up", 0, "ramp up over this long (overrides --ramp)")
	fs.DurationVar(&o.rampDown, "ramp-down", 0, "ramp down over this long (overrides --ramp)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long sessions running at the end may finish before they are cut")
	fs.Float64Var(&o.speed, "speed", 1, "pace within a session as a multiple of its recorded pace; 0: as fast as the messages can be written")
	fs.IntVar(&o.maxActive, "max-active", 10000, "open model: sessions in flight per target past which arrivals are dropped and counted")
	fs.DurationVar(&o.interval, "interval", time.Second, "slice of the latency-over-time series and of the comparison")
	fs.DurationVar(&o.abortAfter, "abort-after", 15*time.Second, "end the run when a target has taken no connection for this long (0: never)")
	fs.Var(&o.thresholds, "threshold", "pass condition such as p99<250ms or errors<0.1% (repeatable; see above)")
	fs.BoolVar(&o.failOnRegression, "fail-on-regression", false, "with --compare, exit 1 when the candidate is found worse on any metric")
	fs.Float64Var(&o.minEffect, "min-effect", 0.05, "with --compare, the smallest relative change reported as a finding")
	fs.Float64Var(&o.confidence, "confidence", 0.95, "with --compare, the family-wise confidence level of the intervals")
	fs.StringVar(&o.report, "report", "", "write loadtest-report.json and loadtest-report.html to this directory")
	fs.StringVar(&o.metricsAdr, "metrics-addr", "", "serve Prometheus metrics on this address while running, such as :9102")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "log a progress line this often when stdout is not a terminal (0: never)")
	fs.StringVar(&o.correlate, "correlate", "id", "JSON field tying a response to its request (\"\": latency is time to the next server message)")
	fs.DurationVar(&o.responseTimeout, "response-timeout", 10*time.Second, "a request without a response by then counts as a timeout")
	fs.BoolVar(&o.allowMutations, "allow-mutations", false, "send every message, mutating or not: turns the safety filter off")
	o.replayRules.register(fs)
	return o
}

func (o *loadtestOptions) validate() error {
	models := 0
	for _, given := range []bool{o.rateGiven, o.sessionsPerSecond > 0, o.concurrency > 0} {
		if given {
			models++
		}
	}
	switch {
	case o.source == "":
		return usagef("--source is required")
	case o.target == "":
		return usagef("--target is required")
	case models > 1:
		return usagef("--rate, --sessions-per-second and --concurrency are alternatives: give one")
	case o.sessionsPerSecond < 0 || o.concurrency < 0:
		return usagef("--sessions-per-second and --concurrency must not be negative")
	case o.duration <= 0:
		return usagef("--duration must be positive")
	case o.speed < 0:
		return usagef("--speed must not be negative")
	case o.sessions <= 0:
		return usagef("--sessions must be positive")
	case o.window < 0:
		return usagef("--window must not be negative")
	case o.minEffect <= 0 || o.confidence <= 0 || o.confidence >= 1:
		return usagef("--min-effect must be positive and --confidence between 0 and 1")
	case o.allowMutations && len(o.rehearse) > 0:
		return usagef("--rehearse with --allow-mutations: mutations would be sent as recorded, not rehearsed; choose one")
	case o.failOnRegression && o.compare == "":
		return usagef("--fail-on-regression needs --compare")
	}
	return nil
}

func runLoadtest(ctx context.Context, e *env, o *loadtestOptions, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if err := o.validate(); err != nil {
		return err
	}
	var ths []loadtest.Threshold
	for _, s := range o.thresholds {
		th, err := loadtest.ParseThreshold(s)
		if err != nil {
			return usagef("--threshold: %v", err)
		}
		ths = append(ths, th)
	}
	if err := o.replayRules.validate(e.log, o.allowMutations); err != nil {
		return err
	}
	ropts := &replayer.Options{Correlate: o.correlate, ResponseTimeout: o.responseTimeout}
	if err := o.replayRules.apply(ropts); err != nil {
		return err
	}
	if o.allowMutations {
		ropts.SendMutating, ropts.SendUnknown = true, true
	}
	up, down := o.ramp, o.ramp
	if o.rampUp > 0 {
		up = o.rampUp
	}
	if o.rampDown > 0 {
		down = o.rampDown
	}
	speed := o.speed
	if speed == 0 {
		speed = -1 // the library's "no pacing"
	}
	abort := o.abortAfter
	if abort == 0 {
		abort = -1
	}
	lopts := &loadtest.Options{
		Multiplier: float64(o.rate), SessionsPerSecond: o.sessionsPerSecond, Concurrency: o.concurrency,
		Duration: o.duration, RampUp: up, RampDown: down, Drain: o.drain, Speed: speed,
		MaxActive: o.maxActive, Interval: o.interval, AbortAfter: abort,
		Compare: o.compare, Confidence: o.confidence, MinEffect: o.minEffect,
		Replay: ropts, Logger: e.log,
	}

	lctx, cancel := context.WithTimeout(ctx, o.loadTimeout)
	corpus, err := o.loadCorpus(lctx, e.log)
	cancel()
	if err != nil {
		return err
	}
	if len(corpus.Sessions) == 0 {
		return fmt.Errorf("source %s: no sessions to replay", o.source)
	}
	e.log.Info("loadtest: corpus loaded", "sessions", len(corpus.Sessions), "dropped", corpus.Dropped,
		"recorded_rate", fmt.Sprintf("%.4g/s", corpus.Rate))
	r, err := loadtest.New(corpus, o.target, lopts)
	if err != nil {
		return usagef("%v", err)
	}
	// The runner keeps the sessions' plans, not the corpus: the recorded
	// server messages, often most of it, are garbage now. Give their
	// memory back before the run rather than carry it through.
	corpus = nil
	debug.FreeOSMemory()

	if o.metricsAdr != "" {
		ln, err := net.Listen("tcp", o.metricsAdr)
		if err != nil {
			return fmt.Errorf("listen on --metrics-addr: %w", err)
		}
		defer r.ServeMetrics(ln)()
	}
	e.log.Info("loadtest: starting", "target", o.target, "compare", o.compare, "model", loadModel(o), "rate", fmt.Sprintf("%.4g/s", r.Rate()),
		"duration", o.duration, "ramp_up", up, "ramp_down", down)

	var wg sync.WaitGroup
	pctx, stopProgress := context.WithCancel(ctx)
	popts := &loadtest.ProgressOptions{Interval: o.progress}
	if isTerminal(e.stdout) {
		popts.Terminal = e.stdout
	}
	wg.Go(func() { r.ShowProgress(pctx, popts) })
	res, err := r.Run(ctx)
	stopProgress()
	wg.Wait()
	if err != nil {
		return err
	}
	passed := res.Check(ths)
	if o.report != "" {
		paths, err := loadtest.WriteReport(o.report, res)
		if err != nil {
			e.log.Error("loadtest: writing the report failed", "err", err)
		} else {
			e.log.Info("loadtest: report written", "html", paths[1], "json", paths[0])
		}
	}
	_ = loadtest.WriteSummary(e.stdout, res) // a stdout that fails changes no verdict
	regressed := o.failOnRegression && res.Comparison.Worse()
	if !passed || regressed || res.Aborted != "" {
		return exitCode(1)
	}
	return nil
}

func loadModel(o *loadtestOptions) string {
	if o.concurrency > 0 {
		return "closed"
	}
	return "open"
}

// loadCorpus loads the sessions --source names.
func (o *loadtestOptions) loadCorpus(ctx context.Context, log *slog.Logger) (*loadtest.Corpus, error) {
	mode, err := replaycache.ParseMode(o.mode)
	if err != nil {
		return nil, usagef("--mode: %v", err)
	}
	c, err := loadtest.Load(ctx, o.source, &loadtest.SourceOptions{Token: o.sourceToken, Window: o.window, Logger: log,
		Request: replaycache.SelectRequest{Mode: mode, Filter: replaycache.Filter{
			Route: o.route, CompleteOnly: true, MinClientFrames: 1, Limit: o.sessions,
		}}})
	if se := (*loadtest.SourceError)(nil); errors.As(err, &se) {
		return nil, usagef("--source %q: %v", se.Source, se.Err)
	}
	return c, err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
