package kinesis

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// TestRestartFromPositions reads part of a stream, stops in the middle of
// an aggregate, and resumes from Positions: together the two consumers read
// every record once.
func TestRestartFromPositions(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 2)
	cl := srv.Client(t)
	// Records leave only when full or flushed, so that every Kinesis
	// record before the lone one is an aggregate of many, however slowly
	// the puts run: with the usual 20 ms linger, a slow first put (under
	// -race, on a busy machine) went out alone, as a plain record, and
	// stopping after it was not stopping mid-aggregate.
	opts := testProducerOptions(t)
	opts.Linger = time.Minute
	p := newProducer(t, cl, name, opts)
	var s sent
	putMany(t, p, &s, 20, 25, 300, 1)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// One plain record: a lone user record is sent unaggregated.
	lone := []byte(sessionKey(999) + "/lone")
	s.add(sessionKey(999), lone)
	if err := p.Put(context.Background(), sessionKey(999), lone); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Whether a stop fell inside an aggregate depends on how the puts,
	// made concurrently, fell into Kinesis records (the last one of a
	// shard may hold a single user record, sent plain); some stop must.
	midAggregate := false
	for _, stopAfter := range []int{1, 37, 250, s.total() - 1, s.total()} {
		c1 := newConsumer(t, cl, name, stream.Start{StopAtEnd: true}, testConsumerOptions(t))
		ctx := ctxTimeout(t, 10*time.Second)
		var first []stream.Record
		for len(first) < stopAfter {
			r, err := c1.Next(ctx)
			if err != nil {
				t.Fatalf("first consumer, after %d records: %v", len(first), err)
			}
			first = append(first, r)
		}
		pos := c1.Positions()
		c1.Close()
		if _, err := c1.Next(ctx); err != stream.ErrClosed {
			t.Fatalf("Next after Close = %v, want ErrClosed", err)
		}
		for _, v := range pos {
			midAggregate = midAggregate || strings.Contains(v, ":")
		}

		c2 := newConsumer(t, cl, name, stream.Start{After: pos, StopAtEnd: true}, testConsumerOptions(t))
		rest := readAll(t, c2)
		checkExactly(t, &s, append(first, rest...))
		c2.Close()
	}
	if !midAggregate {
		t.Errorf("no stop left a position inside an aggregate: resuming mid-aggregate was not tested")
	}

	plain := false
	c := newConsumer(t, cl, name, stream.Start{StopAtEnd: true}, testConsumerOptions(t))
	for _, r := range readAll(t, c) {
		if bytes.Equal(r.Data, lone) {
			plain = !strings.Contains(r.Position, ":")
			// Resume right after the plain record.
			c3 := newConsumer(t, cl, name, stream.Start{After: map[string]string{r.Partition: r.Position}, StopAtEnd: true}, testConsumerOptions(t))
			for _, r2 := range readAll(t, c3) {
				if r2.Partition == r.Partition {
					t.Errorf("read %s %s after the last record of its shard", r2.Partition, r2.Position)
				}
			}
		}
	}
	if !plain {
		t.Errorf("the lone record was not read as a plain record")
	}
}

// TestRestartFromTime starts a consumer at a time between two batches and
// reads only the second.
func TestRestartFromTime(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 2)
	cl := srv.Client(t)
	p := newProducer(t, cl, name, testProducerOptions(t))
	var before, after sent
	putMany(t, p, &before, 10, 10, 200, 1)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	putMany(t, p, &after, 10, 10, 200, 2)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, cl, name, stream.Start{Time: mark, StopAtEnd: true}, testConsumerOptions(t))
	got := readAll(t, c)
	checkExactly(t, &after, got)
	for _, r := range got {
		if r.Time.Before(mark.Truncate(time.Millisecond)) {
			t.Errorf("record %s accepted at %v, before %v", r.Position, r.Time, mark)
		}
	}
}

// TestLatest reads only records put after the consumer started.
func TestLatest(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 1)
	cl := srv.Client(t)
	p := newProducer(t, cl, name, testProducerOptions(t))
	var old, fresh sent
	putMany(t, p, &old, 3, 3, 50, 1)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, cl, name, stream.Start{Latest: true}, testConsumerOptions(t))
	// LATEST is taken when the shard reader starts; give it a moment.
	time.Sleep(300 * time.Millisecond)
	putMany(t, p, &fresh, 3, 3, 50, 2)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	var got []stream.Record
	for len(got) < fresh.total() {
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	checkExactly(t, &fresh, got)
}

// TestCorruptAggregateSkipped puts a record with the aggregation magic and a
// bad digest between good ones: it is counted and skipped.
func TestCorruptAggregateSkipped(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 1)
	cl := srv.Client(t)
	p := newProducer(t, cl, name, testProducerOptions(t))
	var s sent
	putMany(t, p, &s, 3, 5, 50, 1)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	bad := append(kpl.Magic[:], []byte("not a protobuf, and no digest either")...)
	if _, err := cl.PutRecord(ctxTimeout(t, 5*time.Second), &awskinesis.PutRecordInput{
		StreamName: aws.String(name), PartitionKey: aws.String("x"), Data: bad,
	}); err != nil {
		t.Fatal(err)
	}
	putMany(t, p, &s, 3, 5, 50, 2)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	co := testConsumerOptions(t)
	c := newConsumer(t, cl, name, stream.Start{StopAtEnd: true}, co)
	checkExactly(t, &s, readAll(t, c))
	if n := counter(co.Metrics, "preheat_kinesis_corrupt_aggregates_total"); n != 1 {
		t.Errorf("corrupt aggregates counted %d, want 1", n)
	}
}

