package replaycache

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/preheatdev/preheat/session"
)

// Summary describes a cached session.
type Summary struct {
	ID session.ID `json:"session"`
	// Route is the handshake's path and query, after redaction.
	Route string `json:"route"`
	// Start is the connect time, from the open event.
	Start time.Time `json:"start"`
	// LastEvent is Start plus the offset of the latest frame or close held.
	LastEvent time.Time `json:"last_event"`
	// LastRecord is the stream time of the latest record with the
	// session's events.
	LastRecord time.Time `json:"last_record"`
	// Events counts the events held, the open event included; they are
	// sequence numbers 0 to Events-1 unless a kind unknown to this build
	// was skipped.
	Events int `json:"events"`
	// NextSeq is the sequence number the session waits for next.
	NextSeq uint64 `json:"next_seq"`
	// ClientFrames and ServerFrames count the messages of each side.
	ClientFrames int `json:"client_frames"`
	ServerFrames int `json:"server_frames"`
	// PayloadBytes is the size of the messages held.
	PayloadBytes int64 `json:"payload_bytes"`
	// Bytes is the memory the cache holds for the session.
	Bytes int64 `json:"bytes"`
	// Kinds counts the client messages that name an operation, by kind
	// (see Options.Protocol), sorted by kind.
	Kinds []KindCount `json:"kinds,omitempty"`
	// Complete is set once the close event and everything before it is
	// held. Truncated is set when the session was cut at a gap.
	Complete  bool `json:"complete"`
	Truncated bool `json:"truncated"`
}

// KindCount is how many client messages of a kind a session has.
type KindCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// View is a read-only snapshot of a session: its summary and its events as
// encoded batches (docs/format.md), in sequence order, each batch holding
// the events after the previous one's. The batches are shared and never
// changed, so they may be written to a network while ingestion goes on.
// A batch's envelope gives the size of its body before compression only,
// so batches written back to back need framing (a length before each).
type View struct {
	Summary
	Batches [][]byte
}

// Batch is one encoded batch of a session's events, First to Last.
type Batch struct {
	Data        []byte
	First, Last uint64
}

// summary must be called with c.mu held.
func (c *Cache) summary(e *entry) Summary {
	s := Summary{
		ID:           e.id,
		Route:        e.route,
		Start:        e.start,
		LastEvent:    e.start.Add(e.lastOffset),
		LastRecord:   e.lastRecord,
		Events:       e.events,
		NextSeq:      e.next,
		ClientFrames: e.clientFrames,
		ServerFrames: e.serverFrames,
		PayloadBytes: e.payload,
		Bytes:        e.bytes,
		Complete:     e.complete,
		Truncated:    e.truncated,
	}
	if len(e.kinds) > 0 {
		s.Kinds = make([]KindCount, len(e.kinds))
		for i, k := range e.kinds {
			s.Kinds[i] = KindCount{Kind: c.kinds.names[k], Count: int(e.kindCounts[i])}
		}
		slices.SortFunc(s.Kinds, func(a, b KindCount) int { return strings.Compare(a.Kind, b.Kind) })
	}
	return s
}

// Get returns a snapshot of the session with the given id, or false if the
// cache does not hold it. The snapshot of a live session holds every event
// appended so far: its growing batch is encoded (once for all readers until
// the next event comes) without being sealed, so that reading a session
// often does not cut it into small batches that compress poorly. Get counts
// as a use for the LRU order.
func (c *Cache) Get(id session.ID) (View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.sessions[id]
	if e == nil {
		return View{}, false
	}
	v := View{Batches: make([][]byte, len(e.chunks), len(e.chunks)+1)}
	for i, ch := range e.chunks {
		v.Batches[i] = ch.data
	}
	if e.w.Events() > 0 {
		had := e.snap != nil
		if snap := c.snapshot(e); snap != nil {
			v.Batches = append(v.Batches, snap)
		}
		if !had {
			c.account(e)
		}
	}
	c.moveFront(e)
	v.Summary = c.summary(e)
	return v, true
}

