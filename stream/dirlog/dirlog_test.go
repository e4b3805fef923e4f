package dirlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/stream"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// quiet is a logger for tests that provoke warnings on purpose.
var quiet = slog.New(slog.DiscardHandler)

// clock is a settable Now for producers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openProducer(t testing.TB, dir string, o *ProducerOptions) *Producer {
	t.Helper()
	if o == nil {
		o = &ProducerOptions{}
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	p, err := NewProducer(dir, o)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func openConsumer(t testing.TB, dir string, start stream.Start, o *ConsumerOptions) *Consumer {
	t.Helper()
	if o == nil {
		o = &ConsumerOptions{}
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.PollInterval == 0 {
		o.PollInterval = 2 * time.Millisecond
	}
	c, err := NewConsumer(dir, start, o)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads until io.EOF; the consumer must have StopAtEnd.
func readAll(t testing.TB, c *Consumer) []stream.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []stream.Record
	for {
		r, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(out), err)
		}
		out = append(out, r)
	}
}

// payload is the deterministic data of record seq of key, n bytes or more.
func payload(key string, seq, n int) []byte {
	b := fmt.Appendf(nil, "%s/%d/", key, seq)
	for i := 0; len(b) < n; i++ {
		b = append(b, byte(seq*31+i*7))
	}
	return b
}

// checker verifies records against what payload makes: every record is
// one that was put, in the partition its key hashes to, and each key's
// records come in order without gaps.
type checker struct {
	t     testing.TB
	parts int
	next  map[string]int
}

func newChecker(t testing.TB, parts int) *checker {
	return &checker{t: t, parts: parts, next: map[string]int{}}
}

// parsePayload returns the key and seq a payload carries.
func parsePayload(data []byte) (string, int, bool) {
	f := bytes.SplitN(data, []byte("/"), 3)
	if len(f) < 3 {
		return "", 0, false
	}
	var seq int
	if _, err := fmt.Sscan(string(f[1]), &seq); err != nil {
		return "", 0, false
	}
	return string(f[0]), seq, true
}

func (c *checker) check(r stream.Record) {
	c.t.Helper()
	key, seq, ok := parsePayload(r.Data)
	if !ok {
		c.t.Fatalf("record at %s/%s: bad payload %q", r.Partition, r.Position, r.Data[:min(len(r.Data), 40)])
	}
	if key != r.Key {
		c.t.Fatalf("record at %s/%s: key %q, payload says %q", r.Partition, r.Position, r.Key, key)
	}
	if want := payload(key, seq, len(r.Data)); !bytes.Equal(r.Data, want) {
		c.t.Fatalf("record %s/%d at %s/%s: data differs from what was put", key, seq, r.Partition, r.Position)
	}
	if seq != c.next[key] {
		c.t.Fatalf("key %q: got seq %d, want %d", key, seq, c.next[key])
	}
	if want := partitionName(partitionOf(key, c.parts)); r.Partition != want {
		c.t.Fatalf("key %q read from partition %s, want %s", key, r.Partition, want)
	}
	c.next[key] = seq + 1
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{SegmentBytes: 64 << 10, MaxBufferedBytes: 32 << 10})
	rng := rand.New(rand.NewPCG(1, 2))
	const writers, perWriter, keys = 4, 500, 25
	sizes := make([][]int, writers)
	for w := range sizes {
		for range perWriter {
			n := rng.IntN(3000)
			if rng.IntN(100) == 0 {
				n = 100<<10 + rng.IntN(100<<10) // a few records beyond the buffer
			}
			sizes[w] = append(sizes[w], n)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			seq := map[string]int{}
			for i, n := range sizes[w] {
				key := fmt.Sprintf("w%d-session-%d", w, i%keys)
				if err := p.Put(context.Background(), key, payload(key, seq[key], n)); err != nil {
					errs <- err
					return
				}
				seq[key]++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	recs := readAll(t, c)
	if len(recs) != writers*perWriter {
		t.Fatalf("read %d records, want %d", len(recs), writers*perWriter)
	}
	ck := newChecker(t, 16)
	parts := map[string]bool{}
	for _, r := range recs {
		ck.check(r)
		parts[r.Partition] = true
	}
	for key, n := range ck.next {
		if n != perWriter/keys {
			t.Errorf("key %q: %d records, want %d", key, n, perWriter/keys)
		}
	}
	if len(parts) != 16 {
		t.Errorf("records in %d partitions, want 16", len(parts))
	}
	if got := counter(c.Metrics(), "preheat_dirlog_records_read_total"); got != writers*perWriter {
		t.Errorf("records read metric %d", got)
	}
	if got := counter(p.Metrics(), "preheat_dirlog_records_written_total"); got != writers*perWriter {
		t.Errorf("records written metric %d", got)
	}
}

func counter(s *metrics.Set, name string) int {
	var b bytes.Buffer
	s.WritePrometheus(&b)
	for line := range bytes.Lines(b.Bytes()) {
		var v int
		if rest, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			fmt.Sscan(string(rest), &v)
			return v
		}
	}
	return 0
}

// putSeq puts n records under keys key0..key(k-1) continuing seq.
func putSeq(t testing.TB, p *Producer, seq map[string]int, n, k, size int) {
	t.Helper()
	for i := range n {
		key := fmt.Sprintf("key%d", i%k)
		if err := p.Put(context.Background(), key, payload(key, seq[key], size)); err != nil {
			t.Fatal(err)
		}
		seq[key]++
	}
}

func TestResumeFromPositions(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 4, SegmentBytes: 4 << 10})
	seq := map[string]int{}
	putSeq(t, p, seq, 600, 10, 200)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := newChecker(t, 4)
	var positions map[string]string
	read := 0
	for range 3 { // read a third, close, resume, three times
		c := openConsumer(t, dir, stream.Start{After: positions, StopAtEnd: true}, nil)
		for range 200 {
			r, err := c.Next(context.Background())
			if err != nil {
				t.Fatalf("Next after %d: %v", read, err)
			}
			ck.check(r)
			read++
		}
		positions = c.Positions()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if _, err := c.Next(context.Background()); !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	}
	c := openConsumer(t, dir, stream.Start{After: positions, StopAtEnd: true}, nil)
	if recs := readAll(t, c); len(recs) != 0 {
		t.Fatalf("read %d records past the end", len(recs))
	}
	// New records after the checkpoint are read, and only they.
	putSeq(t, p, seq, 40, 10, 200)
	p.Flush(context.Background())
	c = openConsumer(t, dir, stream.Start{After: positions, StopAtEnd: true}, nil)
	recs := readAll(t, c)
	if len(recs) != 40 {
		t.Fatalf("read %d new records, want 40", len(recs))
	}
	for _, r := range recs {
		ck.check(r)
	}
}

