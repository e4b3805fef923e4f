package kinesis

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// idleProducer returns a producer whose goroutines have stopped, so a test
// can drive collectLocked with its own clock.
func idleProducer(t *testing.T) *Producer {
	t.Helper()
	p, err := NewProducer(deadClient(t), "pacing", testProducerOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// drain sends every queued aggregate on virtual time, one collect at a
// time as run does, and returns how long it took.
func drain(p *Producer, start time.Time) (time.Duration, int) {
	now := start
	calls := 0
	for {
		queued := 0
		for _, l := range p.lanes {
			queued += len(l.queue)
		}
		if queued == 0 {
			return now.Sub(start), calls
		}
		batch, next := p.collectLocked(now)
		if len(batch) == 0 {
			now = next
			continue
		}
		calls++
		for _, a := range batch {
			l := p.lanes[a.lane]
			l.queue = l.queue[1:]
			l.inFlight = false
		}
	}
}

func queue(p *Producer, lane string, n, size int) {
	l := p.laneLocked(lane)
	for range n {
		l.queue = append(l.queue, &aggregate{lane: lane, data: make([]byte, size), key: "k"})
	}
}

// TestLanePacesBytes: 3 MiB to one shard take at least 2 s at 1 MiB/s with
// a 1 MiB burst.
func TestLanePacesBytes(t *testing.T) {
	p := idleProducer(t)
	queue(p, "shardId-000000000000", 30, 100<<10)
	took, _ := drain(p, time.Unix(1000, 0))
	if took < 1900*time.Millisecond || took > 2100*time.Millisecond {
		t.Errorf("3 MiB took %v of virtual time, want about 2 s", took)
	}
}

// TestLanePacesRecords: 2,500 records to one shard take at least 1.5 s at
// 1,000 records/s with a burst of 1,000.
func TestLanePacesRecords(t *testing.T) {
	p := idleProducer(t)
	queue(p, "shardId-000000000000", 2500, 10)
	took, _ := drain(p, time.Unix(1000, 0))
	if took < 1490*time.Millisecond || took > 1600*time.Millisecond {
		t.Errorf("2,500 records took %v of virtual time, want about 1.5 s", took)
	}
}

// TestBatchLimits: a PutRecords call carries at most 500 records and 5 MiB.
func TestBatchLimits(t *testing.T) {
	p := idleProducer(t)
	for i := range 600 {
		queue(p, fmt.Sprintf("shardId-%012d", i), 1, 10)
	}
	batch, _ := p.collectLocked(time.Unix(1000, 0))
	if len(batch) != 500 {
		t.Errorf("batch of %d records, want 500", len(batch))
	}

	p = idleProducer(t)
	p.opts.MaxInFlightBytes = 64 << 20
	for i := range 8 {
		queue(p, fmt.Sprintf("shardId-%012d", i), 1, 900<<10)
	}
	batch, _ = p.collectLocked(time.Unix(1000, 0))
	size := 0
	for _, a := range batch {
		size += len(a.data) + len(a.key)
	}
	if len(batch) != 5 || size > maxPutBytes {
		t.Errorf("batch of %d records, %d bytes; want 5 records within 5 MiB", len(batch), size)
	}
}

// TestInFlightBytesBounded: the records in PutRecords calls in flight
// carry at most MaxInFlightBytes, across calls, but one record always goes.
func TestInFlightBytesBounded(t *testing.T) {
	p := idleProducer(t)
	p.opts.MaxInFlightBytes = 2 << 20
	for i := range 8 {
		queue(p, fmt.Sprintf("shardId-%012d", i), 1, 900<<10)
	}
	now := time.Unix(1000, 0)
	batch, _ := p.collectLocked(now)
	if len(batch) != 2 {
		t.Fatalf("first call carries %d records of 900 KiB, want 2 within 2 MiB", len(batch))
	}
	p.inFlight, p.inFlightBytes = 1, batchBytes(batch)
	if again, _ := p.collectLocked(now); len(again) != 0 {
		t.Fatalf("a second call of %d records while 1.8 MiB are in flight", len(again))
	}
	p.inFlight, p.inFlightBytes = 0, 0
	p.opts.MaxInFlightBytes = 1
	if batch, _ := p.collectLocked(now); len(batch) != 1 {
		t.Fatalf("with nothing in flight and a 1-byte bound, a call of %d records, want 1", len(batch))
	}
}

// TestLaneOneInFlight: a lane sends its next aggregate only after the
// previous one finished, and a child shard's lane waits for its parent's.
func TestLaneOneInFlight(t *testing.T) {
	p := idleProducer(t)
	p.parents = map[string][]string{"child": {"parent"}}
	queue(p, "parent", 2, 10)
	queue(p, "child", 1, 10)
	now := time.Unix(1000, 0)
	batch, _ := p.collectLocked(now)
	if len(batch) != 1 || batch[0].lane != "parent" {
		t.Fatalf("first batch %v, want the parent's head only", batch)
	}
	if again, _ := p.collectLocked(now); len(again) != 0 {
		t.Fatalf("second batch while the parent is in flight: %d records", len(again))
	}
	l := p.lanes["parent"]
	l.queue, l.inFlight = l.queue[1:], false
	if batch, _ = p.collectLocked(now); len(batch) != 1 || batch[0].lane != "parent" {
		t.Fatalf("third batch %v, want the parent's second aggregate", batch)
	}
	l.queue, l.inFlight = l.queue[1:], false
	if batch, _ = p.collectLocked(now); len(batch) != 1 || batch[0].lane != "child" {
		t.Fatalf("fourth batch %v, want the child's", batch)
	}
}
