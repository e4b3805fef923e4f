package loadtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// maxCorpusLine bounds one line of a corpus file, in bytes, its newline
// included.
const maxCorpusLine = 64 << 20

// ReadCorpus reads a corpus file: JSON lines of session.JSON events, as
// `preheat inspect --json` and a replay cache's ?format=jsonl write them.
// Sessions may be interleaved; each is put in sequence order, duplicates
// dropped. Blank lines are skipped. A session without its open event is
// left out and counted in Corpus.Dropped. A line that is not an event, or
// the error object a cache ends a failed stream with, is an error naming
// the line, as is a line longer than 64 MiB. The recorded rate is the
// corpus's (see ArrivalRate).
//
// It reads a line at a time and keeps of each event only what a load
// test plans from: the client's messages, and the server's as their
// skeletons (protocol.ServerSkeleton), which every protocol profile
// classifies as it classifies the message. The corpus in memory is then
// about the size of the client's side of the file, not of all of it.
func ReadCorpus(r io.Reader) (*Corpus, error) {
	return readCorpus(r, maxCorpusLine)
}

// readCorpus is ReadCorpus with lines of at most maxLine bytes.
func readCorpus(r io.Reader, maxLine int) (*Corpus, error) {
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLine}
	var d lineDecoder
	c := newCorpusBuilder()
	for line := 1; ; line++ {
		b, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		ev, err := d.decode(b)
		if err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		c.add(ev)
	}
	return c.corpus(), nil
}

// lineReader reads lines of at most max bytes.
type lineReader struct {
	br   *bufio.Reader
	max  int
	long []byte // a line longer than br's buffer, put together
}

// next returns the next line without its newline, valid until the next
// call; io.EOF after the last.
func (r *lineReader) next() ([]byte, error) {
	if cap(r.long) > 1<<20 {
		r.long = nil // do not hold on to a long line's memory
	}
	b, err := r.br.ReadSlice('\n')
	long := errors.Is(err, bufio.ErrBufferFull)
	if long {
		r.long = append(r.long[:0], b...)
		for long {
			b, err = r.br.ReadSlice('\n')
			long = errors.Is(err, bufio.ErrBufferFull)
			if len(r.long)+len(b) > r.max {
				return nil, fmt.Errorf("line longer than %d bytes", r.max)
			}
			r.long = append(r.long, b...)
		}
		b = r.long
	}
	switch {
	case len(b) > r.max:
		return nil, fmt.Errorf("line longer than %d bytes", r.max)
	case err == nil:
		return b[:len(b)-1], nil
	case errors.Is(err, io.EOF) && len(b) > 0:
		return b, nil // the last line, without a newline
	}
	return nil, err
}

// corpusBuilder puts a corpus together event by event.
type corpusBuilder struct {
	bySession map[session.ID]*pending
	order     []*pending
	keep      payloadKeeper
}

// pending is a session's events so far.
type pending struct {
	evs []session.Event
	// clipped is set once evs was copied to a slice of its length, at the
	// session's first close event.
	clipped bool
}

func newCorpusBuilder() *corpusBuilder {
	return &corpusBuilder{bySession: map[session.ID]*pending{}}
}

// add adds an event; its payload may alias memory the caller reuses.
func (c *corpusBuilder) add(ev session.Event) {
	c.keep.event(&ev)
	p := c.bySession[ev.Session]
	if p == nil {
		p = &pending{}
		c.bySession[ev.Session] = p
		c.order = append(c.order, p)
	}
	p.evs = append(p.evs, ev)
	if ev.Kind == session.KindClose && !p.clipped {
		// The session is most likely whole: keep it in a slice of its
		// size, not in one grown to twice as much. Once only, so that a
		// corpus of repeated close events costs no more than others.
		p.evs, p.clipped = slices.Clone(p.evs), true
	}
}

// corpus returns the sessions in the order their first events came, each
// in sequence order without duplicates, and drops those without their
// open event.
func (c *corpusBuilder) corpus() *Corpus {
	bySeq := func(a, b session.Event) int { return cmp.Compare(a.Seq, b.Seq) }
	out := &Corpus{}
	for _, p := range c.order {
		evs := p.evs
		if !slices.IsSortedFunc(evs, bySeq) {
			slices.SortStableFunc(evs, bySeq)
		}
		evs = slices.CompactFunc(evs, func(a, b session.Event) bool { return a.Seq == b.Seq })
		if evs[0].Kind != session.KindOpen || evs[0].Open == nil {
			out.Dropped++
			continue
		}
		out.Sessions = append(out.Sessions, evs)
	}
	out.Rate = ArrivalRate(out.Sessions)
	return out
}

// payloadKeeper keeps the payloads of a corpus's frames: each client
// message copied, each server message as its skeleton, packed into blocks
// of their own (the client's outlive planning, in the plans).
type payloadKeeper struct {
	client, server block
	skel           []byte
}

// event makes ev's payload one the keeper holds.
func (k *payloadKeeper) event(ev *session.Event) {
	switch {
	case ev.Kind != session.KindFrame || ev.Payload == nil:
	case ev.Direction == session.ServerToClient:
		k.skel = protocol.ServerSkeleton(k.skel[:0], ev.Payload)
		ev.Payload = k.server.copy(k.skel)
	default:
		ev.Payload = k.client.copy(ev.Payload)
	}
}

// session returns a copy of evs of its length whose payloads the keeper
// holds: none of evs's memory is kept.
func (k *payloadKeeper) session(evs []session.Event) []session.Event {
	out := slices.Clone(evs)
	for i := range out {
		k.event(&out[i])
	}
	return out
}