// Filter selects sessions for List and Select. The zero Filter selects
// every session, up to the default limit.
type Filter struct {
	// Route keeps sessions whose route starts with it.
	Route string
	// MinClientFrames keeps sessions with at least this many client
	// messages.
	MinClientFrames int
	// MaxAge keeps sessions that connected at most this long ago; 0 for
	// any age in the window.
	MaxAge time.Duration
	// CompleteOnly keeps only sessions whose close is held: no live and no
	// truncated ones.
	CompleteOnly bool
	// Limit bounds the result. Default 100 for Select, 1000 for List; at
	// most 10,000.
	Limit int
}

func (f *Filter) keep(e *entry, now time.Time) bool {
	return strings.HasPrefix(e.route, f.Route) &&
		e.clientFrames >= f.MinClientFrames &&
		(f.MaxAge <= 0 || now.Sub(e.start) <= f.MaxAge) &&
		(!f.CompleteOnly || e.complete)
}

func limit(n, def int) int {
	if n <= 0 {
		return def
	}
	return min(n, 10000)
}

// List returns summaries of the sessions f selects, newest connect first.
func (c *Cache) List(f Filter) []Summary {
	n := limit(f.Limit, 1000)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var es []*entry
	for _, e := range c.byStart {
		if f.keep(e, now) {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *entry) int { return b.start.Compare(a.start) })
	es = es[:min(len(es), n)]
	out := make([]Summary, len(es))
	for i, e := range es {
		out[i] = c.summary(e)
	}
	return out
}

// Mode says how Select orders the sessions it may return.
type Mode string

// The modes of Select.
const (
	// Newest picks the sessions that connected last.
	Newest Mode = "newest"
	// Random picks sessions uniformly at random.
	Random Mode = "random"
	// Coverage picks sessions that add message kinds the client has not
	// been served yet, greedily (the one adding most first), breaking ties
	// at random so that many warmers asking at once spread over the
	// sessions; once no session adds a kind, the rest are random. Only
	// kinds held by Options.MinKindSessions cached sessions count ("other"
	// never does), and a session's score counts at most
	// Options.MaxSessionWeight of them, so that no one client steers what
	// warmers are served.
	Coverage Mode = "coverage"
)

// ParseMode parses a mode's name; "" is Coverage.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Newest, Random, Coverage:
		return m, nil
	case "":
		return Coverage, nil
	}
	return "", fmt.Errorf("parse mode %q: want newest, random or coverage", s)
}

// SelectRequest asks Select for sessions.
type SelectRequest struct {
	Filter
	// Mode orders the candidates. Default (and for unknown modes) Coverage.
	Mode Mode
	// Covered names the message kinds the client has been served already,
	// for Coverage.
	Covered []string
	// Exclude lists sessions the client has been served already.
	Exclude []session.ID
}

// SessionRef is a session picked by Select.
type SessionRef struct {
	ID           session.ID `json:"session"`
	Route        string     `json:"route"`
	Start        time.Time  `json:"start"`
	ClientFrames int        `json:"client_frames"`
	Bytes        int64      `json:"bytes"`
	Complete     bool       `json:"complete"`
	Truncated    bool       `json:"truncated"`
	// NewKinds are the kinds this session adds to Covered and to the
	// sessions picked before it, in Coverage mode.
	NewKinds []string `json:"new_kinds,omitempty"`
}

// maxCoverageCandidates bounds the sessions the greedy set cover looks at:
// a random sample of this many when more pass the filter.
const maxCoverageCandidates = 4096

type candidate struct {
	e     *entry
	kinds []uint16
	ref   SessionRef
}

// Select picks up to req.Limit distinct sessions that pass its filter.
func (c *Cache) Select(req SelectRequest) []SessionRef {
	n := limit(req.Limit, 100)
	exclude := make(map[session.ID]struct{}, len(req.Exclude))
	for _, id := range req.Exclude {
		exclude[id] = struct{}{}
	}
	c.mu.Lock()
	now := c.now()
	cands := make([]candidate, 0, min(len(c.byStart), 1024))
	for _, e := range c.byStart {
		if _, ok := exclude[e.id]; ok || !req.keep(e, now) {
			continue
		}
		cands = append(cands, candidate{e: e, kinds: e.kinds, ref: SessionRef{
			ID: e.id, Route: e.route, Start: e.start, ClientFrames: e.clientFrames,
			Bytes: e.bytes, Complete: e.complete, Truncated: e.truncated,
		}})
	}
	var uncovered []string
	if req.Mode != Newest && req.Mode != Random {
		uncovered = c.uncoveredKinds(req.Covered)
	}
	c.mu.Unlock()

	switch req.Mode {
	case Newest:
		slices.SortFunc(cands, func(a, b candidate) int { return b.ref.Start.Compare(a.ref.Start) })
	default:
		rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	}
	if req.Mode == Newest || req.Mode == Random {
		cands = cands[:min(len(cands), n)]
		out := make([]SessionRef, len(cands))
		for i := range cands {
			out[i] = cands[i].ref
		}
		return out
	}
	return coverage(cands[:min(len(cands), maxCoverageCandidates)], uncovered, n, c.opts.MaxSessionWeight)
}

