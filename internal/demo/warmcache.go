package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// WarmOptions configure WarmFromCache; each field is the preheat warm flag
// it names. A nil *WarmOptions is valid; a zero field means its default,
// as preheat warm's.
type WarmOptions struct {
	// Rate is the replay's messages per second (--rate). Default
	// replayer's, 200.
	Rate float64
	// StartRate is the rate the replay ramps up from (--start-rate).
	// Default none: it starts at Rate.
	StartRate float64
	// MaxCPUPressure is the node's CPU pressure the replay backs off at
	// (--max-cpu-pressure). Default none.
	MaxCPUPressure float64
	// Concurrency is how many sessions are replayed at once
	// (--concurrency). Default replayer's, 16.
	Concurrency int
	// Rehearse are rehearsal rules (--rehearse), such as
	// "params.workspace=999": writes are sent in that form. Default none:
	// writes are skipped.
	Rehearse []string
	// Window is the signals' window (--window). Default
	// readiness.DefaultWindow, 10s.
	Window time.Duration
	// Hold is how long every signal must stay flat (--hold). Default
	// Window.
	Hold time.Duration
	// HoldTolerance widens the limits through the hold (--hold-tolerance).
	// Default readiness.DefaultHoldTolerance, 2.
	HoldTolerance float64
	// MinWarm is the earliest release (--min-warm). Default
	// readiness.DefaultMinWarm, 30s.
	MinWarm time.Duration
	// NoMinWarm releases as soon as the signals allow (--min-warm 0):
	// MinWarm is then ignored. Default false.
	NoMinWarm bool
	// Deadline is when the warm-up releases whatever the signals say
	// (--deadline). Default readiness.DefaultMaxWarm, 10m.
	Deadline time.Duration
	// MaxJitter is the jitter limit in seconds (--max-jitter); negative
	// means none. Default readiness's: none.
	MaxJitter float64
	// MaxCompileRate is the compile rate limit in ms/s
	// (--max-compile-rate). Default readiness.DefaultMaxCompileRate, 20.
	MaxCompileRate float64
	// Progress is how often a progress line is logged (--progress).
	// Default 10s.
	Progress time.Duration
}

// JVMWarmOptions returns the settings the JVM fixture (package
// jvmfixture) is warmed with, by its end-to-end test and by bench/jvm, and
// why they differ from preheat warm's defaults (docs/benchmarks-jvm.md has
// the measurements):
//
//   - window 10s, hold 10s: the fixture's C1 and C2 compile waves overlap
//     (its compile rate over 10 s does not lull under 20 ms/s between
//     them), so a 10 s window is not fooled by a lull here; with a 30 s
//     window and hold, the rate's tail of late compiles (3-28 ms/s for
//     minutes) kept five of six recorded JVMs from release within two
//     minutes.
//   - min-warm 10s: nothing here needs a later floor; the signals decide.
//   - max-jitter none (-1): on a shared 2-core machine the scheduler
//     jitter p99 of a warm JVM sits at 30-50 ms and spikes past 100 ms
//     whenever the machine is busy, cold or warm, so no absolute limit both
//     holds when warm and means anything when cold; jitter is still judged
//     for flatness (no significant trend over the window).
//   - rate 600 msg/s, concurrency 8: the rate the captured clients sent.
//   - deadline 3m.
//
// Writes are skipped, as by default; a rehearsal rule of
// "params.workspace=" and jvmfixture.SandboxWorkspace sends them to the
// fixture's sandbox workspace instead.
func JVMWarmOptions() WarmOptions {
	return WarmOptions{Window: 10 * time.Second, Hold: 10 * time.Second, MinWarm: 10 * time.Second,
		MaxJitter: -1, Rate: 600, Concurrency: 8, Deadline: 3 * time.Minute, HoldTolerance: readiness.DefaultHoldTolerance}
}

// WarmFromCache warms the websocket server at target, whose Prometheus
// metrics are at metricsURL, as preheat warm does: it replays the sessions
// of the replay cache at cacheURL in coverage order, correlating answers by
// their "id" (the sync protocol of package corpus), until the server is
// released, or the deadline and a minute more pass, or ctx ends. It logs a
// "warm: starting" line, progress lines and the warm-up's own lines to log.
// opts may be nil.
func WarmFromCache(ctx context.Context, target, metricsURL, cacheURL string, opts *WarmOptions, log *slog.Logger) (warmup.Result, error) {
	var o WarmOptions
	if opts != nil {
		o = *opts
	}
	if o.Deadline <= 0 {
		o.Deadline = readiness.DefaultMaxWarm
	}
	if o.Progress <= 0 {
		o.Progress = 10 * time.Second
	}
	if o.NoMinWarm {
		o.MinWarm = 0 // as the log line says
	}
	var rehearse []replayer.RehearseRule
	for _, r := range o.Rehearse {
		rule, err := replayer.ParseRehearseRule(r)
		if err != nil {
			return warmup.Result{}, fmt.Errorf("warm: %w", err)
		}
		rehearse = append(rehearse, rule)
	}
	client, err := replaycache.NewClient(cacheURL, nil)
	if err != nil {
		return warmup.Result{}, fmt.Errorf("warm: %w", err)
	}
	src := replayer.NewCacheSource(client, &replayer.CacheSourceOptions{
		Request: warmup.Select(replaycache.Coverage, replaycache.Filter{}), Logger: log})
	w, err := warmup.New(target, metricsURL, src, &warmup.Options{
		Replay: &replayer.Options{Rate: o.Rate, Concurrency: o.Concurrency, Correlate: "id",
			StartRate: o.StartRate, MaxCPUPressure: o.MaxCPUPressure, Rehearse: rehearse},
		Readiness: &readiness.Options{Window: o.Window, Hold: o.Hold, HoldTolerance: o.HoldTolerance, MinWarm: o.MinWarm, NoMinWarm: o.NoMinWarm, MaxWarm: o.Deadline,
			MaxJitter: o.MaxJitter, MaxCompileRate: o.MaxCompileRate},
		Progress: o.Progress,
		Logger:   log,
	})
	if err != nil {
		return warmup.Result{}, fmt.Errorf("warm: %w", err)
	}
	defer w.Close()
	log.Info("warm: starting", "target", target, "metrics", metricsURL, "cache", cacheURL, "rate", o.Rate, "start_rate", o.StartRate,
		"max_cpu_pressure", o.MaxCPUPressure, "concurrency", o.Concurrency, "deadline", o.Deadline, "window", o.Window, "hold", o.Hold,
		"hold_tolerance", o.HoldTolerance, "min_warm", o.MinWarm, "rehearse", o.Rehearse)
	ctx, cancel := context.WithTimeout(ctx, o.Deadline+time.Minute)
	defer cancel()
	res, err := w.Run(ctx)
	if err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	return res, nil
}