// blockSize is the size of a block, in bytes; a payload of more than an
// eighth of it is given memory of its own.
const blockSize = 64 << 10

// block packs payloads into blocks of blockSize, so that a corpus's
// hundreds of thousands of small messages are tens of allocations a
// megabyte.
type block struct{ b []byte }

// copy returns a copy of p, not nil, that cannot be appended to in place.
func (k *block) copy(p []byte) []byte {
	switch {
	case len(p) == 0:
		return []byte{}
	case len(p) > blockSize/8:
		return bytes.Clone(p)
	case cap(k.b)-len(k.b) < len(p):
		k.b = make([]byte, 0, blockSize)
	}
	n := len(k.b)
	k.b = append(k.b, p...)
	return k.b[n:len(k.b):len(k.b)]
}

// ArrivalRate returns the rate at which sessions arrived when recorded, in
// sessions per second: one less than their number over the span of their
// start times. It is 0 with fewer than two sessions or no span.
func ArrivalRate(sessions [][]session.Event) float64 {
	var lo, hi time.Time
	n := 0
	for _, evs := range sessions {
		if len(evs) == 0 || evs[0].Open == nil || evs[0].Open.Start.IsZero() {
			continue
		}
		s := evs[0].Open.Start
		if n == 0 || s.Before(lo) {
			lo = s
		}
		if n == 0 || s.After(hi) {
			hi = s
		}
		n++
	}
	if n < 2 || !hi.After(lo) {
		return 0
	}
	return float64(n-1) / hi.Sub(lo).Seconds()
}

// statusRate is the arrival rate of the sessions a cache holds.
func statusRate(st replaycache.Status) float64 {
	if st.Sessions < 2 || !st.Newest.After(st.Oldest) {
		return 0
	}
	return float64(st.Sessions-1) / st.Newest.Sub(st.Oldest).Seconds()
}

// LoadCache reads up to req.Limit sessions from a replay cache (default
// 1,000), a session at a time, keeping of each what ReadCorpus keeps. The
// recorded rate is that of every session the cache holds, not only those
// read, so a sample still stands for the real load.
func LoadCache(ctx context.Context, client *replaycache.Client, req replaycache.SelectRequest) (*Corpus, error) {
	if req.Limit <= 0 {
		req.Limit = 1000
	}
	st, err := client.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("cache status: %w", err)
	}
	sr, err := client.Select(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("cache select: %w", err)
	}
	defer sr.Close()
	c := &Corpus{Rate: statusRate(st)}
	var keep payloadKeeper
	for {
		s, err := sr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cache select: %w", err)
		}
		if len(s.Events) == 0 || s.Events[0].Kind != session.KindOpen {
			c.Dropped++
			continue
		}
		c.Sessions = append(c.Sessions, keep.session(s.Events))
	}
	return c, nil
}

// StreamOptions configure LoadStream. The zero value is usable.
type StreamOptions struct {
	// Window keeps the sessions that connected this recently; open the
	// consumer at now minus Window. Default 15m. Negative: every session
	// the stream retains, however old (a directory log kept for a load
	// test); open the consumer at its oldest record (stream.Start's zero
	// Time).
	Window time.Duration
	// Request selects the sessions, as of a cache: mode, route, filters,
	// Limit (default 1,000).
	Request replaycache.SelectRequest
	// Cache configures the in-process replay cache that reassembles the
	// sessions; its Window is set from Window. Default nil: defaults.
	Cache *replaycache.Options
}

// wholeStream is the reassembling cache's window when StreamOptions.Window
// asks for everything the stream retains: a century, longer than any
// stream keeps a record, and short enough that the cache's deadlines (a
// connect time plus the window) stay within time.Duration.
const wholeStream = 100 * 365 * 24 * time.Hour

// LoadStream reassembles whole sessions from a stream with an in-process
// replay cache and selects up to Request.Limit of them, keeping of each
// what ReadCorpus keeps (the cache itself holds every session of the
// window, encoded, until LoadStream returns). cons must have
// been opened with stream.Start.StopAtEnd: LoadStream reads to the end of
// the stream, then selects. The caller keeps and closes cons. The recorded
// rate is that of every session in the window.
func LoadStream(ctx context.Context, cons stream.Consumer, opts *StreamOptions) (*Corpus, error) {
	var o StreamOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case o.Window == 0:
		o.Window = 15 * time.Minute
	case o.Window < 0:
		o.Window = wholeStream
	}
	if o.Request.Limit <= 0 {
		o.Request.Limit = 1000
	}
	var co replaycache.Options
	if o.Cache != nil {
		co = *o.Cache
	}
	co.Window = o.Window
	cache := replaycache.New(cons, &co)
	if err := cache.Run(ctx); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	c := &Corpus{Rate: statusRate(cache.Status())}
	var keep payloadKeeper
	var evs []session.Event
	for _, ref := range cache.Select(o.Request) {
		v, ok := cache.Get(ref.ID)
		if !ok {
			continue
		}
		evs = evs[:0]
		var err error
		for _, b := range v.Batches {
			if evs, err = session.DecodeBatch(b, evs); err != nil {
				return nil, fmt.Errorf("session %s: %w", ref.ID, err)
			}
		}
		if len(evs) == 0 || evs[0].Kind != session.KindOpen {
			c.Dropped++
			continue
		}
		c.Sessions = append(c.Sessions, keep.session(evs))
	}
	return c, nil
}
