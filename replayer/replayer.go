package replayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// Replayer replays sessions against one target. It is safe for concurrent
// use, but one Run at a time is what it is built for.
type Replayer struct {
	target      *url.URL
	opts        Options
	correlate   path
	profiles    *protocol.Set
	fixed       protocol.Profile // Options.Protocol's, or nil: detect
	log         *slog.Logger
	limiter     *rate.Limiter
	m           replayMetrics
	stats       counters
	hist        latencyWindow
	failStreak  atomic.Int64
	active      atomic.Int64
	limitMilli  atomic.Int64 // current rate limit × 1000, for Stats
	pressureM   atomic.Int64 // last CPU stall share × 1e6; -1e6 when not read
	fixedLimits bool
	unlimited   bool       // Rate < 0: no limiter to wait on
	dryMu       sync.Mutex // serializes writes to Options.DryRun
	// stop is done once Stop is called: sessions send nothing more and
	// close normally.
	stop     context.Context
	stopCall context.CancelFunc
}

// New returns a Replayer of sessions against target, a ws:// or wss:// URL.
// When target has no path (or "/"), each session's recorded route is used.
func New(target string, opts *Options) (*Replayer, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse target %q: %w", target, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("target %q: scheme must be ws or wss", target)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("target %q: no host", target)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Replayer{target: u, opts: o, log: o.Logger}
	r.stop, r.stopCall = context.WithCancel(context.Background())
	r.profiles = protocol.NewSet(&protocol.Options{KeyFields: o.KindFields})
	if o.Protocol != "" {
		if r.fixed, err = r.profiles.Lookup(o.Protocol); err != nil {
			return nil, fmt.Errorf("protocol: %w", err)
		}
	}
	if o.Correlate != "" {
		if r.correlate, err = parsePath(o.Correlate); err != nil {
			return nil, fmt.Errorf("correlate: %w", err)
		}
	}
	limit := rate.Limit(o.Rate)
	if o.Rate < 0 {
		limit = rate.Inf
	}
	r.fixedLimits = o.Rate < 0 || o.NoBackoff
	r.unlimited = o.Rate < 0
	start := o.Rate
	if !r.fixedLimits {
		start = o.StartRate
		limit = rate.Limit(start)
	}
	r.limiter = rate.NewLimiter(limit, o.Burst)
	r.limitMilli.Store(int64(start * 1000))
	r.pressureM.Store(-1e6)
	r.m = newReplayMetrics(o.Metrics, r)
	return r, nil
}

// Stats returns the replay's counters so far.
func (r *Replayer) Stats() Stats {
	s := r.stats.snapshot()
	s.Active = r.active.Load()
	s.LatencyP50, s.LatencyP99 = r.hist.quantiles(50, 99)
	s.RateLimit = float64(r.limitMilli.Load()) / 1000
	s.CPUPressure = float64(r.pressureM.Load()) / 1e6
	return s
}

// RateLimit returns the message rate the replay is allowed now: Rate,
// or less while adaptive back-off holds it down.
func (r *Replayer) RateLimit() float64 { return float64(r.limitMilli.Load()) / 1000 }

// Run replays sessions from src until src returns io.EOF and every started
// session has ended (it then returns nil), Stop is called and the sessions
// in flight have closed (nil), src fails (its error), or ctx ends (ctx's
// error, after the sessions in flight have stopped). Failing
// sessions are counted and replaced by the next from src.
func (r *Replayer) Run(ctx context.Context, src Source) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel has stopped the controller
	defer cancel()
	if !r.fixedLimits && r.opts.DryRun == nil {
		wg.Go(func() { r.control(ctx) })
	}
	slots := make(chan struct{}, r.opts.Concurrency)
	// next ends when ctx does or Stop is called: waits for a slot, the dial
	// back-off and the source end there.
	next, endNext := context.WithCancel(ctx)
	defer endNext()
	defer context.AfterFunc(r.stop, endNext)()
	var runErr error
	for {
		took := false
		select {
		case slots <- struct{}{}:
			took = true
		case <-next.Done():
		}
		if next.Err() != nil || r.stop.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if took {
				<-slots
			}
			break // stopped: no new session
		}
		if err := r.dialBackoff(next); err != nil {
			if ctx.Err() != nil {
				return err
			}
			<-slots
			break
		}
		evs, err := src.Next(next)
		if err != nil || r.stop.Err() != nil {
			// next learns of Stop a moment late (AfterFunc): r.stop is
			// read directly too, so nothing starts after Stop returns.
			<-slots
			if err != nil && !errors.Is(err, io.EOF) && r.stop.Err() == nil {
				runErr = fmt.Errorf("session source: %w", err)
				if ctx.Err() != nil {
					runErr = ctx.Err()
				}
			}
			break
		}
		r.stats.started.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			res := r.replay(ctx, r.stop, evs)
			if r.opts.OnSessionEnd != nil {
				r.opts.OnSessionEnd(res)
			}
		})
	}
	// Wait for the sessions in flight before reporting the source's end.
	for range r.opts.Concurrency {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return runErr
}

