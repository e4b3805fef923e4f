package replaycache

import (
	"strings"
	"time"
	"unsafe"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// entry is a cached session. Every field is guarded by Cache.mu.
type entry struct {
	id    session.ID
	route string
	start time.Time

	// subprotocol is the open event's, kept until the first client message
	// picks the session's profile; conv then judges the client messages,
	// fed in sequence order, until the session is done.
	subprotocol string
	conv        protocol.Conversation
	convKind    int // length of the last kind conv named: it may keep a copy
	newKinds    int // kinds this session added to the kind table

	next         uint64 // next sequence number expected
	pending      []pendingEvent
	pendingBytes int
	gapSince     time.Time

	w         session.BatchWriter
	tailFirst uint64    // seq of the first event in w
	tailMax   int       // largest body w reached: its buffer's size
	tailAt    time.Time // when an event was last appended to w
	snap      []byte    // w encoded for Get while snapN == w.Events()
	snapN     int
	chunks    []chunk
	chunkB    int64 // capacity of the chunks' data

	events, clientFrames, serverFrames int
	payload                            int64
	lastOffset                         time.Duration
	lastRecord                         time.Time
	kinds                              []uint16 // sorted; replaced, never changed in place
	kindCounts                         []uint32 // counts of kinds[i]

	complete, truncated, evicted bool
	changed                      chan struct{} // closed on news; nil if nobody waits

	bytes     int64 // accounted size, as added to Cache.bytes
	prev, nxt *entry
	heapIndex int
}

// chunk is a sealed, encoded batch of events first..last. data is never
// changed once sealed.
type chunk struct {
	data        []byte
	first, last uint64
}

type pendingEvent struct {
	ev session.Event
	at time.Time
}

// orphan holds events of a session whose open event has not been seen.
type orphan struct {
	first   time.Time
	pending []pendingEvent
	bytes   int64
}

var (
	entrySize   = int64(unsafe.Sizeof(entry{})) + 64 // plus its map slot and heap slot
	pendingSize = int64(unsafe.Sizeof(pendingEvent{}))
	chunkSize   = int64(unsafe.Sizeof(chunk{}))
	orphanSize  = int64(unsafe.Sizeof(orphan{})) + 48
)

func (e *entry) done() bool { return e.complete || e.truncated }

// footprint is what the entry holds in memory. The growing batch's buffer
// is not visible; its size is estimated from the largest body it reached
// and slice growth.
func (e *entry) footprint() int64 {
	n := entrySize + int64(len(e.route)) + e.chunkB + int64(cap(e.chunks))*chunkSize
	n += int64(e.tailMax)*5/4 + int64(cap(e.snap))
	n += int64(e.pendingBytes) + int64(cap(e.pending))*pendingSize
	n += int64(cap(e.kinds))*2 + int64(cap(e.kindCounts))*4
	n += int64(len(e.subprotocol))
	if e.conv != nil {
		n += convSize + int64(e.convKind)
	}
	return n
}

func eventBytes(ev *session.Event) int {
	return cap(ev.Payload) + len(ev.Reason)
}

// addEvents puts evs (all of e's session) in order into e, then accounts
// for e, notifies its followers and evicts for size.
func (c *Cache) addEvents(e *entry, evs []session.Event, at, now time.Time) {
	if at.After(e.lastRecord) {
		e.lastRecord = at
	}
	before := e.next
	for i := range evs {
		c.addEvent(e, &evs[i], now)
	}
	if len(e.pending) > 0 && !e.done() {
		if _, ok := c.gapping[e]; !ok {
			c.gapping[e] = struct{}{}
		}
		e.gapSince = e.pending[0].at
		for _, p := range e.pending[1:] {
			if p.at.Before(e.gapSince) {
				e.gapSince = p.at
			}
		}
	} else {
		delete(c.gapping, e)
	}
	if e.w.Events() > 0 && e.w.Len() >= c.opts.SealBytes {
		c.seal(e)
	}
	if e.done() {
		c.finish(e)
	}
	c.moveFront(e)
	c.account(e)
	if e.next != before || e.done() {
		notify(e)
	}
	c.evictForSize()
}

// addEvent places one event: appended if it is the next one, held if it is
// early, dropped if it is a duplicate or the session is finished.
func (c *Cache) addEvent(e *entry, ev *session.Event, now time.Time) {
	switch {
	case ev.Seq < e.next:
		c.m.duplicates.Inc()
		return
	case e.done():
		if e.complete {
			c.m.dropAfterClose.Inc()
		} else {
			c.m.dropGap.Inc()
		}
		return
	case ev.Seq > e.next:
		i, found := searchPending(e.pending, ev.Seq)
		if found {
			c.m.duplicates.Inc()
			return
		}
		if len(e.pending) >= c.opts.MaxPendingEvents || e.pendingBytes+eventBytes(ev) > c.opts.MaxPendingBytes {
			c.m.dropGap.Inc()
			c.cut(e, "pending events full")
			return
		}
		p := pendingEvent{ev: *ev, at: now}
		p.ev.Payload = cloneBytes(ev.Payload)
		e.pending = append(e.pending, pendingEvent{})
		copy(e.pending[i+1:], e.pending[i:])
		e.pending[i] = p
		e.pendingBytes += eventBytes(&p.ev)
		return
	}
	c.appendEvent(e, ev, now)
	for len(e.pending) > 0 && !e.done() {
		p := &e.pending[0]
		if p.ev.Seq > e.next {
			break
		}
		if p.ev.Seq == e.next {
			c.appendEvent(e, &p.ev, now)
		} else {
			c.m.duplicates.Inc()
		}
		e.pendingBytes -= eventBytes(&p.ev)
		e.pending[0] = pendingEvent{}
		e.pending = e.pending[1:]
	}
	if len(e.pending) == 0 {
		e.pending = nil
	}
	if e.done() && len(e.pending) > 0 {
		if e.complete {
			c.m.dropAfterClose.Add(len(e.pending))
		} else {
			c.m.dropGap.Add(len(e.pending))
		}
		e.pending, e.pendingBytes = nil, 0
	}
}

// appendEvent appends ev, which is e.next, to e's growing batch.
func (c *Cache) appendEvent(e *entry, ev *session.Event, now time.Time) {
	if (ev.Seq == 0) != (ev.Kind == session.KindOpen) {
		// An open event that is not first, or a first event that is not an
		// open: the session cannot be replayed past here.
		c.m.dropInvalid.Inc()
		c.cut(e, "invalid event")
		return
	}
	e.next = ev.Seq + 1
	switch ev.Kind {
	case session.KindOpen, session.KindFrame, session.KindClose:
	default:
		// A kind from a newer writer: its sequence number is used, the
		// event is not kept.
		c.m.dropInvalid.Inc()
		return
	}
	if e.w.Events() == 0 {
		e.tailFirst = ev.Seq
		c.tails[e] = struct{}{}
	}
	e.snap, e.snapN = nil, 0
	if err := e.w.Append(ev); err != nil {
		e.next = ev.Seq
		c.m.dropInvalid.Inc()
		c.cut(e, "invalid event")
		return
	}
	e.tailMax = max(e.tailMax, e.w.Len())
	e.tailAt = now
	e.events++
	c.m.events.Inc()
	switch ev.Kind {
	case session.KindFrame:
		e.payload += int64(len(ev.Payload))
		c.payload += int64(len(ev.Payload))
		if ev.Offset > e.lastOffset {
			e.lastOffset = ev.Offset
		}
		if ev.Direction == session.ServerToClient {
			e.serverFrames++
			return
		}
		e.clientFrames++
		c.classify(e, ev)
	case session.KindClose:
		if ev.Offset > e.lastOffset {
			e.lastOffset = ev.Offset
		}
		e.complete = true
	}
}

func searchPending(s []pendingEvent, seq uint64) (int, bool) {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].ev.Seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s) && s[lo].ev.Seq == seq
}

