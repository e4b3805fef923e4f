package warmup

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
)

// Warmup is one warm-up run of a pod. Run it once; Handler may serve
// before, during and after the run; Close ends a replay kept warming.
type Warmup struct {
	target  string
	cfg     config
	log     *slog.Logger
	watcher *readiness.Watcher
	replay  *replayer.Replayer
	source  replayer.Source
	gate    *readiness.Gate
	canary  *canary.Canary // nil without Options.Canary
	// canaryMetrics is the canary's metric set, served on /metrics.
	canaryMetrics *metrics.Set

	// stopMu guards the replay's lifecycle; it is held while the replay
	// stops, for at most the stop grace.
	stopMu       sync.Mutex
	started      bool
	closed       bool
	cancelReplay context.CancelFunc
	replayDone   chan error // nil unless the replay runs

	mu           sync.Mutex
	result       *Result        // set once the run has ended
	canaryResult *canary.Result // set once the canary phase has ended
}

// Result is what a run produced.
type Result struct {
	// Decision is the watcher's: warm, the deadline's release or not, or
	// canceled.
	Decision readiness.Decision
	// Report is the warm report: the watcher's curves and the run's facts.
	Report *readiness.Report
	// Stats are the replay's counters at the end of the run.
	Stats replayer.Stats
	// Canary is the canary phase's verdict, with Options.Canary; nil
	// without.
	Canary *canary.Result
}

// Select returns the request a warm-up makes of a replay cache for sessions
// in mode that pass f: only complete sessions (a live one may not have
// reached its end, or its start, in the cache yet) with at least two
// client messages (a connect alone warms nothing).
func Select(mode replaycache.Mode, f replaycache.Filter) replaycache.SelectRequest {
	f.CompleteOnly = true
	f.MinClientFrames = max(f.MinClientFrames, 2)
	return replaycache.SelectRequest{Mode: mode, Filter: f}
}

// New returns a warm-up of the pod whose websocket URL (ws:// or wss://) is
// target: it replays sessions from src against it and watches its
// Prometheus endpoint at metricsURL, which may be empty only under
// Options.Readiness.NoJIT. opts may be nil. Its errors are the replayer's
// and the watcher's, which name the setting at fault.
func New(target, metricsURL string, src replayer.Source, opts *Options) (*Warmup, error) {
	cfg := opts.withDefaults()
	w := &Warmup{target: target, cfg: cfg, log: cfg.log, source: src}
	ro := &w.cfg.replay
	if wo := &w.cfg.readiness; wo.LoadShare == nil && ro.Rate > 0 && ro.Speed == 0 && !ro.NoBackoff {
		// A back-off that holds the replay down must not make a pod that
		// compiles slowly because it is replayed slowly look warm.
		var m loadMeter
		rate := ro.Rate
		wo.LoadShare = func() float64 { return m.share(time.Now(), w.replay.Stats().MessagesSent, w.replay.RateLimit(), rate) }
	}
	watcher, err := readiness.NewWatcher(metricsURL, &w.cfg.readiness)
	if err != nil {
		return nil, err
	}
	w.watcher = watcher
	onResponse := ro.OnResponse
	ro.OnResponse = func(r replayer.Response) {
		if onResponse != nil {
			onResponse(r)
		}
		watcher.ObserveLatency(r.At, r.Latency)
	}
	if w.replay, err = replayer.New(target, ro); err != nil {
		return nil, err
	}
	if w.canary, err = w.newCanary(); err != nil {
		return nil, err
	}
	gopts := w.cfg.release
	gopts.WebhookHeader = gopts.WebhookHeader.Clone()
	if gopts.WebhookHeader == nil {
		gopts.WebhookHeader = http.Header{}
	}
	if gopts.WebhookHeader.Get("X-Preheat-Target") == "" {
		gopts.WebhookHeader.Set("X-Preheat-Target", target)
	}
	if host, err := os.Hostname(); err == nil && gopts.WebhookHeader.Get("X-Preheat-Host") == "" {
		gopts.WebhookHeader.Set("X-Preheat-Host", host)
	}
	w.gate = readiness.NewGate(&gopts)
	return w, nil
}

