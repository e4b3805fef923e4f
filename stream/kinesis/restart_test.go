package kinesis

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

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
