package replaycache

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// TestDecodedSizeCountsTheEventStruct keeps decodedSize's per-event figure
// in step with the struct it stands for.
func TestDecodedSizeCountsTheEventStruct(t *testing.T) {
	if got := unsafe.Sizeof(session.Event{}); got > 112 {
		t.Fatalf("session.Event is %d bytes; decodedSize counts 112", got)
	}
}

// TestReadAheadIsBoundedByDecodedBytes: records that decode large (a few
// kilobytes of zstd each, megabytes once decoded) are read ahead of a
// stalled applier only up to decodeQueueBytes, not up to a count of
// records.
func TestReadAheadIsBoundedByDecodedBytes(t *testing.T) {
	dir := t.TempDir()
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	const payload = 4 << 20
	const records = 40
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for range records {
		id := session.NewID()
		evs := []session.Event{
			{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{Route: "/sync", Start: start}},
			{Session: id, Seq: 1, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text,
				Payload: sparse(rng, payload)},
		}
		data, err := session.AppendBatch(nil, evs)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Put(context.Background(), id.String(), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cons, err := dirlog.NewConsumer(dir, stream.Start{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	set := metrics.NewSet()
	c := New(cons, &Options{Metrics: set, MaxBytes: 1 << 30})
	c.mu.Lock() // the applier stalls on its first record
	locked := true
	defer func() {
		if locked {
			c.mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if locked {
			c.mu.Unlock()
			locked = false
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Wait for reading to stop moving.
	read := c.m.recordsRead.Get
	last, since := read(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < 500*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("reading never settled: %d records read", read())
		}
		time.Sleep(20 * time.Millisecond)
		if n := read(); n != last {
			last, since = n, time.Now()
		}
	}
	// One record being applied, decodeQueueBytes of them queued, one read
	// and waiting for room.
	limit := uint64(1 + decodeQueueBytes/payload + 1)
	if n := read(); n > limit {
		t.Errorf("%d records of %d MiB read ahead of a stalled applier, want at most %d", n, payload>>20, limit)
	}
	c.mu.Unlock()
	locked = false
	for deadline := time.Now().Add(30 * time.Second); read() < records; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records read once the applier went on", read(), records)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sparse returns n bytes that zstd compresses well, but not so well that
// the batch decoder takes them for a decompression bomb.
func sparse(rng *rand.Rand, n int) []byte {
	b := bytes.Repeat([]byte{'a'}, n)
	for i := 0; i < n; i += 16 {
		b[i] = byte('a' + rng.IntN(26))
	}
	return b
}