// uncoveredKinds returns, by kind, the name of each kind that counts for
// Coverage and is not named in covered, and "" for the others. Names are
// copied under the lock: a slot of the kind table may be given to a new
// kind once no cached session holds it. It must be called with c.mu held.
func (c *Cache) uncoveredKinds(covered []string) []string {
	t := &c.kinds
	out := make([]string, len(t.names))
	for k := 1; k < len(t.names); k++ { // kind 0 is other
		if int(t.holders[k]) >= c.opts.MinKindSessions {
			out[k] = t.names[k]
		}
	}
	for _, name := range covered {
		if k, ok := t.lookup(name); ok {
			out[k] = ""
		}
	}
	return out
}

// coverage is a randomized greedy set cover: each round takes, at random,
// one of the candidates adding at least three quarters as many uncovered
// kinds as the best one, so that warmers asking at once do not all get the
// same few sessions while the kinds they are served stay nearly as many.
// uncovered names the kinds that count and are not covered yet ("" for the
// others); a candidate's score counts at most maxWeight of them.
func coverage(cands []candidate, uncovered []string, n, maxWeight int) []SessionRef {
	out := make([]SessionRef, 0, min(n, len(cands)))
	taken := make([]bool, len(cands))
	gains := make([]int, len(cands))
	for len(out) < n {
		bestGain := 0
		for i := range cands {
			if taken[i] {
				continue
			}
			gain := 0
			for _, k := range cands[i].kinds {
				if uncovered[k] != "" {
					if gain++; gain == maxWeight {
						break
					}
				}
			}
			gains[i] = gain
			bestGain = max(bestGain, gain)
		}
		if bestGain == 0 {
			break
		}
		best, seen := -1, 0
		for i := range cands {
			if !taken[i] && gains[i] >= bestGain-bestGain/4 {
				seen++
				if rand.IntN(seen) == 0 { // reservoir sampling of one
					best = i
				}
			}
		}
		taken[best] = true
		ref := cands[best].ref
		for _, k := range cands[best].kinds {
			if uncovered[k] != "" {
				ref.NewKinds = append(ref.NewKinds, uncovered[k])
				uncovered[k] = ""
			}
		}
		slices.Sort(ref.NewKinds)
		out = append(out, ref)
	}
	// Nothing adds a kind: fill up in shuffled order.
	for i := range cands {
		if len(out) >= n {
			break
		}
		if !taken[i] {
			out = append(out, cands[i].ref)
		}
	}
	return out
}

// Status describes the cache as a whole.
type Status struct {
	// Window and MaxBytes are the options in force.
	Window   time.Duration `json:"window_ns"`
	MaxBytes int64         `json:"max_bytes"`
	// Sessions counts cached sessions; Live those neither complete nor
	// truncated, Truncated those cut at a gap.
	Sessions  int `json:"sessions"`
	Live      int `json:"live"`
	Truncated int `json:"truncated"`
	// Bytes is the memory held for cached sessions, PayloadBytes the size
	// of their messages.
	Bytes        int64 `json:"bytes"`
	PayloadBytes int64 `json:"payload_bytes"`
	// Oldest and Newest are the earliest and latest connect times cached.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	// Routes counts cached sessions by route path (without the query).
	Routes map[string]int `json:"routes"`
	// Kinds counts the client messages of cached sessions by kind, rare
	// kinds and "other" included.
	Kinds map[string]int64 `json:"kinds"`
	// Partitions maps each partition read to the stream time of the last
	// record read from it: now minus that is the lag of an active one.
	Partitions map[string]time.Time `json:"partitions"`
	// Orphans counts sessions whose events are held while their open event
	// is awaited, OrphanBytes their memory.
	Orphans     int   `json:"orphans"`
	OrphanBytes int64 `json:"orphan_bytes"`
	// Followers counts running Follow calls.
	Followers int `json:"followers"`
}

