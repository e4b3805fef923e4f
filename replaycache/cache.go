package replaycache

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// Options configure a Cache. The zero value and nil select every default.
type Options struct {
	// Window keeps sessions whose connect (the open event's start time) is
	// at most this old; older ones are evicted (reason "age") even while
	// they still receive events. Open the consumer at now - Window.
	// Default 15 min.
	Window time.Duration
	// MaxBytes bounds the memory held for cached sessions, in bytes:
	// encoded batches, the batch being built, out-of-order events and
	// summaries. Past it the least recently used sessions (read by Get or
	// Follow, or appended to) are evicted (reason "size"). Default 2 GiB.
	MaxBytes int64
	// GapWait is how long a session waits for a missing sequence number
	// before it is cut at the gap and marked truncated, and how long events
	// of a session whose open event has not been seen are held before they
	// are dropped as "no connect". A gap is checked every GapWait/10 (at
	// least 10 ms, at most 1 s), so a cut comes up to that much later.
	//
	// The tap flushes each session at least every second, one exporter
	// per session, and both stream producers keep one key's records in
	// order through retries (a retried record holds back the ones behind
	// it: that is a delay, not a gap). Events arrive out of order only
	// when a Kinesis shard splits while a record is in flight: that record
	// lands in the sibling shard, which the consumer reads concurrently,
	// so it comes within a shard poll or two (about a second each) of its
	// neighbours. A later event that is still missing after ten flush
	// intervals was lost (a record the producer gave up on, or the tap's
	// cut), and waiting longer only keeps a broken session unservable.
	// Default 10 s.
	GapWait time.Duration
	// MaxPendingEvents bounds the out-of-order events held per session (and
	// per session without a connect yet). A session that exceeds it is cut
	// at its gap at once. Default 1024.
	MaxPendingEvents int
	// MaxPendingBytes bounds the payload bytes of those events per session.
	// Default 1 MiB.
	MaxPendingBytes int
	// MaxOrphanBytes bounds the memory held for events of sessions whose
	// open event has not been seen yet, across all of them, in bytes. Past
	// it the oldest such session is dropped as "no connect". Default 64 MiB.
	MaxOrphanBytes int64
	// SealBytes is the body size, before compression, at which a session's
	// growing batch is compressed and sealed. Larger batches compress
	// better, but a live session holds up to this much uncompressed: on
	// corpus traffic 32 KiB costs 5% more memory for complete sessions
	// than 64 KiB and 30% less for live ones (see BenchmarkMemory).
	// Follow seals a live session's batch too. Default 32 KiB.
	SealBytes int
	// IdleSeal seals a live session's growing batch, and frees its buffer,
	// once no event has been appended to it for this long. Default 10 s.
	IdleSeal time.Duration
	// Protocol names the protocol profile that judges every session's
	// client messages and names their kinds: "graphql-transport-ws",
	// "graphql-ws", "socket.io", "json-rpc" or "json" (see package
	// protocol). Default "": each session's profile is detected from its
	// subprotocol, route and first client message. Run fails at once if
	// the name is unknown.
	Protocol string
	// KindFields names extra JSON keys whose value names a client
	// message's operation, for the profiles that read plain JSON messages
	// (protocol.Options.KeyFields). Default none: the profiles' own.
	KindFields []string
	// KindByRoute classifies every client message by the path of its
	// session's route instead of by its protocol profile.
	KindByRoute bool
	// MaxKinds bounds the distinct message kinds the cache tells apart,
	// "other" included. When the table is full, a new kind takes the place
	// of the least recently seen kind that no cached session holds any
	// more (the old one is forgotten); if every kind is held, the new one
	// counts as "other". Default 1024, at most 65,535.
	MaxKinds int
	// MaxNewKindsPerSession bounds the kinds one session may add to the
	// kind table; its later new kinds count as "other", so that one client
	// cannot fill the table with made-up names. Default 64.
	MaxNewKindsPerSession int
	// MinKindSessions is how many cached sessions must hold a kind before
	// it counts for Coverage, so that kinds one client makes up are never
	// what warmers are served first. Rarer kinds still show in summaries
	// and Status. Default 3.
	MinKindSessions int
	// MaxSessionWeight caps a session's score in Coverage: the new kinds
	// it adds count up to this many. Default 8.
	MaxSessionWeight int
	// MaxFollowers bounds concurrent Follow calls; more fail with
	// ErrTooManyFollowers. Default 4096.
	MaxFollowers int
	// Now returns the current time, for the window and every timer's
	// deadline. Default time.Now.
	Now func() time.Time
	// Logger receives corrupt records (at most one line per 10 s), gap cuts
	// and evictions at debug level. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the cache's preheat_cache_* metrics. Default a new
	// set from metrics.NewSet; see Cache.Metrics.
	Metrics *metrics.Set
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 2 << 30
	}
	if c.GapWait <= 0 {
		c.GapWait = 10 * time.Second
	}
	if c.MaxPendingEvents <= 0 {
		c.MaxPendingEvents = 1024
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 1 << 20
	}
	if c.MaxOrphanBytes <= 0 {
		c.MaxOrphanBytes = 64 << 20
	}
	if c.SealBytes <= 0 {
		c.SealBytes = 32 << 10
	}
	if c.IdleSeal <= 0 {
		c.IdleSeal = 10 * time.Second
	}
	if c.MaxKinds <= 0 {
		c.MaxKinds = 1024
	}
	if c.MaxKinds > 1<<16-1 {
		c.MaxKinds = 1<<16 - 1
	}
	if c.MaxNewKindsPerSession <= 0 {
		c.MaxNewKindsPerSession = 64
	}
	if c.MinKindSessions <= 0 {
		c.MinKindSessions = 3
	}
	if c.MaxSessionWeight <= 0 {
		c.MaxSessionWeight = 8
	}
	if c.MaxFollowers <= 0 {
		c.MaxFollowers = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// maxTombstones bounds the ids of evicted and dropped sessions remembered so
// that their later events are dropped quietly instead of being held as
// sessions without a connect. About 50 bytes each.
const maxTombstones = 1 << 17

// Errors returned by Follow.
var (
	// ErrNotFound means the cache holds no session with the id.
	ErrNotFound = errors.New("replaycache: session not cached")
	// ErrEvicted means the session was evicted while it was followed.
	ErrEvicted = errors.New("replaycache: session evicted")
	// ErrTooManyFollowers means MaxFollowers Follow calls are running.
	ErrTooManyFollowers = errors.New("replaycache: too many followers")
)

// Cache holds a rolling window of whole sessions read from a stream. Its
// methods are safe for concurrent use; Run must be called once.
type Cache struct {
	cons stream.Consumer
	opts Options
	log  *slog.Logger
	now  func() time.Time

	running   atomic.Bool
	followers atomic.Int64

	// The LRU is an intrusive ring through the entries rather than
	// github.com/hashicorp/golang-lru/v2: that bounds a count of entries,
	// not bytes, takes its own lock beside ours, allocates a list element
	// per entry, and evicts with no reason; the cache needs a byte bound
	// kept under the lock that guards the sessions, a second order by
	// connect time for the window (byStart), and evictions counted by
	// reason. The ring and the heap are a few dozen lines.
	mu       sync.Mutex
	sessions map[session.ID]*entry
	lru      entry // sentinel of the LRU ring: lru.nxt is the most recent
	byStart  startHeap
	bytes    int64 // accounted bytes of cached sessions
	payload  int64 // payload bytes of cached sessions
	gapping  map[*entry]struct{}
	tails    map[*entry]struct{} // entries with a growing batch
	orphans  map[session.ID]*orphan
	orphanQ  []session.ID // orphans in the order they came, with stale ids
	orphanB  int64
	tombs    map[session.ID]time.Time
	tombQ    []session.ID // insertion order of tombs, a FIFO
	parts    map[string]time.Time
	routes   map[string]int // cached sessions by route path
	kinds    kindTable
	// protocols detects each session's profile, unless profile is fixed
	// by Options.Protocol; protoErr is why that name is unknown.
	protocols *protocol.Set
	profile   protocol.Profile
	protoErr  error
	scratch   []byte
	lastWarn  time.Time

	m cacheMetrics
}

type cacheMetrics struct {
	recordsRead, corrupt, events, duplicates, gapsCut, noConnect *metrics.Counter
	evictAge, evictSize                                          *metrics.Counter
	dropGap, dropAfterClose, dropEvicted, dropOutside            *metrics.Counter
	dropNoConnect, dropInvalid, dropOrphanFull                   *metrics.Counter
	sessions, bytes, subscribers, orphans                        *metrics.Gauge
	kindsForgotten, otherFull, otherLimited, otherLong           *metrics.Counter
}

// New returns a cache that reads records from cons once Run is called. The
// caller owns cons: it opens it (normally at now - Window) and closes it
// after Run has returned. opts may be nil.
func New(cons stream.Consumer, opts *Options) *Cache {
	o := opts.withDefaults()
	c := &Cache{
		cons:     cons,
		opts:     o,
		log:      o.Logger.With("component", "replaycache"),
		now:      o.Now,
		sessions: make(map[session.ID]*entry),
		gapping:  make(map[*entry]struct{}),
		tails:    make(map[*entry]struct{}),
		orphans:  make(map[session.ID]*orphan),
		tombs:    make(map[session.ID]time.Time),
		parts:    make(map[string]time.Time),
		routes:   make(map[string]int),
	}
	c.lru.prev, c.lru.nxt = &c.lru, &c.lru
	c.kinds.init(o.MaxKinds)
	c.protocols = protocol.NewSet(&protocol.Options{KeyFields: o.KindFields})
	if o.Protocol != "" {
		p, err := c.protocols.Lookup(o.Protocol)
		if err != nil {
			c.protoErr = fmt.Errorf("replaycache: protocol %q: %w", o.Protocol, err)
		}
		c.profile = p
	}
	s := o.Metrics
	drop := func(reason string) *metrics.Counter {
		return s.GetOrCreateCounter(`preheat_cache_events_dropped_total{reason="` + reason + `"}`)
	}
	other := func(reason string) *metrics.Counter {
		return s.GetOrCreateCounter(`preheat_cache_messages_kind_other_total{reason="` + reason + `"}`)
	}
	c.m = cacheMetrics{
		recordsRead:    s.GetOrCreateCounter(`preheat_cache_records_read_total`),
		corrupt:        s.GetOrCreateCounter(`preheat_cache_records_corrupt_total`),
		events:         s.GetOrCreateCounter(`preheat_cache_events_total`),
		duplicates:     s.GetOrCreateCounter(`preheat_cache_duplicates_total`),
		gapsCut:        s.GetOrCreateCounter(`preheat_cache_gaps_cut_total`),
		noConnect:      s.GetOrCreateCounter(`preheat_cache_no_connect_total`),
		evictAge:       s.GetOrCreateCounter(`preheat_cache_evictions_total{reason="age"}`),
		evictSize:      s.GetOrCreateCounter(`preheat_cache_evictions_total{reason="size"}`),
		dropGap:        drop("gap"),
		dropAfterClose: drop("after_close"),
		dropEvicted:    drop("evicted"),
		dropOutside:    drop("outside_window"),
		dropNoConnect:  drop("no_connect"),
		dropInvalid:    drop("invalid"),
		dropOrphanFull: drop("orphan_full"),
		sessions:       s.GetOrCreateGauge(`preheat_cache_sessions`, nil),
		bytes:          s.GetOrCreateGauge(`preheat_cache_bytes`, nil),
		subscribers:    s.GetOrCreateGauge(`preheat_cache_subscribers`, nil),
		orphans:        s.GetOrCreateGauge(`preheat_cache_orphan_sessions`, nil),
		kindsForgotten: s.GetOrCreateCounter(`preheat_cache_kinds_forgotten_total`),
		otherFull:      other("table_full"),
		otherLimited:   other("session_limit"),
		otherLong:      other("too_long"),
	}
	return c
}

// Metrics returns the set the cache's metrics are registered in.
func (c *Cache) Metrics() *metrics.Set { return c.opts.Metrics }

// decoded is one record, decoded by the reading goroutine.
type decoded struct {
	partition string
	at        time.Time
	events    []session.Event
}

// Run reads the consumer and applies its records until ctx is done, then
// returns nil. It returns the consumer's error if reading fails, and nil
// once the consumer reports io.EOF (a consumer started with StopAtEnd),
// after applying every record. Timers (GapWait, the window, IdleSeal) run
// only while Run does. Run may be called once. It fails at once if
// Options.Protocol names no profile.
func (c *Cache) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("replaycache: Run called twice")
	}
	if c.protoErr != nil {
		return c.protoErr
	}
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	recs := make(chan decoded, 64)
	g.Go(func() error {
		defer close(recs)
		for {
			rec, err := c.cons.Next(ctx)
			if err != nil {
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read stream: %w", err)
			}
			c.m.recordsRead.Inc()
			evs, err := session.DecodeBatch(rec.Data, nil)
			if err != nil {
				c.corruptRecord(rec, err)
				continue
			}
			select {
			case recs <- decoded{partition: rec.Partition, at: rec.Time, events: evs}:
			case <-ctx.Done():
				return nil
			}
		}
	})
	g.Go(func() error {
		t := time.NewTicker(c.tickInterval())
		defer t.Stop()
		for {
			select {
			case d, ok := <-recs:
				if !ok {
					return nil
				}
				c.apply(d)
			case <-t.C:
				c.tick()
			case <-ctx.Done():
				return nil
			}
		}
	})
	err := g.Wait()
	if parent.Err() != nil {
		return nil
	}
	return err
}