func TestStartAfterBadPosition(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 2})
	p.Close(context.Background())
	f := func(after map[string]string) {
		t.Helper()
		c, err := NewConsumer(dir, stream.Start{After: after}, nil)
		if err == nil {
			c.Close()
			t.Fatalf("NewConsumer with After %v: no error", after)
		}
	}
	f(map[string]string{"2": "0"})
	f(map[string]string{"x": "0"})
	f(map[string]string{"01": "0"})
	f(map[string]string{"1": "-3"})
	f(map[string]string{"1": "abc"})
}

func TestStartTime(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	t0 := clk.Now()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 3, SegmentBytes: 4 << 10, Now: clk.Now})
	seq := map[string]int{}
	for range 300 {
		putSeq(t, p, seq, 1, 1, 300) // one key: times and seqs agree
		clk.Add(time.Second)
	}
	p.Flush(context.Background())
	f := func(start time.Time, want int) {
		t.Helper()
		c := openConsumer(t, dir, stream.Start{Time: start, StopAtEnd: true}, nil)
		recs := readAll(t, c)
		if len(recs) != want {
			t.Fatalf("start %v: read %d records, want %d", start.Sub(t0), len(recs), want)
		}
		for i, r := range recs {
			if r.Time.Before(start) {
				t.Fatalf("start %v: record appended at %v", start.Sub(t0), r.Time.Sub(t0))
			}
			if wantT := t0.Add(time.Duration(300-want+i) * time.Second); !r.Time.Equal(wantT) {
				t.Fatalf("record %d appended at %v, want %v", i, r.Time.Sub(t0), wantT.Sub(t0))
			}
		}
	}
	f(time.Time{}, 300)
	f(t0.Add(-time.Hour), 300)
	f(t0, 300)
	f(t0.Add(150*time.Second), 150)
	f(t0.Add(150*time.Second-1), 150)
	f(t0.Add(150*time.Second+1), 149)
	f(t0.Add(299*time.Second), 1)
	f(t0.Add(time.Hour), 0)
}

func TestLatest(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 4, SegmentBytes: 4 << 10, FlushInterval: time.Millisecond})
	seq := map[string]int{}
	putSeq(t, p, seq, 100, 8, 100)
	p.Flush(context.Background())
	c := openConsumer(t, dir, stream.Start{Latest: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The consumer follows new records, including ones written after it
	// has found a partition empty.
	putSeq(t, p, seq, 50, 8, 100)
	got := 0
	for got < 50 {
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d: %v", got, err)
		}
		key, s, _ := parsePayload(r.Data)
		if s < 100/8 {
			t.Fatalf("Latest read old record %s/%d", key, s)
		}
		got++
	}
	c2 := openConsumer(t, dir, stream.Start{Latest: true, StopAtEnd: true}, nil)
	if recs := readAll(t, c2); len(recs) != 0 {
		t.Fatalf("Latest with StopAtEnd read %d records", len(recs))
	}
}