// cut ends e at its gap: what it has stays, everything later is dropped.
func (c *Cache) cut(e *entry, why string) {
	if e.done() {
		return
	}
	e.truncated = true
	c.m.gapsCut.Inc()
	c.m.dropGap.Add(len(e.pending))
	e.pending, e.pendingBytes = nil, 0
	delete(c.gapping, e)
	c.log.Debug("session cut", "session", e.id, "next_seq", e.next, "reason", why)
}

// seal compresses e's growing batch into a chunk.
func (c *Cache) seal(e *entry) {
	data := c.snapshot(e)
	if data == nil {
		return
	}
	e.chunks = append(e.chunks, chunk{data: data, first: e.tailFirst, last: e.next - 1})
	e.chunkB += int64(cap(data))
	e.snap, e.snapN = nil, 0
	e.w.Reset()
}

// snapshot returns e's growing batch encoded, nil if it is empty. The
// encoding is kept until the next event is appended, so that many readers
// of a live session compress it once and sealing it later costs nothing.
func (c *Cache) snapshot(e *entry) []byte {
	n := e.w.Events()
	if n == 0 {
		return nil
	}
	if e.snap != nil && e.snapN == n {
		return e.snap
	}
	var err error
	c.scratch, err = e.w.AppendTo(c.scratch[:0])
	if err != nil {
		// AppendTo fails only without events, checked above.
		c.log.Error("encode batch", "session", e.id, "err", err)
		return nil
	}
	e.snap, e.snapN = cloneBytes(c.scratch), n
	if cap(c.scratch) > 4*c.opts.SealBytes {
		c.scratch = nil
	}
	return e.snap
}