// Status returns the cache's state.
func (c *Cache) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Window:       c.opts.Window,
		MaxBytes:     c.opts.MaxBytes,
		Sessions:     len(c.sessions),
		Bytes:        c.bytes,
		PayloadBytes: c.payload,
		Routes:       make(map[string]int, len(c.routes)),
		Kinds:        make(map[string]int64),
		Partitions:   make(map[string]time.Time, len(c.parts)),
		Orphans:      len(c.orphans),
		OrphanBytes:  c.orphanB,
		Followers:    int(c.followers.Load()),
	}
	for _, e := range c.byStart {
		switch {
		case e.truncated:
			st.Truncated++
		case !e.complete:
			st.Live++
		}
		if st.Newest.IsZero() || e.start.After(st.Newest) {
			st.Newest = e.start
		}
	}
	if len(c.byStart) > 0 {
		st.Oldest = c.byStart[0].start
	}
	for r, n := range c.routes {
		st.Routes[r] = n
	}
	for k, n := range c.kinds.counts {
		if n > 0 {
			st.Kinds[c.kinds.names[k]] = n
		}
	}
	for p, t := range c.parts {
		st.Partitions[p] = t
	}
	return st
}

// Follow calls fn with the session's events from sequence number fromSeq
// on, batch by batch, as they are appended, until the session is complete
// or truncated and every event was passed (it returns nil), the session is
// evicted (ErrEvicted), ctx is done (ctx.Err()) or fn returns an error
// (that error). ErrNotFound means the session is not cached. fn runs
// without any lock held and may be slow: ingestion never waits for it; a
// slow follower gets what arrived meanwhile in fewer, later calls. The data
// passed to fn is shared and must not be changed.
func (c *Cache) Follow(ctx context.Context, id session.ID, fromSeq uint64, fn func(Batch) error) error {
	if c.followers.Add(1) > int64(c.opts.MaxFollowers) {
		c.followers.Add(-1)
		return ErrTooManyFollowers
	}
	c.m.subscribers.Inc()
	defer func() {
		c.followers.Add(-1)
		c.m.subscribers.Dec()
	}()
	c.mu.Lock()
	e := c.sessions[id]
	c.mu.Unlock()
	if e == nil {
		return ErrNotFound
	}
	next := fromSeq
	for {
		c.mu.Lock()
		if e.evicted {
			c.mu.Unlock()
			return ErrEvicted
		}
		if e.w.Events() > 0 && e.next > next {
			c.seal(e)
			c.account(e)
		}
		c.moveFront(e)
		i, _ := slices.BinarySearchFunc(e.chunks, next, func(ch chunk, seq uint64) int { return cmp.Compare(ch.last, seq) })
		todo := e.chunks[i:len(e.chunks):len(e.chunks)]
		done := e.done()
		var wait chan struct{}
		if !done {
			if e.changed == nil {
				e.changed = make(chan struct{})
			}
			wait = e.changed
		}
		c.mu.Unlock()

		for _, ch := range todo {
			b := Batch{Data: ch.data, First: ch.first, Last: ch.last}
			if ch.first < next {
				var err error
				if b, err = trimBatch(ch, next); err != nil {
					return err
				}
			}
			if err := fn(b); err != nil {
				return err
			}
			next = ch.last + 1
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

// trimBatch re-encodes ch without its events before from.
func trimBatch(ch chunk, from uint64) (Batch, error) {
	evs, err := session.DecodeBatch(ch.data, nil)
	if err != nil {
		return Batch{}, fmt.Errorf("trim batch: %w", err)
	}
	i := 0
	for i < len(evs) && evs[i].Seq < from {
		i++
	}
	data, err := session.AppendBatch(nil, evs[i:])
	if err != nil {
		return Batch{}, fmt.Errorf("trim batch: %w", err)
	}
	return Batch{Data: data, First: evs[i].Seq, Last: ch.last}, nil
}