// Stop ends the replay the way clients leave: Run starts no new session,
// and each session in flight sends nothing more, waits up to a second
// (Options.ResponseTimeout if shorter) for the responses it still expects
// and closes with a normal close handshake. Run then returns nil.
// Cancelling Run's context instead drops every connection at once, which a
// target that has only seen sessions end with a handshake takes as a new
// path: a JIT compiler then deoptimizes the code it compiled for reading
// requests, at the moment a warmed pod is released to real traffic. To
// bound the wait, cancel Run's context after a grace period. Stop is safe
// to call more than once and from any goroutine. It is final: a later Run
// starts nothing. It does not affect sessions started by Replay.
func (r *Replayer) Stop() { r.stopCall() }

// dialBackoff waits after consecutive failed handshakes, so that a target
// that is down is not dialled in a hot loop: 100ms doubling to 5s.
func (r *Replayer) dialBackoff(ctx context.Context) error {
	n := r.failStreak.Load()
	if n == 0 {
		return nil
	}
	d := 100 * time.Millisecond << min(n-1, 6)
	d = min(d, 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Replay plays one session against the target, under the rate limit but
// outside Run's concurrency limit, and returns how it ended. Its counters go
// into Stats like Run's sessions. It is safe to call from many goroutines:
// a load generator with its own arrival schedule calls it directly.
func (r *Replayer) Replay(ctx context.Context, evs []session.Event) SessionResult {
	r.stats.started.Add(1)
	return r.replay(ctx, context.Background(), evs)
}

// replay plays one session against the target and counts how it ended.
// When stop is done the session sends no more and closes normally.
func (r *Replayer) replay(ctx, stop context.Context, evs []session.Event) (res SessionResult) {
	res = SessionResult{CloseCode: -1, Started: time.Now()}
	defer func() { res.Duration = time.Since(res.Started) }()
	if len(evs) == 0 || evs[0].Kind != session.KindOpen || evs[0].Open == nil {
		return r.fail(ctx, res, "no_open", nil)
	}
	res.ID = evs[0].Session
	info := evs[0].Open
	var dry *bytes.Buffer
	var planOut io.Writer // nil unless dry-running
	if r.opts.DryRun != nil {
		dry = new(bytes.Buffer)
		planOut = dry
	}
	p := r.plan(info, evs, time.Now(), planOut)
	if dry != nil {
		// One session's plan at a time: sessions run concurrently.
		r.dryMu.Lock()
		_, _ = r.opts.DryRun.Write(dry.Bytes())
		r.dryMu.Unlock()
	}
	return r.replayPlan(ctx, stop, res, info, &p, droppedByClient(evs))
}

// replayPlan plays a session's plan against the target and counts how it
// ended.
func (r *Replayer) replayPlan(ctx, stop context.Context, res SessionResult, info *session.Info, p *sessionPlan, drop bool) SessionResult {
	for k, n := range p.skipped {
		r.m.skipped(r.stats.skip(k, n)).Add(n)
		res.Skipped += n
	}
	if r.opts.DryRun != nil {
		r.stats.completed.Add(1)
		return res
	}
	if !slices.ContainsFunc(p.steps, func(s step) bool { return !s.control }) {
		return r.fail(ctx, res, "nothing_to_send", nil)
	}
	if p.openingSkipped {
		// The session's opening did not survive the filter: the rest is
		// meaningless.
		return r.fail(ctx, res, "connect_skipped", nil)
	}
	r.active.Add(1)
	defer r.active.Add(-1)
	r.play(ctx, stop, info, p, drop, &res)
	if res.Failure != "" {
		return r.fail(ctx, res, res.Failure, res.Err)
	}
	r.stats.completed.Add(1)
	r.m.completed.Inc()
	return res
}

func firstClient(evs []session.Event) int {
	for i := range evs {
		if evs[i].Kind == session.KindFrame && evs[i].Direction == session.ClientToServer {
			return i
		}
	}
	return -1
}

// fail records a failed session in res and counts it, unless the run (ctx)
// is ending, which is not the session's fault: that is reported as
// "timeout" and not counted.
func (r *Replayer) fail(ctx context.Context, res SessionResult, reason string, err error) SessionResult {
	res.Failure, res.Err = reason, err
	if ctx.Err() != nil {
		res.Failure = "timeout"
		return res
	}
	if reason == "stopped" {
		r.stats.stopped.Add(1) // Stop's doing, not the session's
		r.m.stopped.Inc()
		return res
	}
	first := r.stats.failed(reason)
	r.m.failed(reason).Inc()
	r.hist.errors.Add(1)
	if reason == "connect" || reason == "handshake" {
		r.failStreak.Add(1)
	}
	attrs := []any{"session", res.ID, "reason", reason, "err", err}
	if res.CloseCode >= 0 {
		attrs = append(attrs, "close_code", res.CloseCode)
	}
	if res.Status != 0 {
		attrs = append(attrs, "status", res.Status)
	}
	if first {
		// The first of each class says what is wrong; the rest are counted.
		r.log.Info("replay: a session failed (the first for this reason; later ones are counted)", attrs...)
	} else {
		r.log.Debug("replay session failed", attrs...)
	}
	return res
}

// droppedByClient reports whether the recorded session ended with the
// client hanging up without a close frame: no close code, closed by the
// client. Its replay then ends the same way, so that a warm-up exercises a
// target's handling of dropped connections as real traffic does.
func droppedByClient(evs []session.Event) bool {
	last := &evs[len(evs)-1]
	return last.Kind == session.KindClose && last.Code == 0 && last.ClosedBy == session.SideClient
}
