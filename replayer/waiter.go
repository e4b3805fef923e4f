package replayer

import (
	"sync"
	"time"
)

// maxPending bounds the requests one session keeps in its window: those
// waiting for an answer, and the answered ones sent after the oldest that
// still waits. When it is reached, the oldest waiting request is given up
// and counted as a timeout (and as evicted), so the window never grows past
// it.
const maxPending = 4096

// waiter matches one session's responses to its requests. Every request it
// takes ends as exactly one of answered, timed out (ResponseTimeout passed,
// or given up at maxPending) or closed (the connection ended while it
// waited), and is counted as such.
//
// Requests are kept in a window in the order they were sent; a request
// answered before older ones stays there, done, until they leave, so that
// the oldest waiting request is always at the head and expiry is cheap.
// Requests that share a key (the same id, reused by the client) are
// answered first in, first out.
type waiter struct {
	r  *Replayer
	mu sync.Mutex

	win     []pendingReq // from win[head], in send order
	head    int
	base    uint64 // the sequence number of win[0]
	waiting int    // requests in win not done

	byKey map[string]fifo // correlation value → its waiting requests
	next  []uint64        // uncorrelated: awaiting the next server message
}

// pendingReq is one request of the window.
type pendingReq struct {
	at    time.Time
	kind  string
	key   string
	keyed bool // in byKey under key; else in next
	done  bool // answered or given up
}

// fifo is the sequence numbers of the requests waiting under one key,
// oldest first.
type fifo struct {
	first uint64
	more  []uint64
}

func newWaiter(r *Replayer) *waiter { return &waiter{r: r, byKey: map[string]fifo{}} }

// sent takes a request about to be written and reports whether it waits for
// an answer. A request is tied to its response by id, the protocol's id of
// the operation (see protocol.Judgement.ID), else by the Correlate field,
// else to the next server message. One with Correlate set and no value
// there cannot be told apart from the others: it does not wait.
func (w *waiter) sent(msg []byte, kind, id string) bool {
	p := pendingReq{at: time.Now(), kind: kind, key: id, keyed: id != ""}
	if !p.keyed && w.r.correlate != nil {
		raw, ok, err := lookup(msg, w.r.correlate)
		if err != nil || !ok {
			return false
		}
		p.key, p.keyed = string(raw), true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.win)-w.head >= maxPending {
		w.evictOldestLocked()
	}
	seq := w.base + uint64(len(w.win))
	w.win = append(w.win, p)
	w.waiting++
	if !p.keyed {
		w.next = append(w.next, seq)
		return true
	}
	if f, ok := w.byKey[p.key]; ok {
		f.more = append(f.more, seq)
		w.byKey[p.key] = f
	} else {
		w.byKey[p.key] = fifo{first: seq}
	}
	return true
}

// withdraw takes back the request sent last, whose write failed, if it
// still waits; it reports whether it did. One that was answered or given
// up meanwhile stays counted.
func (w *waiter) withdraw() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := len(w.win) - 1
	if last < w.head || w.win[last].done {
		return false
	}
	p := &w.win[last]
	if p.keyed {
		f := w.byKey[p.key]
		if len(f.more) > 0 {
			f.more = f.more[:len(f.more)-1]
			w.byKey[p.key] = f
		} else {
			delete(w.byKey, p.key)
		}
	} else {
		w.next = w.next[:len(w.next)-1]
	}
	*p = pendingReq{}
	w.win = w.win[:last]
	w.waiting--
	w.trimLocked()
	return true
}

// received answers the request a server message answers, if any, and
// observes its latency: the oldest waiting under the message's id (id is the
// protocol's, protocol.ServerMessage.ID, else the Correlate field's value),
// else every uncorrelated request sent before it.
func (w *waiter) received(msg, id []byte, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == 0 {
		return
	}
	if len(id) == 0 && w.r.correlate != nil {
		if raw, ok, err := lookup(msg, w.r.correlate); err == nil && ok {
			id = raw
		}
	}
	if len(id) > 0 {
		if f, ok := w.byKey[string(id)]; ok {
			w.popKeyLocked(string(id), f)
			w.answerLocked(f.first, now)
			w.trimLocked()
			return
		}
	}
	if len(w.next) == 0 {
		return
	}
	for _, seq := range w.next {
		w.answerLocked(seq, now) // one server message answers every request before it
	}
	w.next = w.next[:0]
	w.trimLocked()
}

// expire gives up the requests sent before now minus ResponseTimeout,
// counting each as a timeout.
func (w *waiter) expire(now time.Time) {
	cut := now.Add(-w.r.opts.ResponseTimeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head < len(w.win) && w.win[w.head].at.Before(cut) {
		w.giveUpOldestLocked()
		w.r.timeout()
	}
}

// close ends the wait of every request still waiting, counting each as
// closed: the connection ended. cut says the caller ended the session.
func (w *waiter) close(cut bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := uint64(w.waiting)
	if n == 0 {
		return
	}
	w.r.stats.closed.Add(n)
	w.r.m.closed.Add(int(n))
	if cut {
		w.r.stats.closedCut.Add(n)
	}
	w.waiting = 0
	clear(w.win)
	w.base += uint64(len(w.win))
	w.win, w.head = w.win[:0], 0
	clear(w.byKey)
	w.next = w.next[:0]
}

func (w *waiter) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting
}

// evictOldestLocked gives up the oldest waiting request to make room.
func (w *waiter) evictOldestLocked() {
	w.giveUpOldestLocked()
	w.r.timeout()
	w.r.stats.evicted.Add(1)
	w.r.m.evicted.Inc()
}

// giveUpOldestLocked ends the wait of the request at the head, the oldest
// waiting: it is the first of its key's, or of next.
func (w *waiter) giveUpOldestLocked() {
	p := &w.win[w.head]
	if p.keyed {
		w.popKeyLocked(p.key, w.byKey[p.key])
	} else {
		w.next = w.next[1:]
	}
	p.done = true
	w.waiting--
	w.trimLocked()
}

// popKeyLocked removes the first of f, key's requests.
func (w *waiter) popKeyLocked(key string, f fifo) {
	if len(f.more) == 0 {
		delete(w.byKey, key)
		return
	}
	f.first, f.more = f.more[0], f.more[1:]
	w.byKey[key] = f
}

// answerLocked marks request seq answered at now and observes its latency.
func (w *waiter) answerLocked(seq uint64, now time.Time) {
	p := &w.win[seq-w.base]
	p.done = true
	w.waiting--
	w.r.observe(Response{At: now, Latency: now.Sub(p.at), Kind: p.kind})
}

// trimLocked drops the done requests at the head of the window, and moves
// the rest to the front of its array when the head has gone far.
func (w *waiter) trimLocked() {
	for w.head < len(w.win) && w.win[w.head].done {
		w.win[w.head] = pendingReq{}
		w.head++
	}
	switch {
	case w.head == len(w.win):
		w.base += uint64(len(w.win))
		w.win, w.head = w.win[:0], 0
	case w.head >= 64 && w.head >= len(w.win)/2:
		n := copy(w.win, w.win[w.head:])
		clear(w.win[n:])
		w.base += uint64(w.head)
		w.win, w.head = w.win[:n], 0
	}
}

func (r *Replayer) timeout() {
	r.stats.timeouts.Add(1)
	r.m.timeouts.Inc()
	r.hist.errors.Add(1)
}