// tickInterval is how often timers are checked: a tenth of GapWait, within
// [10 ms, 1 s].
func (c *Cache) tickInterval() time.Duration {
	return min(max(c.opts.GapWait/10, 10*time.Millisecond), time.Second)
}

func (c *Cache) corruptRecord(rec stream.Record, err error) {
	c.m.corrupt.Inc()
	c.mu.Lock()
	now := c.now()
	warn := now.Sub(c.lastWarn) >= 10*time.Second
	if warn {
		c.lastWarn = now
	}
	c.mu.Unlock()
	if warn {
		c.log.Warn("corrupt record skipped", "partition", rec.Partition, "position", rec.Position, "err", err)
	}
}

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

// apply adds one decoded record's events to the cache.
func (c *Cache) apply(d decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if t, ok := c.parts[d.partition]; !ok || d.at.After(t) {
		c.parts[d.partition] = d.at
	}
	evs := d.events
	id := evs[0].Session
	if e := c.sessions[id]; e != nil {
		c.addEvents(e, evs, d.at, now)
		return
	}
	if _, ok := c.tombs[id]; ok {
		c.m.dropEvicted.Add(len(evs))
		return
	}
	var open *session.Event
	for i := range evs {
		if evs[i].Seq == 0 && evs[i].Kind == session.KindOpen {
			open = &evs[i]
			break
		}
	}
	cutoff := now.Add(-c.opts.Window)
	if open == nil {
		// A frame's record cannot be older than its session's start plus
		// its offset, so a start estimated from the record time is no
		// earlier than the real one: if even that is outside the window,
		// the connect is too (after a restart, it was before the start).
		for i := range evs {
			if evs[i].Offset > 0 && d.at.Add(-evs[i].Offset).Before(cutoff) {
				c.m.dropOutside.Add(len(evs))
				if o := c.orphans[id]; o != nil {
					c.m.dropOutside.Add(len(o.pending))
					c.dropOrphan(id, o)
				}
				c.tombstone(id, now.Add(2*c.opts.GapWait))
				return
			}
		}
		c.addOrphan(id, evs, now)
		return
	}
	if open.Open.Start.Before(cutoff) {
		c.m.dropOutside.Add(len(evs))
		c.tombstone(id, now.Add(2*c.opts.GapWait))
		return
	}
	e := &entry{id: id, route: open.Open.Route, subprotocol: open.Open.Subprotocol, start: open.Open.Start, heapIndex: -1}
	c.sessions[id] = e
	heap.Push(&c.byStart, e)
	c.pushFront(e)
	c.routes[routePath(e.route)]++
	if o := c.orphans[id]; o != nil {
		c.dropOrphan(id, o)
		held := make([]session.Event, 0, len(o.pending)+len(evs))
		for _, p := range o.pending {
			held = append(held, p.ev)
		}
		evs = append(held, evs...)
	}
	c.addEvents(e, evs, d.at, now)
	c.m.sessions.Set(float64(len(c.sessions)))
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

func (h startHeap) Len() int           { return len(h) }
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
