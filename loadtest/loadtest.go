package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// Corpus is the sessions a load test replays and the rate at which they
// arrived when they were recorded.
type Corpus struct {
	// Sessions are whole sessions, each its events with the open event
	// first. The loaders (ReadCorpus, LoadCache, LoadStream) keep each
	// recorded server message as its skeleton (protocol.ServerSkeleton):
	// what a load test plans from, a few bytes of a reply of kilobytes.
	// A run cycles through them in order.
	Sessions [][]session.Event
	// Rate is the recorded arrival rate in sessions per second; 0 when
	// unknown (then a run needs a fixed rate or the closed model).
	Rate float64
	// Dropped counts sessions the loader left out, such as those without
	// their open event.
	Dropped int
}

// Options configures a Runner. The zero value (or nil) is usable with a
// corpus that knows its recorded rate.
type Options struct {
	// Multiplier scales the corpus's recorded arrival rate: 3 starts
	// sessions three times as often as they arrived when recorded.
	// Default 1. Ignored when SessionsPerSecond or Concurrency is set.
	Multiplier float64
	// SessionsPerSecond starts sessions at this fixed rate instead.
	// Default 0: Multiplier times Corpus.Rate.
	SessionsPerSecond float64
	// Concurrency, when positive, selects the closed model: this many
	// sessions run at once, each followed by the next as soon as it ends.
	// Default 0: the open model.
	Concurrency int
	// Duration is how long sessions are started for, ramps included.
	// Default 1m.
	Duration time.Duration
	// RampUp and RampDown are the linear ramps of the start rate (open
	// model) or of the sessions at once (closed model) at the start and
	// the end of Duration. Default 0: none.
	RampUp, RampDown time.Duration
	// Drain is how long sessions still running when Duration ends may go
	// on; then they are cut, and counted as cut, not failed. Default 10s.
	Drain time.Duration
	// Speed is the pace within a session as a multiple of its recorded
	// pace. Default 1; negative: each message as soon as the previous one
	// is written.
	Speed float64
	// MaxActive bounds the sessions in flight per target in the open
	// model. An arrival that finds it reached is not started but counted
	// in Result.Dropped: waiting for a slot would hide the target's
	// slowness (coordinated omission). Default 10,000.
	MaxActive int
	// Interval is the length of one point of the latency-over-time series,
	// and of the intervals the comparison pairs. Default 1s.
	Interval time.Duration
	// AbortAfter ends the run early when a target has been unreachable for
	// this long: sessions kept failing to connect and none connected.
	// Default 15s; negative: never.
	AbortAfter time.Duration
	// Compare is a second target, ws:// or wss://. Every session is then
	// started on both targets at the same moment, and the Result holds a
	// Comparison. Default "": one target.
	Compare string
	// Confidence is the level of the comparison's intervals. Default 0.95.
	Confidence float64
	// MinEffect is the smallest relative change (0.05 is 5%) a
	// significant difference must have to count as a finding, so that
	// noise between two equal targets is not reported. Default 0.05.
	MinEffect float64
	// Resamples is the number of bootstrap resamples behind each
	// confidence interval. Default 2,000.
	Resamples int
	// Seed seeds the bootstrap, so a report is reproducible. Default 1.
	Seed uint64
	// MaxKinds bounds the message kinds measured apart; later kinds are
	// measured together as "(other)". Default 100.
	MaxKinds int
	// Replay configures the replayer of each target: headers, rewrite
	// rules, the safety filter (on by default), timeouts, correlation.
	// The load test sets its Rate (unlimited), NoBackoff, Speed,
	// OnResponse and Metrics; OnSessionEnd and DryRun must not be set.
	// Default nil: the replayer's defaults.
	Replay *replayer.Options
	// Logger receives the run's notable events. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the load test's metrics, labelled by target
	// ("target" or "compare"). Default a new set.
	Metrics *metrics.Set
	// ReplayMetrics receives the first target's replayer metrics (the
	// compared target's are not exported, their names would clash).
	// Default a new set.
	ReplayMetrics *metrics.Set
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Multiplier == 0 {
		c.Multiplier = 1
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Drain == 0 {
		c.Drain = 10 * time.Second
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.MaxActive <= 0 {
		c.MaxActive = 10000
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.AbortAfter == 0 {
		c.AbortAfter = 15 * time.Second
	}
	if c.Confidence <= 0 || c.Confidence >= 1 {
		c.Confidence = 0.95
	}
	if c.MinEffect <= 0 {
		c.MinEffect = 0.05
	}
	if c.Resamples <= 0 {
		c.Resamples = 2000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.MaxKinds <= 0 {
		c.MaxKinds = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	if c.ReplayMetrics == nil {
		c.ReplayMetrics = metrics.NewSet()
	}
	switch {
	case c.Multiplier < 0:
		return c, fmt.Errorf("multiplier %v: must be positive", c.Multiplier)
	case c.SessionsPerSecond < 0:
		return c, fmt.Errorf("sessions per second %v: must not be negative", c.SessionsPerSecond)
	case c.Concurrency < 0:
		return c, fmt.Errorf("concurrency %d: must not be negative", c.Concurrency)
	case c.Duration < 0 || c.RampUp < 0 || c.RampDown < 0 || c.Drain < 0:
		return c, errors.New("durations must not be negative")
	case c.RampUp+c.RampDown > c.Duration:
		return c, fmt.Errorf("ramps %v up and %v down: longer than the duration %v", c.RampUp, c.RampDown, c.Duration)
	case c.Replay != nil && (c.Replay.OnSessionEnd != nil || c.Replay.DryRun != nil):
		return c, errors.New("replay options: OnSessionEnd and DryRun are the load test's")
	}
	return c, nil
}

// Runner runs one load test. Create it with New; call Run once.
type Runner struct {
	corpusLen    int
	recordedRate float64
	opts         Options
	log          *slog.Logger
	rate         float64 // open model: the full start rate, sessions/s
	arms         []*recorder

	next                 atomic.Uint64 // the next corpus session
	scheduled            atomic.Int64
	dropped              atomic.Int64
	mScheduled, mDropped *metrics.Counter
	mLag                 *metrics.Histogram

	mu      sync.Mutex
	start   time.Time
	lag     *hdrhistogram.Histogram
	aborted string
	progT   time.Time // the previous Progress call
	progN   uint64
}

// New returns a Runner of corpus against target, a ws:// or wss:// URL
// (without a path, each session's recorded route is used). It plans every
// session of the corpus for every target (replayer.Prepare) and keeps the
// plans, not the corpus: the recorded server messages a caller lets go of
// are not held for the run.
func New(corpus *Corpus, target string, opts *Options) (*Runner, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if corpus == nil || len(corpus.Sessions) == 0 {
		return nil, errors.New("corpus: no sessions")
	}
	r := &Runner{corpusLen: len(corpus.Sessions), recordedRate: corpus.Rate, opts: o, log: o.Logger, lag: newHist(2)}
	if o.Concurrency == 0 {
		r.rate = o.SessionsPerSecond
		if r.rate == 0 {
			if corpus.Rate <= 0 {
				return nil, errors.New("corpus: recorded arrival rate unknown: set a fixed rate of sessions per second or a concurrency")
			}
			r.rate = corpus.Rate * o.Multiplier
		}
	}
	targets := []string{target}
	if o.Compare != "" {
		targets = append(targets, o.Compare)
	}
	for i, t := range targets {
		name := "target"
		if i == 1 {
			name = "compare"
		}
		rec := newRecorder(name, t, time.Time{}, o.Interval, o.MaxKinds, o.Metrics)
		ro := replayer.Options{}
		if o.Replay != nil {
			ro = *o.Replay
		}
		ro.Rate, ro.NoBackoff = -1, true
		ro.Speed = max(o.Speed, 0)
		ro.OnResponse = rec.observe
		ro.Logger = o.Logger
		ro.Metrics = o.ReplayMetrics
		if i > 0 {
			ro.Metrics = metrics.NewSet()
		}
		rp, err := replayer.New(t, &ro)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rec.rp = rp
		// Each session is planned once for the run: a run replays the
		// same sessions over and over.
		rec.prepared = make([]*replayer.Prepared, len(corpus.Sessions))
		for i, evs := range corpus.Sessions {
			rec.prepared[i] = rp.Prepare(evs)
		}
		o.Metrics.NewGauge(`preheat_loadtest_sessions_active{target="`+name+`"}`, func() float64 { return float64(rec.active.Load()) })
		r.arms = append(r.arms, rec)
	}
	r.mScheduled = o.Metrics.NewCounter("preheat_loadtest_arrivals_total")
	r.mDropped = o.Metrics.NewCounter("preheat_loadtest_arrivals_dropped_total")
	r.mLag = o.Metrics.NewHistogram("preheat_loadtest_schedule_lag_seconds")
	return r, nil
}

// Rate returns the open model's full start rate in sessions per second, or
// 0 under the closed model.
func (r *Runner) Rate() float64 { return r.rate }

// Run runs the load test: it starts sessions for Duration, lets those in
// flight finish for up to Drain, and returns what it measured. It ends
// early, with Result.Aborted saying why, when a target is unreachable for
// AbortAfter or ctx ends; that is not an error. It returns an error only
// when it could not run at all.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	r.mu.Lock()
	if !r.start.IsZero() {
		r.mu.Unlock()
		return nil, errors.New("loadtest: Run called twice")
	}
	start := time.Now()
	r.start, r.progT = start, start
	for _, a := range r.arms {
		a.start, a.connected = start, start
	}
	r.mu.Unlock()

	runCtx, stopRun := context.WithCancel(ctx)      // ends the schedule
	sessCtx, cutSessions := context.WithCancel(ctx) // ends the sessions
	defer stopRun()
	defer cutSessions()
	var sessions sync.WaitGroup
	var ticker sync.WaitGroup
	tickCtx, stopTick := context.WithCancel(context.Background())
	ticker.Go(func() { r.tick(tickCtx, stopRun) })

	if r.opts.Concurrency > 0 {
		r.closed(runCtx, sessCtx, start, &sessions)
	} else {
		r.open(runCtx, sessCtx, start, &sessions)
	}
	scheduleEnd := time.Now()
	stopRun()

	// Drain: give the sessions in flight until Drain, then cut them.
	drained := make(chan struct{})
	go func() {
		sessions.Wait()
		close(drained)
	}()
	drain := time.NewTimer(r.opts.Drain)
	select {
	case <-drained:
	case <-drain.C:
		r.log.Info("loadtest: drain over, cutting the sessions still running", "active", r.activeAll())
	case <-ctx.Done():
	}
	drain.Stop()
	cutSessions()
	<-drained
	stopTick()
	ticker.Wait()

	end := time.Now()
	for _, a := range r.arms {
		a.rotate(end, true)
	}
	r.mu.Lock()
	if r.aborted == "" && ctx.Err() != nil {
		r.aborted = "interrupted"
	}
	res := &Result{
		Started: start, Ended: end, Seconds: end.Sub(start).Seconds(),
		Model: "open", RecordedRate: r.recordedRate, Rate: r.rate,
		Duration: r.opts.Duration.Seconds(), RampUp: r.opts.RampUp.Seconds(), RampDown: r.opts.RampDown.Seconds(),
		Corpus: r.corpusLen, Scheduled: int(r.scheduled.Load()), Dropped: int(r.dropped.Load()),
		Lag: summarize(r.lag), Aborted: r.aborted,
	}
	r.mu.Unlock()
	if r.opts.Concurrency > 0 {
		res.Model, res.Concurrency = "closed", r.opts.Concurrency
	}
	for _, a := range r.arms {
		res.Targets = append(res.Targets, a.snapshot(scheduleEnd.Sub(start)))
	}
	if len(res.Targets) == 2 {
		res.Comparison = compare(res.Targets[0], res.Targets[1], &r.opts)
	}
	return res, nil
}

// pick returns the next session of the corpus, cycling.
func (r *Runner) pick() int {
	i := r.next.Add(1) - 1
	return int(i % uint64(r.corpusLen))
}

// open starts sessions on the profile's schedule until it ends or runCtx
// does. Each arrival starts a session on every target at once, whatever
// the sessions before it are doing.
func (r *Runner) open(runCtx, sessCtx context.Context, start time.Time, wg *sync.WaitGroup) {
	prof := newProfile(r.rate, r.opts.Duration, r.opts.RampUp, r.opts.RampDown)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; ; k++ {
		at, ok := prof.arrival(k)
		if !ok {
			// Hold the schedule's end, so a short schedule still runs
			// for Duration.
			wait(runCtx, timer, time.Until(start.Add(r.opts.Duration)))
			return
		}
		due := start.Add(time.Duration(at * float64(time.Second)))
		if !wait(runCtx, timer, time.Until(due)) {
			return
		}
		lag := time.Since(due)
		r.arrived(lag)
		if r.full() {
			r.dropped.Add(1)
			r.mDropped.Inc()
			continue
		}
		r.startAll(sessCtx, r.pick(), due, wg, nil)
	}
}

// closed runs Concurrency workers, each replaying one session after
// another (on every target at once, waiting for all) during its window of
// the ramps.
func (r *Runner) closed(runCtx, sessCtx context.Context, start time.Time, wg *sync.WaitGroup) {
	n := r.opts.Concurrency
	for i := range n {
		from, until := workerWindow(i, n, r.opts.Duration, r.opts.RampUp, r.opts.RampDown)
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			if !wait(runCtx, timer, time.Until(start.Add(from))) {
				return
			}
			fails := 0
			for time.Since(start) < until && runCtx.Err() == nil {
				r.arrived(0)
				var each sync.WaitGroup
				var down atomic.Int64
				r.startAll(sessCtx, r.pick(), time.Now(), &each, func(res replayer.SessionResult) {
					if res.Failure == "connect" || res.Failure == "handshake" {
						down.Add(1)
					}
				})
				each.Wait()
				// A target that refuses connections would otherwise be
				// dialled in a hot loop: back off 50ms doubling to 1s.
				if down.Load() == int64(len(r.arms)) {
					fails++
					if !wait(runCtx, timer, min(50*time.Millisecond<<min(fails-1, 5), time.Second)) {
						return
					}
				} else {
					fails = 0
				}
			}
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait(runCtx, timer, time.Until(start.Add(r.opts.Duration)))
}

// startAll starts corpus session i on every target, in wg, counting it as
// started at due; ended, when set, is told how each replay ended.
func (r *Runner) startAll(sessCtx context.Context, i int, due time.Time, wg *sync.WaitGroup, ended func(replayer.SessionResult)) {
	for _, a := range r.arms {
		a.started(due)
		wg.Go(func() {
			res := a.rp.ReplayPrepared(sessCtx, a.prepared[i])
			a.ended(res, sessCtx.Err() != nil, time.Now())
			if ended != nil {
				ended(res)
			}
		})
	}
}

// wait waits d on timer, and reports false if ctx ended first.
func wait(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		timer.Stop()
		return false
	}
}

func (r *Runner) arrived(lag time.Duration) {
	r.scheduled.Add(1)
	r.mScheduled.Inc()
	r.mLag.Update(lag.Seconds())
	r.mu.Lock()
	recordHist(r.lag, lag)
	r.mu.Unlock()
}

func (r *Runner) full() bool {
	for _, a := range r.arms {
		if a.active.Load() >= int64(r.opts.MaxActive) {
			return true
		}
	}
	return false
}

func (r *Runner) activeAll() int64 {
	var n int64
	for _, a := range r.arms {
		n += a.active.Load()
	}
	return n
}

// tick closes an interval of every target each Interval, and aborts the
// run (stop) when a target has been unreachable for AbortAfter.
func (r *Runner) tick(ctx context.Context, stop context.CancelFunc) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	check := time.NewTicker(min(r.opts.Interval, time.Second))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, a := range r.arms {
				a.rotate(now, false)
			}
		case now := <-check.C:
			if r.opts.AbortAfter < 0 {
				continue
			}
			for _, a := range r.arms {
				if d := a.downFor(now); d >= r.opts.AbortAfter {
					r.mu.Lock()
					if r.aborted == "" {
						r.aborted = fmt.Sprintf("%s %s unreachable: every session for %v failed to connect", a.name, a.url, d.Round(time.Second))
						r.log.Error("loadtest: aborting, "+r.aborted, "errors", a.errorsString())
					}
					r.mu.Unlock()
					stop()
				}
			}
		}
	}
}

// Progress returns a live snapshot of the run. Its Rate is over the time
// since the previous call.
func (r *Runner) Progress() Progress {
	now := time.Now()
	var p Progress
	for i, a := range r.arms {
		a.mu.Lock()
		p.Started += a.sessions.Started
		p.Errors += a.sessions.Failed
		a.mu.Unlock()
		p.Active += a.active.Load()
		if i == 0 {
			st := a.rp.Stats()
			p.Errors += st.Timeouts + closedErrors(st)
			p.P50, p.P99, p.Responses = a.quantiles()
			a.mu.Lock()
			if ops := a.sessions.Started - a.sessions.Unplayable + st.MessagesSent; ops > 0 {
				p.ErrorRate = float64(a.sessions.Failed+st.Timeouts+closedErrors(st)) / float64(ops)
			}
			a.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() {
		return p
	}
	p.Elapsed = now.Sub(r.start)
	started := p.Started / uint64(len(r.arms))
	if dt := now.Sub(r.progT).Seconds(); dt > 0 {
		p.Rate = float64(started-r.progN) / dt
	}
	r.progT, r.progN = now, started
	return p
}

func (r *recorder) errorsString() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.errors)
}
