package replayer

import (
	"context"
	"time"

	"github.com/preheatdev/preheat/session"
)

// Prepared is a recorded session made ready to replay, by Prepare: its
// messages judged and its plan made once, for a load generator that
// replays the same sessions again and again. It is immutable and safe to
// replay from many goroutines at once.
type Prepared struct {
	id   session.ID
	info *session.Info
	drop bool
	// plan is the session's plan; nil when each replay plans anew from evs
	// (Rewrite rules that shift times or make fresh values, a dry run), or
	// when the session has no open event (evs then says so).
	plan *sessionPlan
	evs  []session.Event
}

// Prepare plans evs for ReplayPrepared. Unless a Rewrite rule shifts times
// or makes fresh values (their values are a replay's own) or DryRun is
// set, the plan is made now, once, and the Prepared keeps of evs only what
// a replay sends and the open event: the recorded server messages can be
// let go. Otherwise it keeps evs, and each replay plans anew.
func (r *Replayer) Prepare(evs []session.Event) *Prepared {
	if len(evs) == 0 || evs[0].Kind != session.KindOpen || evs[0].Open == nil || r.opts.DryRun != nil || r.replans() {
		return &Prepared{evs: evs}
	}
	p := r.plan(evs[0].Open, evs, time.Now(), nil)
	return &Prepared{id: evs[0].Session, info: evs[0].Open, drop: droppedByClient(evs), plan: &p}
}

// replans reports whether a session's plan differs from one replay to the
// next: a Rewrite rule shifts times or makes fresh values.
func (r *Replayer) replans() bool {
	for _, rule := range r.opts.Rewrite {
		if rule.Action == Shift || rule.Action == Fresh {
			return true
		}
	}
	return false
}

// ReplayPrepared plays a prepared session as Replay plays a recorded one,
// and returns how it ended. Its counters go into Stats like Replay's.
func (r *Replayer) ReplayPrepared(ctx context.Context, p *Prepared) (res SessionResult) {
	if p.plan == nil {
		return r.Replay(ctx, p.evs)
	}
	r.stats.started.Add(1)
	res = SessionResult{ID: p.id, CloseCode: -1, Started: time.Now()}
	defer func() { res.Duration = time.Since(res.Started) }()
	return r.replayPlan(ctx, context.Background(), res, p.info, p.plan, p.drop)
}
