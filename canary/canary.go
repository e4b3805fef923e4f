package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/preheatdev/preheat/paired"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// Canary is one canary phase: a candidate compared with a reference. Run
// it once; Status may be read at any time.
type Canary struct {
	o     Options
	log   *slog.Logger
	kinds *kindTable
	arms  [2]*arm // the candidate, then the reference
	m     *phaseMetrics

	mu      sync.Mutex
	ran     bool
	state   string
	started time.Time
	result  *Result
}

// arm is one target: its replayer, the feed the schedule hands sessions
// to and its recorder.
type arm struct {
	rp   *replayer.Replayer
	feed *feed
	rec  *recorder
}

// States of a phase, in Status.
const (
	stateWaiting = "waiting"
	stateRunning = "running"
	stateDone    = "done"
)

// New returns a canary phase comparing candidate with reference, both
// websocket URLs (ws:// or wss://; without a path each session's recorded
// route is used). opts may be nil. Its errors name the setting at fault.
func New(candidate, reference string, opts *Options) (*Canary, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Canary{o: o, log: o.Logger, kinds: newKindTable(o.MaxKinds), state: stateWaiting, m: newPhaseMetrics(o.Metrics)}
	for i, url := range []string{candidate, reference} {
		name := [2]string{"candidate", "reference"}[i]
		rec := newRecorder(name, url, c.kinds, o.MaxResponses, o.Metrics)
		rp, err := replayer.New(url, o.replayOptions(rec.observe, rec.ended, o.Logger.With("canary", name)))
		if err != nil {
			return nil, fmt.Errorf("canary %s: %w", name, err)
		}
		c.arms[i] = &arm{rp: rp, feed: &feed{ch: make(chan []session.Event, 1)}, rec: rec}
	}
	return c, nil
}

// reserve is the time Run keeps before its context's deadline to stop the
// sessions in flight and judge.
func (c *Canary) reserve() time.Duration { return c.o.StopGrace + 3*time.Second }

// Run replays sessions from src to both targets for Options.Duration (or
// until its context's deadline, less the time to stop and judge), then
// stops them and judges. It returns a Result whatever the targets did: a
// reference that fails or stops answering makes it Inconclusive, and so
// does a phase with no time or no sessions. The error is non-nil only when
// ctx ended before the phase did (the Result is then still filled), or
// Run was called twice.
func (c *Canary) Run(ctx context.Context, src replayer.Source) (*Result, error) {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		return nil, errors.New("canary: Run called twice")
	}
	c.ran = true
	start := time.Now()
	c.started, c.state = start, stateRunning
	c.mu.Unlock()
	c.m.running.Set(1)
	defer c.m.running.Set(0)

	res := &Result{Candidate: c.arms[0].rec.url, Reference: c.arms[1].rec.url, Started: start,
		Targets: []Target{{Name: c.arms[0].rec.name, URL: c.arms[0].rec.url}, {Name: c.arms[1].rec.name, URL: c.arms[1].rec.url}}}
	end := start.Add(c.o.Duration)
	byDeadline := false
	if dl, ok := ctx.Deadline(); ok && dl.Add(-c.reserve()).Before(end) {
		end, byDeadline = dl.Add(-c.reserve()), true
	}
	n := int(end.Sub(start) / c.o.Interval) // the intervals compared
	if n < paired.MinPairs {
		res.Outcome = Inconclusive
		res.Finding = fmt.Sprintf("no canary: a phase of %v holds fewer than %d intervals of %v", c.o.Duration, paired.MinPairs, c.o.Interval)
		if byDeadline {
			res.Finding = fmt.Sprintf("no canary: %v left before the deadline, too little to compare", max(0, end.Sub(start)+c.reserve()).Round(time.Second))
		}
		return c.finish(res, start), ctx.Err()
	}
	end = start.Add(time.Duration(n) * c.o.Interval)
	slots := n + int((c.o.StopGrace+c.reserve())/c.o.Interval) + 2 // the last collects the rest
	for _, a := range c.arms {
		a.rec.begin(start, c.o.Interval, slots)
	}
	c.log.Info("canary: comparing the candidate with the reference", "candidate", res.Candidate, "reference", res.Reference,
		"rate", c.o.Rate, "duration", end.Sub(start))

	runCtx, cancelRun := context.WithCancel(ctx) // ends the replays by dropping their sessions
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelRun()
	runDone := [2]chan error{make(chan error, 1), make(chan error, 1)}
	for i, a := range c.arms {
		wg.Go(func() { runDone[i] <- a.rp.Run(runCtx, a.feed) })
	}
	sessions := make(chan []session.Event, 4)
	fetchCtx, stopFetch := context.WithCancel(runCtx)
	var srcErr error
	wg.Go(func() { srcErr = fetch(fetchCtx, src, sessions) })

	stopped := c.schedule(ctx, end, sessions)
	stoppedAt := time.Now()
	stopFetch()

	// Stop as clients leave; past the grace, drop what is left.
	for _, a := range c.arms {
		a.rp.Stop()
	}
	grace := time.NewTimer(c.o.StopGrace)
	for i := range runDone {
		select {
		case <-runDone[i]:
			runDone[i] = nil
		case <-grace.C:
			cancelRun()
		}
	}
	grace.Stop()
	cancelRun()
	for _, ch := range runDone {
		if ch != nil {
			<-ch
		}
	}
	wg.Wait()
	now := time.Now()
	for _, a := range c.arms {
		a.rec.close(now, a.rp.Stats())
	}
	if stopped == "" && srcErr != nil {
		stopped = fmt.Sprintf("the session source failed: %v", srcErr)
	}
	if stopped != "" && ctx.Err() == nil {
		c.log.Warn("canary: ended early", "why", stopped)
	}
	compared := n
	if stopped != "" {
		compared = min(n, int(stoppedAt.Sub(start)/c.o.Interval)) // the intervals before the early end
	}
	c.judge(res, compared, stopped)
	return c.finish(res, start), ctx.Err()
}

// Skip ends a phase that will not run (the pod was not warm before the
// deadline, say), Inconclusive for the reason given, so that its Status
// and metrics say so. It returns nil if Run was called.
func (c *Canary) Skip(reason string) *Result {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		return nil
	}
	c.ran = true
	c.mu.Unlock()
	res := &Result{Outcome: Inconclusive, Finding: "no canary: " + reason, Candidate: c.arms[0].rec.url, Reference: c.arms[1].rec.url,
		Started: time.Now(), Targets: []Target{{Name: c.arms[0].rec.name, URL: c.arms[0].rec.url}, {Name: c.arms[1].rec.name, URL: c.arms[1].rec.url}}}
	return c.finish(res, res.Started)
}

// finish records the result and its metrics.
func (c *Canary) finish(res *Result, start time.Time) *Result {
	res.Seconds = time.Since(start).Seconds()
	c.mu.Lock()
	c.state, c.result = stateDone, res
	c.mu.Unlock()
	c.m.done(res)
	return res
}