// Run replays and watches until the pod is warm, the deadline
// (Readiness.MaxWarm) passes or ctx ends; then it stops the replay (unless
// KeepWarming), runs the canary phase if asked to (see Canary), and
// releases the pod through the gate, or marks the gate failed when the
// deadline does not release or the canary holds. A failed notification
// (the webhook) is logged, not returned: the pod is released all the same.
// The error is non-nil only when ctx ended first, or Run was called twice
// or after Close.
func (w *Warmup) Run(ctx context.Context) (Result, error) {
	if err := w.startReplay(ctx); err != nil {
		return Result{}, err
	}
	deadline := time.Now().Add(w.maxWarm())
	var progress sync.WaitGroup
	progressCtx, stopProgress := context.WithCancel(ctx)
	progress.Go(func() { w.logProgress(progressCtx) })

	d, err := w.watcher.Run(ctx)
	stopProgress()
	progress.Wait()
	if err != nil {
		w.stopReplay()
		return w.finish(d), err
	}
	if !w.cfg.keepWarming {
		w.stopReplay()
	}
	if w.canary != nil {
		if d, err = w.runCanary(ctx, d, deadline); err != nil {
			return w.finish(d), err
		}
	}
	if d.Release {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.gate.Release(rctx, d)
		cancel()
		if err != nil {
			w.log.Error("warm: released, but notifying failed", "err", err)
		}
	} else {
		w.gate.Fail(d.Reason)
	}
	return w.finish(d), nil
}

// Close stops a replay still running (KeepWarming) as Run stops it, and
// waits for it. It is safe to call twice, and concurrently with Run.
func (w *Warmup) Close() {
	w.stopMu.Lock()
	w.closed = true
	w.stopMu.Unlock()
	w.stopReplay()
}

func (w *Warmup) startReplay(ctx context.Context) error {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	switch {
	case w.started:
		return errors.New("warmup: Run called twice")
	case w.closed:
		return errors.New("warmup: Run called after Close")
	}
	w.started = true
	replayCtx, cancel := context.WithCancel(ctx)
	w.cancelReplay = cancel
	done := make(chan error, 1)
	w.replayDone = done
	go func() { done <- w.replay.Run(replayCtx, w.source) }()
	return nil
}

// stopReplay ends the replay and waits for it; safe to call twice. Sessions
// in flight close as clients leave, not by a dropped connection: a JVM that
// never saw a dropped connection during the warm-up deoptimizes its request
// reading path when it sees one, just as it is released
// (docs/benchmarks-jvm.md, "The warm-up's end", session 7).
func (w *Warmup) stopReplay() {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if w.replayDone == nil {
		return
	}
	w.replay.Stop()
	grace := time.NewTimer(w.cfg.stopGrace)
	defer grace.Stop()
	var err error
	select {
	case err = <-w.replayDone:
	case <-grace.C:
		w.log.Warn("warm: sessions did not close within the grace period; dropping them", "grace", w.cfg.stopGrace)
		w.cancelReplay()
		err = <-w.replayDone
	}
	w.cancelReplay()
	if err != nil && !errors.Is(err, context.Canceled) {
		w.log.Warn("warm: replay ended with an error", "err", err)
	}
	w.replayDone = nil
}

// maxWarm is the run's deadline from its start.
func (w *Warmup) maxWarm() time.Duration {
	if d := w.cfg.readiness.MaxWarm; d > 0 {
		return d
	}
	return readiness.DefaultMaxWarm
}

func (w *Warmup) finish(d readiness.Decision) Result {
	rep := w.buildReport()
	if w.canary != nil && d.Outcome != "" {
		// The canary came after the watcher's decision: the run's is
		// the one that counts.
		rep.Outcome, rep.Reason, rep.Released = d.Outcome, d.Reason, d.Release
		rep.ReleasedAt = time.Time{}
		if d.Release {
			rep.ReleasedAt = d.At
		}
		if now := time.Now(); now.After(rep.Ended) {
			rep.Ended = now
		}
	}
	w.mu.Lock()
	cres := w.canaryResult
	w.mu.Unlock()
	res := Result{Decision: d, Report: rep, Stats: w.replay.Stats(), Canary: cres}
	w.mu.Lock()
	w.result = &res
	w.mu.Unlock()
	return res
}
