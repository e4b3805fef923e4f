package replayer

import (
	"sync"
	"time"
)

// maxPending bounds the requests one session waits on; past it the oldest
// is counted as a timeout.
const maxPending = 4096

// waiter matches one session's responses to its requests.
type waiter struct {
	r       *Replayer
	mu      sync.Mutex
	pending map[string]pendingReq // correlation value → request
	next    []pendingReq          // uncorrelated: requests awaiting the next server message
}

type pendingReq struct {
	at   time.Time
	kind string
}

// sent notes a request sent. A request is tied to its response by id, the
// protocol's id of the operation (see protocol.Judgement.ID), else by the
// Correlate field, else to the next server message.
func (w *waiter) sent(msg []byte, kind, id string) {
	p := pendingReq{at: time.Now(), kind: kind}
	w.mu.Lock()
	defer w.mu.Unlock()
	key := id
	if key == "" && w.r.correlate != nil {
		raw, ok, err := lookup(msg, w.r.correlate)
		if err != nil || !ok {
			return
		}
		key = string(raw)
	}
	if key == "" {
		if len(w.next) < maxPending {
			w.next = append(w.next, p)
		}
		return
	}
	if len(w.pending) >= maxPending {
		w.timeoutOldestLocked()
	}
	w.pending[key] = p
}

func (w *waiter) timeoutOldestLocked() {
	var oldest string
	var at time.Time
	for k, p := range w.pending {
		if at.IsZero() || p.at.Before(at) {
			oldest, at = k, p.at
		}
	}
	delete(w.pending, oldest)
	w.r.timeout()
}

// received returns the latency and kind of the request a server message
// answers, if any. id is the protocol's id of the operation the message
// belongs to (protocol.ServerMessage.ID), nil if none.
func (w *waiter) received(msg, id []byte, now time.Time) (time.Duration, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(id) == 0 && w.r.correlate != nil {
		if raw, ok, err := lookup(msg, w.r.correlate); err == nil && ok {
			id = raw
		}
	}
	if len(id) > 0 {
		if p, ok := w.pending[string(id)]; ok {
			delete(w.pending, string(id))
			return now.Sub(p.at), p.kind, true
		}
	}
	if len(w.next) == 0 {
		return 0, "", false
	}
	p := w.next[0]
	w.next = w.next[:0] // one server message answers everything before it
	return now.Sub(p.at), p.kind, true
}

// expire counts requests sent before now minus ResponseTimeout as timeouts.
func (w *waiter) expire(now time.Time) {
	cut := now.Add(-w.r.opts.ResponseTimeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, p := range w.pending {
		if p.at.Before(cut) {
			delete(w.pending, k)
			w.r.timeout()
		}
	}
	if len(w.next) > 0 && w.next[0].at.Before(cut) {
		w.next = w.next[:0]
		w.r.timeout()
	}
}

func (w *waiter) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.next)
}

func (r *Replayer) timeout() {
	r.stats.timeouts.Add(1)
	r.m.timeouts.Inc()
	r.hist.errors.Add(1)
}
