package loadtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// maxCorpusLine bounds one line of a corpus file, in bytes.
const maxCorpusLine = 64 << 20

// ReadCorpus reads a corpus file: JSON lines of session.JSON events, as
// `preheat inspect --json` and a replay cache's ?format=jsonl write them.
// Sessions may be interleaved; each is put in sequence order, duplicates
// dropped. Blank lines are skipped. A session without its open event is
// left out and counted in Corpus.Dropped. A line that is not an event, or
// the error object a cache ends a failed stream with, is an error naming
// the line. The recorded rate is the corpus's (see ArrivalRate).
func ReadCorpus(r io.Reader) (*Corpus, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	bySession := map[session.ID][]session.Event{}
	var order []session.ID
	for line := 1; ; line++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) && len(b) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var j session.JSON
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		if j.Kind == "" {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(b, &e) == nil && e.Error != "" {
				return nil, fmt.Errorf("read corpus line %d: the cache reported an error: %s", line, e.Error)
			}
		}
		ev, err := j.Event()
		if err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		if _, ok := bySession[ev.Session]; !ok {
			order = append(order, ev.Session)
		}
		bySession[ev.Session] = append(bySession[ev.Session], ev)
	}
	c := &Corpus{}
	for _, id := range order {
		evs := bySession[id]
		slices.SortStableFunc(evs, func(a, b session.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		evs = slices.CompactFunc(evs, func(a, b session.Event) bool { return a.Seq == b.Seq })
		if evs[0].Kind != session.KindOpen || evs[0].Open == nil {
			c.Dropped++
			continue
		}
		c.Sessions = append(c.Sessions, evs)
	}
	c.Rate = ArrivalRate(c.Sessions)
	return c, nil
}

// readLine returns the next line without its newline; io.EOF with the
// last line when it has none.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(out)+len(b) > maxCorpusLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxCorpusLine)
		}
		out = append(out, b...)
		switch {
		case err == nil:
			return out, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return out, err
		}
	}
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
// 1,000). The recorded rate is that of every session the cache holds, not
// only those read, so a sample still stands for the real load.
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
		c.Sessions = append(c.Sessions, s.Events)
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
// replay cache and selects up to Request.Limit of them. cons must have
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
	for _, ref := range cache.Select(o.Request) {
		v, ok := cache.Get(ref.ID)
		if !ok {
			continue
		}
		var evs []session.Event
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
		c.Sessions = append(c.Sessions, evs)
	}
	return c, nil
}