// TestRestartWhileProducerPutsSkipsNothing follows a stream while a
// producer puts to it, and restarts the consumer from its checkpoint three
// times meanwhile. Each GetRecords call returns at most two Kinesis records
// and every fourth fails with an expired iterator, so reading also crosses
// many shard iterators. Together the consumers read every record put, each
// once, in put order per key.
func TestRestartWhileProducerPutsSkipsNothing(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 2)
	p := newProducer(t, srv.Client(t), name, testProducerOptions(t))
	var s sent
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for round := range 12 {
			putMany(t, p, &s, 4, 3, 300, round+1)
			time.Sleep(80 * time.Millisecond)
		}
	})

	inj := &getFaults{throttleEvery: 1 << 30, expireEvery: 4}
	cl := srv.Client(t, withInitialize("getFaults", inj.middleware))
	co := testConsumerOptions(t)
	co.MaxRecordsPerCall = 2
	ctx := ctxTimeout(t, 20*time.Second)
	var got []stream.Record
	checkpoint := map[string]string{}
	for _, n := range []int{10, 10, 10} {
		c := newConsumer(t, cl, name, stream.Start{After: checkpoint}, co)
		for range n {
			r, err := c.Next(ctx)
			if err != nil {
				t.Fatalf("after %d records: %v", len(got), err)
			}
			got = append(got, r)
		}
		// Positions names the shards this consumer read from; a shard it
		// did not read keeps the checkpoint it started after.
		maps.Copy(checkpoint, c.Positions())
		c.Close()
		t.Logf("restart after %d records read, %d put so far", len(got), s.total())
	}
	wg.Wait()
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, cl, name, stream.Start{After: checkpoint, StopAtEnd: true}, co)
	checkExactly(t, &s, append(got, readAll(t, c)...))
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.expired == 0 {
		t.Error("no iterator expired: reading across iterators was not tested")
	}
}

// heldExpiry holds the first GetRecords call until release is closed, then
// fails it with ExpiredIteratorException, as Kinesis fails a call made with
// an iterator more than five minutes old.
type heldExpiry struct {
	once    sync.Once
	held    chan struct{} // closed once the call is held
	release chan struct{}
}

func (f *heldExpiry) middleware(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	first := false
	if _, ok := in.Parameters.(*awskinesis.GetRecordsInput); ok {
		f.once.Do(func() { first = true })
	}
	if !first {
		return next.HandleInitialize(ctx, in)
	}
	close(f.held)
	select {
	case <-f.release:
	case <-ctx.Done():
		return middleware.InitializeOutput{}, middleware.Metadata{}, ctx.Err()
	}
	return middleware.InitializeOutput{}, middleware.Metadata{},
		&types.ExpiredIteratorException{Message: aws.String("Iterator expired (injected)")}
}

// TestLatestKeepsItsPlaceAcrossExpiredIterator starts a consumer at the
// latest records and lets its first iterator expire after records were
// put: it must still read them. The shard reader asks again for a LATEST
// iterator when it has read no record yet, which starts past them.
func TestLatestKeepsItsPlaceAcrossExpiredIterator(t *testing.T) {
	t.Skip("known gap (#26): shardReader.iterator takes a new LATEST iterator after an expiry before the first record, skipping what was put meanwhile")
	t.Parallel()
	srv, name := newStream(t, 1)
	p := newProducer(t, srv.Client(t), name, testProducerOptions(t))
	inj := &heldExpiry{held: make(chan struct{}), release: make(chan struct{})}
	c := newConsumer(t, srv.Client(t, withInitialize("heldExpiry", inj.middleware)), name,
		stream.Start{Latest: true}, testConsumerOptions(t))
	ctx := ctxTimeout(t, 10*time.Second)
	select {
	case <-inj.held: // the reader has its LATEST iterator and is using it
	case <-ctx.Done():
		t.Fatal("no GetRecords call within 10s")
	}
	var s sent
	putMany(t, p, &s, 3, 3, 50, 1)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(inj.release)
	var got []stream.Record
	for len(got) < s.total() {
		r, err := c.Next(ctxTimeout(t, 3*time.Second))
		if err != nil {
			t.Fatalf("read %d of %d records put after the consumer started: %v", len(got), s.total(), err)
		}
		got = append(got, r)
	}
	checkExactly(t, &s, got)
}

// TestPositionsKeepStartAfterOfUnreadShards checks that a consumer started
// after a checkpoint reports it back for the shards it has read nothing
// from, as Positions is the checkpoint to restart from: otherwise a restart
// from it starts those shards over, or, with Latest, past records never
// read.
func TestPositionsKeepStartAfterOfUnreadShards(t *testing.T) {
	t.Skip("known gap (#26): Consumer.Positions leaves out the Start.After positions of shards not read since")
	t.Parallel()
	srv, name := newStream(t, 2)
	cl := srv.Client(t)
	p := newProducer(t, cl, name, testProducerOptions(t))
	var s sent
	putMany(t, p, &s, 10, 2, 50, 1)
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, cl, name, stream.Start{StopAtEnd: true}, testConsumerOptions(t))
	readAll(t, c)
	pos := c.Positions()
	c.Close()
	c = newConsumer(t, cl, name, stream.Start{After: pos, StopAtEnd: true}, testConsumerOptions(t))
	if recs := readAll(t, c); len(recs) != 0 {
		t.Fatalf("read %d records past the checkpoint", len(recs))
	}
	if got := c.Positions(); !maps.Equal(got, pos) {
		t.Fatalf("Positions = %v, want the checkpoint it started after, %v", got, pos)
	}
}
