package canary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// busy reports whether the target cannot start a session at once: it has
// as many in flight as its replayer runs, or one not yet taken.
func (a *arm) busy(concurrency int) bool {
	return len(a.feed.ch) > 0 || a.rec.busy(concurrency)
}

// feed is the replayer.Source of one target: the schedule hands it a
// session only when the target can start it at once.
type feed struct{ ch chan []session.Event }

// Next returns the session handed to the target, waiting for it.
func (f *feed) Next(ctx context.Context) ([]session.Event, error) {
	select {
	case evs := <-f.ch:
		return evs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// schedule hands sessions to both targets at once, each session's client
// messages paced to Options.Rate, until end, ctx ends or the reference
// stops answering; it returns why it ended early, or "".
func (c *Canary) schedule(ctx context.Context, end time.Time, sessions <-chan []session.Event) string {
	cand, ref := c.arms[0], c.arms[1]
	tick := time.NewTicker(c.o.Interval)
	defer tick.Stop()
	done := time.NewTimer(time.Until(end))
	defer done.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	next := time.Now() // when the next session may start
	var pending []session.Event
	waiting := false // pending is due, and a target is busy
	for {
		var in <-chan []session.Event
		if pending == nil {
			in = sessions
		}
		select {
		case <-ctx.Done():
			return "the run ended: " + context.Cause(ctx).Error()
		case <-done.C:
			return ""
		case now := <-tick.C:
			for _, a := range c.arms {
				a.rec.close(now, a.rp.Stats())
			}
			// A reference silent while the candidate answers the same
			// sessions has failed: waiting longer tells nothing more.
			if d := ref.rec.silentFor(now); d >= c.o.AbortAfter && ref.rec.handedSince(now.Add(-d)) && cand.rec.silentFor(now) < c.o.AbortAfter {
				return fmt.Sprintf("the reference answered nothing for %v: %s", d.Round(time.Second), ref.rec.failures(ref.rp.Stats().Timeouts))
			}
		case evs, ok := <-in:
			if !ok {
				return "the session source has no sessions"
			}
			pending = evs
			due.Reset(time.Until(next))
		case <-due.C:
			waiting = true
			retry.Reset(0)
		case <-retry.C:
			if !waiting {
				continue
			}
			if cand.busy(c.o.Concurrency) || ref.busy(c.o.Concurrency) {
				// A session ends soon enough: look again shortly rather
				// than start it on one target only.
				c.m.waits.Inc()
				retry.Reset(10 * time.Millisecond)
				continue
			}
			now := time.Now()
			for _, a := range c.arms {
				a.rec.handed(now)
				a.feed.ch <- pending // room: only this loop sends, and the feed was empty
			}
			if floor := now.Add(-c.o.Interval); next.Before(floor) {
				next = floor // a late start catches up at most one interval
			}
			next = next.Add(gap(pending, c.o.Rate))
			pending, waiting = nil, false
		}
	}
}

// gap is the time a session's client messages take at rate.
func gap(evs []session.Event, rate float64) time.Duration {
	n := 0
	for i := range evs {
		if evs[i].Kind == session.KindFrame && evs[i].Direction == session.ClientToServer {
			n++
		}
	}
	return time.Duration(float64(max(n, 1)) / rate * float64(time.Second))
}

// maxRing bounds the sessions fetch keeps to replay again once its source
// has none left.
const maxRing = 256

// fetch reads sessions from src into out until ctx ends. When src ends it
// cycles through the first maxRing sessions it read; it returns the
// source's error, or nil.
func fetch(ctx context.Context, src replayer.Source, out chan<- []session.Event) error {
	defer close(out)
	var ring [][]session.Event
	for {
		evs, err := src.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			if len(ring) == 0 {
				return nil
			}
			return cycle(ctx, ring, out)
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(ring) < maxRing {
			ring = append(ring, evs)
		}
		select {
		case out <- evs:
		case <-ctx.Done():
			return nil
		}
	}
}

// cycle hands out the sessions of ring over and over until ctx ends.
func cycle(ctx context.Context, ring [][]session.Event, out chan<- []session.Event) error {
	for i := 0; ; i++ {
		select {
		case out <- ring[i%len(ring)]:
		case <-ctx.Done():
			return nil
		}
	}
}