func TestStopAtEndEmptyLog(t *testing.T) {
	dir := t.TempDir()
	openProducer(t, dir, nil)
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	for range 2 {
		if _, err := c.Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Fatalf("Next on an empty log: %v, want io.EOF", err)
		}
	}
}

func TestNextHonoursContext(t *testing.T) {
	dir := t.TempDir()
	openProducer(t, dir, nil)
	c := openConsumer(t, dir, stream.Start{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next: %v", err)
	}
}

func TestNoLog(t *testing.T) {
	if _, err := NewConsumer(filepath.Join(t.TempDir(), "none"), stream.Start{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewConsumer on a missing log: %v", err)
	}
}

func TestProducerErrors(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 4})
	ctx := context.Background()
	if err := p.Put(ctx, "k", make([]byte, stream.MaxRecordBytes+1)); !errors.Is(err, stream.ErrTooLarge) {
		t.Errorf("Put too large: %v", err)
	}
	if err := p.Put(ctx, "k", make([]byte, stream.MaxRecordBytes)); err != nil {
		t.Errorf("Put of MaxRecordBytes: %v", err)
	}
	if err := p.Put(ctx, string(make([]byte, MaxKeyBytes+1)), nil); err == nil {
		t.Error("Put with a long key: no error")
	}

	// A second writer is refused while the first holds the lock.
	if _, err := NewProducer(dir, &ProducerOptions{Logger: quiet}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second NewProducer: %v, want ErrLocked", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := p.Put(ctx, "k", nil); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if err := p.Flush(ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}

	// The lock is free again; the partition count must agree.
	if _, err := NewProducer(dir, &ProducerOptions{Partitions: 8, Logger: quiet}); err == nil {
		t.Fatal("NewProducer with a different partition count: no error")
	}
	p2 := openProducer(t, dir, nil)
	if len(p2.parts) != 4 {
		t.Fatalf("reopened with %d partitions", len(p2.parts))
	}
	p2.Close(ctx)
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	if recs := readAll(t, c); len(recs) != 1 || len(recs[0].Data) != stream.MaxRecordBytes {
		t.Fatalf("read %d records", len(recs))
	}

	for _, o := range []ProducerOptions{{Partitions: -1}, {Partitions: 5000}, {SegmentBytes: 100}, {FlushInterval: -1}} {
		o.Logger = quiet
		if _, err := NewProducer(t.TempDir(), &o); err == nil {
			t.Errorf("NewProducer(%+v): no error", o)
		}
	}
}

func TestCloseWithDoneContextDrops(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{FlushInterval: time.Hour})
	putSeq(t, p, map[string]int{}, 5, 5, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
	if got := counter(p.Metrics(), "preheat_dirlog_records_dropped_total"); got != 5 {
		t.Fatalf("dropped %d, want 5", got)
	}
}

// TestFollow reads while a producer in this process writes and rolls small
// segments, so the reader often meets records half written and segments
// just created.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 4, SegmentBytes: 4 << 10, MaxBufferedBytes: 8 << 10, FlushInterval: time.Millisecond})
	c := openConsumer(t, dir, stream.Start{}, &ConsumerOptions{PollInterval: time.Millisecond})
	const total = 4000
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		seq := map[string]int{}
		for i := range total {
			key := fmt.Sprintf("key%d", i%13)
			if err := p.Put(context.Background(), key, payload(key, seq[key], 50+i%700)); err != nil {
				t.Error(err)
				return
			}
			seq[key]++
		}
	})
	// A bound on a hang, not on speed: under -race on a loaded machine
	// this takes 20 s and more.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ck := newChecker(t, 4)
	for i := range total {
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d records: %v", i, err)
		}
		ck.check(r)
	}
	if got := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); got != 0 {
		t.Fatalf("corrupt records counted: %d", got)
	}
}

// TestSync runs the fsync paths: flushes, rolls and Close with Sync.
func TestSync(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 2, SegmentBytes: 4 << 10, Sync: true})
	seq := map[string]int{}
	putSeq(t, p, seq, 60, 3, 300)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	putSeq(t, p, seq, 5, 3, 300)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	ck := newChecker(t, 2)
	recs := readAll(t, c)
	for _, r := range recs {
		ck.check(r)
	}
	if len(recs) != 65 {
		t.Fatalf("read %d records, want 65", len(recs))
	}
}
