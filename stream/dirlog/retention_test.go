package dirlog

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/stream"
)

// TestCorruptSealedSegment flips a byte inside a record of a sealed
// segment: the reader never returns that record, counts it, and goes on at
// the next segment.
func TestCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 1, SegmentBytes: 4 << 10})
	putSeq(t, p, map[string]int{}, 100, 1, 200)
	p.Close(context.Background())

	pdir := partitionDir(dir, 0)
	bases, _ := listSegments(pdir)
	if len(bases) < 3 {
		t.Fatalf("%d segments", len(bases))
	}
	seg := filepath.Join(pdir, segName(bases[1]))
	_, _, inSeg := segEnd(t, seg)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[segHeaderLen+250] ^= 0x20 // in the data of the segment's second record
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}

	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	recs := readAll(t, c)
	if want := 100 - (inSeg - 1); len(recs) != want {
		t.Fatalf("read %d records, want %d", len(recs), want)
	}
	// Every record read is one that was put, in order; the gap is the
	// rest of the corrupt segment.
	var seqs []int
	for _, r := range recs {
		key, seq, ok := parsePayload(r.Data)
		if !ok || key != "key0" || string(r.Data) != string(payload(key, seq, len(r.Data))) {
			t.Fatalf("garbage record at %s", r.Position)
		}
		seqs = append(seqs, seq)
	}
	firstInSeg := int((bases[1] - bases[0]) / int64(recHeaderLen+4+200))
	for i, s := range seqs {
		want := i
		if i > firstInSeg {
			want = i + inSeg - 1
		}
		if s != want {
			t.Fatalf("record %d has seq %d, want %d", i, s, want)
		}
	}
	if got := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); got != 1 {
		t.Fatalf("corrupt records counted: %d, want 1", got)
	}
}

func totalSegmentBytes(t *testing.T, dir string, parts int) int64 {
	t.Helper()
	var n int64
	for i := range parts {
		bases, err := listSegments(partitionDir(dir, i))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bases {
			fi, err := os.Stat(filepath.Join(partitionDir(dir, i), segName(b)))
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

func TestRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, segBytes = 40 << 10, 4 << 10
	p := openProducer(t, dir, &ProducerOptions{Partitions: 2, SegmentBytes: segBytes, MaxBytes: maxBytes, MaxAge: -1})
	seq := map[string]int{}
	for range 20 {
		putSeq(t, p, seq, 50, 4, 300)
		p.Flush(context.Background())
		// Retention runs on roll, so the log exceeds MaxBytes by at most
		// what the active segments gained since.
		if n := totalSegmentBytes(t, dir, 2); n > maxBytes+2*segBytes {
			t.Fatalf("log holds %d bytes, MaxBytes %d", n, maxBytes)
		}
	}
	if got := counter(p.Metrics(), `preheat_dirlog_segments_deleted_total{reason="size"}`); got == 0 {
		t.Fatal("no segments deleted for size")
	}
	// What remains of each key is a contiguous run ending at the last.
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	first := map[string]int{}
	next := map[string]int{}
	for _, r := range readAll(t, c) {
		key, s, _ := parsePayload(r.Data)
		if _, ok := first[key]; !ok {
			first[key], next[key] = s, s
		}
		if s != next[key] {
			t.Fatalf("key %q: seq %d after %d", key, s, next[key]-1)
		}
		next[key]++
	}
	for k, v := range seq {
		if next[k] != v || first[k] == 0 {
			t.Fatalf("key %q: read %d..%d of 0..%d", k, first[k], next[k]-1, v-1)
		}
	}
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	o := &ProducerOptions{Partitions: 1, SegmentBytes: 4 << 10, MaxAge: time.Hour, MaxBytes: -1, Now: clk.Now}
	p := openProducer(t, dir, o)
	seq := map[string]int{}
	putSeq(t, p, seq, 100, 1, 200) // about five segments
	p.Flush(context.Background())
	pdir := partitionDir(dir, 0)
	old, _ := listSegments(pdir)

	// A consumer partway into the first segment, and a checkpoint in the
	// second.
	reading := openConsumer(t, dir, stream.Start{}, nil)
	if _, err := reading.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkpoint := map[string]string{"0": strconv.FormatInt(old[1]+5*(recHeaderLen+4+200), 10)}

	clk.Add(2 * time.Hour)
	putSeq(t, p, seq, 30, 1, 200) // rolls, so retention runs
	p.Flush(context.Background())
	now, _ := listSegments(pdir)
	if now[0] <= old[len(old)-2] {
		t.Fatalf("segments before %d remain: %v", old[len(old)-1], now)
	}
	if got := counter(p.Metrics(), `preheat_dirlog_segments_deleted_total{reason="age"}`); got != len(old)-1 {
		t.Fatalf("deleted for age %d, want %d", got, len(old)-1)
	}

	// The checkpoint is in a deleted segment: reading resumes at the
	// oldest remaining one and the skip is counted.
	c := openConsumer(t, dir, stream.Start{After: checkpoint, StopAtEnd: true}, nil)
	recs := readAll(t, c)
	if len(recs) == 0 {
		t.Fatal("nothing read after the checkpoint")
	}
	if _, s, _ := parsePayload(recs[len(recs)-1].Data); s != 129 {
		t.Fatalf("last seq %d", s)
	}
	if got := counter(c.Metrics(), "preheat_dirlog_reader_retention_skips_total"); got != 1 {
		t.Fatalf("retention skips %d, want 1", got)
	}

	// The consumer that had the first segment open reads it to its end,
	// then skips to the oldest remaining segment and counts it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last := 0
	for last != 129 {
		r, err := reading.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, last, _ = parsePayload(r.Data)
	}
	if got := counter(reading.Metrics(), "preheat_dirlog_reader_retention_skips_total"); got != 1 {
		t.Fatalf("retention skips of the open reader %d, want 1", got)
	}
}

// TestFlushInterval checks in a bubble that a buffered record reaches its
// segment within FlushInterval with no Flush call.
func TestFlushInterval(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		p, err := NewProducer(dir, &ProducerOptions{Partitions: 1, FlushInterval: time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		if err := p.Put(context.Background(), "k", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		seg := filepath.Join(partitionDir(dir, 0), segName(0))
		size := func() int64 {
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		if n := size(); n != segHeaderLen {
			t.Fatalf("segment has %d bytes before the interval", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := size(); n != segHeaderLen+recHeaderLen+1+5 {
			t.Fatalf("segment has %d bytes after the interval", n)
		}
	})
}

// TestSealedSegmentCutShort truncates a sealed segment at a record
// boundary: the reader counts the gap as corruption and goes on.
func TestSealedSegmentCutShort(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 1, SegmentBytes: 4 << 10})
	putSeq(t, p, map[string]int{}, 100, 1, 200)
	p.Close(context.Background())
	pdir := partitionDir(dir, 0)
	bases, _ := listSegments(pdir)
	seg := filepath.Join(pdir, segName(bases[1]))
	_, _, inSeg := segEnd(t, seg)
	if err := os.Truncate(seg, segHeaderLen+2*(recHeaderLen+4+200)); err != nil {
		t.Fatal(err)
	}
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	if recs := readAll(t, c); len(recs) != 100-(inSeg-2) {
		t.Fatalf("read %d records, want %d", len(recs), 100-(inSeg-2))
	}
	if got := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); got != 1 {
		t.Fatalf("corrupt records counted: %d, want 1", got)
	}
	if got := counter(c.Metrics(), "preheat_dirlog_reader_retention_skips_total"); got != 0 {
		t.Fatalf("retention skips counted: %d", got)
	}
}
