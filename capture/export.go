package capture

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// exportJob is one batch on its way to the stream.
type exportJob struct {
	rec     *Recording
	key     string
	w       *session.BatchWriter
	size    int64 // bytes accounted in the budget
	flushed time.Time
}

var writerPool = sync.Pool{New: func() any { return new(session.BatchWriter) }}

// tracker is a stream.Producer that reports the fate of each record and
// can give up its oldest ones: the Kinesis producer. With one, a batch
// stays in the recorder's budget until the producer reports it delivered
// or given up, and the recorder sheds the oldest batches the producer
// holds to keep room for new sessions. With a producer that is not one (the
// directory log), a batch leaves the budget when Put returns.
type tracker interface {
	PutTracked(ctx context.Context, key string, data []byte, done func(stream.Outcome)) error
	ShedOldest(bytes int64) int64
}

// heldOverhead is what the producer keeps for one batch besides its data
// and key (its record of the batch, the report function, the aggregation
// framing), in budget bytes.
const heldOverhead = 160

// flushAll cuts every session still recording, marks it ended and flushes
// it. It returns how many sessions still have batches that found no room in
// their queue.
func (r *Recorder) flushAll() (pending int) {
	r.mu.Lock()
	recs := make([]*Recording, 0, len(r.active))
	for s := range r.active {
		recs = append(recs, s)
	}
	r.mu.Unlock()
	for _, s := range recs {
		s.mu.Lock()
		if !s.finished {
			s.cutLocked("shutdown")
			s.ended = true
			s.flushLocked()
			if !s.finished {
				pending++
			}
		}
		s.mu.Unlock()
	}
	return pending
}

// export compresses the batches of one queue and puts them into the stream.
func (r *Recorder) export(q chan *exportJob) {
	buf := make([]byte, 0, 64<<10)
	for job := range q {
		buf = r.put(job, buf)
		writerPool.Put(job.w)
	}
}

// put compresses job into buf and puts it into the stream; it returns buf
// for reuse.
func (r *Recorder) put(job *exportJob, buf []byte) []byte {
	s := job.rec
	if s.lost.Load() {
		// A batch of the session was not delivered: the session cannot
		// be replayed, so the rest of it is not sent.
		r.used.Add(-job.size)
		r.m.discarded.Inc()
		return buf
	}
	buf, err := job.w.AppendTo(buf[:0])
	if err != nil {
		r.used.Add(-job.size)
		r.m.failed.Inc()
		r.lose(s, "encode")
		r.logf(slog.LevelError, "encode batch", "session", job.key, "events", job.w.Events(), "err", err)
		return buf
	}
	r.m.batchSize.Update(float64(len(buf)))
	if r.tracked == nil {
		err = r.prod.Put(r.ctx, job.key, buf)
		r.used.Add(-job.size)
		if err != nil {
			r.m.failed.Inc()
			r.lose(s, "put")
			r.logf(slog.LevelWarn, "export batch", "session", job.key, "events", job.w.Events(), "err", err)
		} else {
			r.m.exported.Inc()
			r.m.exportLat.UpdateDuration(job.flushed)
		}
		return buf
	}

	// From here the batch's budget covers the copy the producer holds,
	// until the producer reports what became of it.
	held := int64(len(buf)+len(job.key)) + heldOverhead
	r.used.Add(held - job.size)
	flushed := job.flushed
	// The session's put lock orders this check and put against a report
	// of loss (see settle): either the batch is put before the session is
	// marked lost, and the producer gives it up with the lost one, or it
	// is not put at all.
	mu := r.putLock(s)
	mu.Lock()
	if s.lost.Load() {
		mu.Unlock()
		r.used.Add(-held)
		r.m.discarded.Inc()
		return buf
	}
	err = r.tracked.PutTracked(r.ctx, job.key, buf, func(o stream.Outcome) { r.settle(s, held, flushed, o) })
	mu.Unlock()
	if err != nil {
		r.used.Add(-held)
		r.m.failed.Inc()
		r.lose(s, "put")
		r.logf(slog.LevelWarn, "export batch", "session", job.key, "events", job.w.Events(), "err", err)
	}
	if r.used.Load() > r.shedAbove() {
		r.wakeShedder()
	}
	return buf
}

// settle takes the producer's report on a batch of s that held budget
// bytes and was flushed at flushed.
func (r *Recorder) settle(s *Recording, held int64, flushed time.Time, o stream.Outcome) {
	r.used.Add(-held)
	if o.Fate == stream.Delivered {
		r.lastDelivered.Store(time.Now().UnixNano())
		r.m.exported.Inc()
		r.m.exportLat.UpdateDuration(flushed)
		return
	}
	r.m.failed.Inc()
	mu := r.putLock(s)
	mu.Lock()
	r.lose(s, lossReason(o))
	mu.Unlock()
}

// lossReason is the reason a session is counted lost for when a batch of
// it had outcome o.
func lossReason(o stream.Outcome) string {
	switch {
	case o.Fate == stream.Unknown:
		return "unknown" // it may be in the stream, and the rest is not
	case o.Reason == "shed":
		return "budget"
	case o.Reason == "closed":
		return "shutdown"
	}
	return "undelivered"
}

// lose marks s lost, so that its later batches are not sent, and counts it
// in preheat_tap_sessions_lost_total{reason}, once, unless it was counted
// cut before: a session is counted once, for the first thing that kept it
// from reaching the stream whole. A session still recording stops.
func (r *Recorder) lose(s *Recording, reason string) {
	if !s.lost.CompareAndSwap(false, true) {
		return
	}
	stopped := "lost: " + reason
	if s.stop.CompareAndSwap(nil, &stopped) || s.stop.Load() == closedWhole {
		r.m.lost(reason)
	}
}

// putLock returns the lock that orders puts of s against reports of its
// loss. Sessions share a few locks, by id.
func (r *Recorder) putLock(s *Recording) *sync.Mutex {
	return &r.putLocks[s.id[len(s.id)-1]%uint8(len(r.putLocks))]
}

// shedAbove is the budget use past which the shedder gives up the oldest
// batches the producer holds: where new sessions stop being admitted.
func (r *Recorder) shedAbove() int64 { return r.opts.BudgetBytes / 4 * 3 }

func (r *Recorder) wakeShedder() {
	select {
	case r.shedc <- struct{}{}:
	default:
	}
}

// stalledAfter is how long the producer must have delivered nothing for
// the stream to count as stalled, and the oldest batches it holds as stuck.
const stalledAfter = time.Second

// shed gives up the oldest batches the producer holds, whole sessions at a
// time, while more than three quarters of the budget is in use and the
// stream is stalled (nothing delivered for stalledAfter), down to five
// eighths: delivery of what is held goes on while the budget has room, and
// when it has none the oldest sessions make way for new ones. While the
// stream delivers, the oldest batches are the next to go out, so nothing
// is shed: new sessions wait for room (dropped at their start) and
// sessions recording are cut at the budget, as with any producer. Each
// session given up is counted lost with reason "budget". It runs until
// Close.
func (r *Recorder) shed() {
	for {
		select {
		case <-r.stopShed:
			return
		case <-r.shedc:
		}
		target := r.opts.BudgetBytes / 8 * 5
		for used := r.used.Load(); used > r.shedAbove(); used = r.used.Load() {
			if time.Since(time.Unix(0, r.lastDelivered.Load())) < stalledAfter {
				break
			}
			if r.tracked.ShedOldest(used-target) == 0 {
				break // what is used is not the producer's
			}
		}
	}
}
