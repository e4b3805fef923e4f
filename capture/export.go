package capture

import (
	"log/slog"
	"sync"
	"time"

	"github.com/preheatdev/preheat/session"
)

// exportJob is one batch on its way to the stream.
type exportJob struct {
	key     string
	w       *session.BatchWriter
	size    int64 // bytes accounted in the budget
	flushed time.Time
}

var writerPool = sync.Pool{New: func() any { return new(session.BatchWriter) }}

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
		var err error
		buf, err = job.w.AppendTo(buf[:0])
		if err == nil {
			r.m.batchSize.Update(float64(len(buf)))
			err = r.prod.Put(r.ctx, job.key, buf)
		}
		if err != nil {
			r.m.failed.Inc()
			r.logf(slog.LevelWarn, "export batch", "session", job.key, "events", job.w.Events(), "err", err)
		} else {
			r.m.exported.Inc()
			r.m.exportLat.UpdateDuration(job.flushed)
		}
		r.used.Add(-job.size)
		writerPool.Put(job.w)
	}
}
