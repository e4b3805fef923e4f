package replaycache

import (
	"container/heap"
	"time"

	"github.com/preheatdev/preheat/session"
)

// maxTombstones bounds the ids of evicted and dropped sessions remembered so
// that their later events are dropped quietly instead of being held as
// sessions without a connect. About 50 bytes each.
const maxTombstones = 1 << 17

// evictForSize evicts least recently used sessions while over MaxBytes.
func (c *Cache) evictForSize() {
	for c.bytes > c.opts.MaxBytes && c.lru.prev != &c.lru {
		e := c.lru.prev
		c.evict(e, "size")
	}
}

func (c *Cache) evict(e *entry, reason string) {
	now := c.now()
	delete(c.sessions, e.id)
	heap.Remove(&c.byStart, e.heapIndex)
	e.prev.nxt, e.nxt.prev = e.nxt, e.prev
	e.prev, e.nxt = nil, nil
	delete(c.gapping, e)
	delete(c.tails, e)
	c.bytes -= e.bytes
	c.payload -= e.payload
	e.bytes = 0
	if r := routePath(e.route); c.routes[r] <= 1 {
		delete(c.routes, r)
	} else {
		c.routes[r]--
	}
	c.releaseKinds(e)
	e.evicted = true
	e.pending, e.pendingBytes = nil, 0
	e.w = session.BatchWriter{}
	e.snap = nil
	e.conv, e.convKind, e.subprotocol = nil, 0, ""
	notify(e)
	switch reason {
	case "age":
		c.m.evictAge.Inc()
		c.tombstone(e.id, now.Add(2*c.opts.GapWait))
	default:
		c.m.evictSize.Inc()
		// It may still be live: drop its events until its connect leaves
		// the window, when the start estimate takes over.
		c.tombstone(e.id, e.start.Add(c.opts.Window+2*c.opts.GapWait))
	}
	c.m.sessions.Set(float64(len(c.sessions)))
	c.m.bytes.Set(float64(c.bytes))
	c.log.Debug("session evicted", "session", e.id, "reason", reason)
}

func (c *Cache) tombstone(id session.ID, until time.Time) {
	if _, ok := c.tombs[id]; !ok {
		c.tombQ = append(c.tombQ, id)
	}
	c.tombs[id] = until
	for len(c.tombQ) > maxTombstones {
		delete(c.tombs, c.tombQ[0])
		c.tombQ = c.tombQ[1:]
	}
}

// tick runs the timers: the window, gap cuts, orphans, idle batches and
// tombstones.
func (c *Cache) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	cutoff := now.Add(-c.opts.Window)
	for len(c.byStart) > 0 && c.byStart[0].start.Before(cutoff) {
		c.evict(c.byStart[0], "age")
	}
	for e := range c.gapping {
		if now.Sub(e.gapSince) >= c.opts.GapWait {
			c.cut(e, "gap")
			c.finish(e)
			c.account(e)
			notify(e)
		}
	}
	for id, o := range c.orphans {
		if now.Sub(o.first) >= c.opts.GapWait {
			c.noConnect(id, o, now)
		}
	}
	if len(c.orphanQ) > 2*len(c.orphans)+64 {
		q := c.orphanQ[:0]
		for _, id := range c.orphanQ {
			if c.orphans[id] != nil {
				q = append(q, id)
			}
		}
		clear(c.orphanQ[len(q):])
		c.orphanQ = q
	}
	for e := range c.tails {
		if now.Sub(e.tailAt) >= c.opts.IdleSeal {
			c.release(e)
			c.account(e)
		}
	}
	for len(c.tombQ) > 0 {
		id := c.tombQ[0]
		if until, ok := c.tombs[id]; ok && now.Before(until) {
			break
		}
		delete(c.tombs, id)
		c.tombQ = c.tombQ[1:]
	}
	if len(c.tombQ) == 0 {
		c.tombQ = nil
	}
	c.evictForSize()
}

// LRU ring, most recent at c.lru.nxt.
func (c *Cache) pushFront(e *entry) {
	e.prev, e.nxt = &c.lru, c.lru.nxt
	c.lru.nxt.prev = e
	c.lru.nxt = e
}

func (c *Cache) moveFront(e *entry) {
	if e.prev == nil || c.lru.nxt == e {
		return
	}
	e.prev.nxt, e.nxt.prev = e.nxt, e.prev
	c.pushFront(e)
}

// startHeap orders cached sessions by connect time, oldest first.
type startHeap []*entry

func (h startHeap) Len() int { return len(h) }

func (h startHeap) Less(i, j int) bool { return h[i].start.Before(h[j].start) }

func (h startHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}

func (h *startHeap) Push(x any) {
	e := x.(*entry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}

func (h *startHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIndex = -1
	return e
}