// release seals e's batch and frees its buffer.
func (c *Cache) release(e *entry) {
	c.seal(e)
	e.w = session.BatchWriter{}
	e.tailMax = 0
	delete(c.tails, e)
}

// finish seals a session that will not grow again. Followers seal a live
// session's batch whenever they catch up, so a followed session can end in
// many small batches: those are compressed again as batches of up to
// SealBytes.
func (c *Cache) finish(e *entry) {
	c.release(e)
	delete(c.gapping, e)
	e.conv, e.convKind, e.subprotocol = nil, 0, ""
	if len(e.chunks) > 2 && e.chunkB < int64(len(e.chunks))*int64(c.opts.SealBytes)/8 {
		c.compact(e)
	}
	if cap(e.chunks) > len(e.chunks) {
		e.chunks = append([]chunk(nil), e.chunks...)
	}
}

// compact re-encodes e's chunks as batches of up to SealBytes. Snapshots
// and followers holding the old chunks keep them: chunks are never changed.
func (c *Cache) compact(e *entry) {
	var evs []session.Event
	for _, ch := range e.chunks {
		var err error
		if evs, err = session.DecodeBatch(ch.data, evs); err != nil {
			c.log.Error("compact session", "session", e.id, "err", err) // our own encoding: a bug
			return
		}
	}
	var w session.BatchWriter
	var out []chunk
	var size int64
	first := evs[0].Seq
	for i := range evs {
		if err := w.Append(&evs[i]); err != nil {
			c.log.Error("compact session", "session", e.id, "err", err)
			return
		}
		if w.Len() < c.opts.SealBytes && i < len(evs)-1 {
			continue
		}
		var err error
		if c.scratch, err = w.AppendTo(c.scratch[:0]); err != nil {
			c.log.Error("compact session", "session", e.id, "err", err)
			return
		}
		data := cloneBytes(c.scratch)
		out = append(out, chunk{data: data, first: first, last: evs[i].Seq})
		size += int64(cap(data))
		w.Reset()
		if i+1 < len(evs) {
			first = evs[i+1].Seq
		}
	}
	e.chunks, e.chunkB = out, size
}

// account brings c.bytes up to date with e's footprint.
func (c *Cache) account(e *entry) {
	n := e.footprint()
	c.bytes += n - e.bytes
	e.bytes = n
	c.m.bytes.Set(float64(c.bytes))
}

func notify(e *entry) {
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// addOrphan holds events of a session whose open event has not arrived.
func (c *Cache) addOrphan(id session.ID, evs []session.Event, now time.Time) {
	o := c.orphans[id]
	if o == nil {
		o = &orphan{first: now, bytes: orphanSize}
		c.orphans[id] = o
		c.orphanQ = append(c.orphanQ, id)
		c.orphanB += o.bytes
		c.m.orphans.Set(float64(len(c.orphans)))
	}
	for i := range evs {
		ev := &evs[i]
		if _, found := searchPending(o.pending, ev.Seq); found {
			c.m.duplicates.Inc()
			continue
		}
		n := int64(eventBytes(ev)) + pendingSize
		if len(o.pending) >= c.opts.MaxPendingEvents || o.bytes+n > orphanSize+int64(c.opts.MaxPendingBytes) {
			c.m.dropOrphanFull.Inc()
			continue
		}
		p := pendingEvent{ev: *ev, at: now}
		p.ev.Payload = cloneBytes(ev.Payload)
		i, _ := searchPending(o.pending, ev.Seq)
		o.pending = append(o.pending, pendingEvent{})
		copy(o.pending[i+1:], o.pending[i:])
		o.pending[i] = p
		n = int64(eventBytes(&p.ev)) + pendingSize
		o.bytes += n
		c.orphanB += n
	}
	// Over budget: drop the oldest orphans, this one included if need be.
	for c.orphanB > c.opts.MaxOrphanBytes && len(c.orphanQ) > 0 {
		oid := c.orphanQ[0]
		c.orphanQ = c.orphanQ[1:]
		if old := c.orphans[oid]; old != nil {
			c.noConnect(oid, old, now)
		}
	}
}

func (c *Cache) dropOrphan(id session.ID, o *orphan) {
	delete(c.orphans, id)
	c.orphanB -= o.bytes
	c.m.orphans.Set(float64(len(c.orphans)))
}

// noConnect gives up on an orphan: its events are dropped, and so are the
// session's later ones.
func (c *Cache) noConnect(id session.ID, o *orphan, now time.Time) {
	c.dropOrphan(id, o)
	c.m.noConnect.Inc()
	c.m.dropNoConnect.Add(len(o.pending))
	c.tombstone(id, now.Add(c.opts.Window))
}

// routePath is a route without its query.
func routePath(r string) string {
	if i := strings.IndexByte(r, '?'); i >= 0 {
		return r[:i]
	}
	return r
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
