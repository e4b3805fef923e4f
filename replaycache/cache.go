package replaycache

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

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
	// newest is the stream time of the newest record applied and readFrom
	// when Run started, in Unix nanoseconds (0 before then), for
	// preheat_cache_newest_record_age_seconds without the lock.
	newest, readFrom atomic.Int64

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
	lag                                                          *metrics.Gauge
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
		lag:            s.GetOrCreateGauge(`preheat_cache_stream_lag_seconds`, nil),
		kindsForgotten: s.GetOrCreateCounter(`preheat_cache_kinds_forgotten_total`),
		otherFull:      other("table_full"),
		otherLimited:   other("session_limit"),
		otherLong:      other("too_long"),
	}
	s.GetOrCreateGauge(`preheat_cache_newest_record_age_seconds`, c.newestAge)
	return c
}

// newestAge is how old the newest record applied is, by its stream time, in
// seconds: it grows while the taps write nothing and while the cache reads
// nothing. Before the first record it is how long Run has been reading, and
// before Run 0.
func (c *Cache) newestAge() float64 {
	t := c.newest.Load()
	if t == 0 {
		t = c.readFrom.Load()
	}
	if t == 0 {
		return 0
	}
	return max(c.now().Sub(time.Unix(0, t)), 0).Seconds()
}

// Metrics returns the set the cache's metrics are registered in.
func (c *Cache) Metrics() *metrics.Set { return c.opts.Metrics }

// decoded is one record, decoded by the reading goroutine.
type decoded struct {
	partition string
	at        time.Time
	events    []session.Event
	size      int64 // decodedSize(events), held in the queue's budget
}

// decodeQueueBytes bounds the decoded records read ahead of the one being
// applied. A record decodes to at most session.MaxDecodeBytes, so counting
// records would let a run of hostile ones hold that many times over; a
// record larger than the bound waits for the queue to empty and goes alone.
const decodeQueueBytes = 64 << 20

// decodedSize is what a decoded record holds in memory, near enough to
// bound it: each event's struct and the bytes and strings copied out.
func decodedSize(evs []session.Event) int64 {
	const eventBytes = 112 // unsafe.Sizeof(session.Event{}) on 64-bit
	n := int64(len(evs)) * eventBytes
	for i := range evs {
		e := &evs[i]
		n += int64(len(e.Payload) + len(e.Reason))
		if o := e.Open; o != nil {
			n += int64(len(o.Route) + len(o.Subprotocol) + len(o.Extensions) + len(o.TapID))
			for k, vs := range o.Header {
				n += int64(len(k)) + 16
				for _, v := range vs {
					n += int64(len(v)) + 16
				}
			}
		}
	}
	return n
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
	c.readFrom.Store(c.now().UnixNano())
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	recs := make(chan decoded, 64)
	queued := semaphore.NewWeighted(decodeQueueBytes)
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
			d := decoded{partition: rec.Partition, at: rec.Time, events: evs, size: min(decodedSize(evs), decodeQueueBytes)}
			if err := queued.Acquire(ctx, d.size); err != nil {
				return nil // ctx is done
			}
			select {
			case recs <- d:
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
				queued.Release(d.size)
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

// apply adds one decoded record's events to the cache.
func (c *Cache) apply(d decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if t, ok := c.parts[d.partition]; !ok || d.at.After(t) {
		c.parts[d.partition] = d.at
	}
	if !d.at.IsZero() {
		// How far behind the stream this record was applied; a clock
		// behind the stream's reads as no lag.
		c.m.lag.Set(max(now.Sub(d.at), 0).Seconds())
		if n := d.at.UnixNano(); n > c.newest.Load() {
			c.newest.Store(n)
		}
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
