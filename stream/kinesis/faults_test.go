package kinesis

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/preheatdev/preheat/stream"
)

// withInitialize adds an Initialize-step middleware to every operation.
func withInitialize(id string, fn func(context.Context, middleware.InitializeInput, middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error)) func(*awskinesis.Options) {
	return func(o *awskinesis.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc(id, fn), middleware.After)
		})
	}
}

// partialFailures fails a fraction of PutRecords entries the way Kinesis
// does, faithfully: the failed entries are removed from the request before
// it is serialized, so the server never stores them, and the response gets
// a failed entry (ProvisionedThroughputExceededException) at each of their
// indexes, with the server's real results for the others in between.
// Rewriting a real response instead would report as failed records the
// server did store, and their retries would be duplicates.
type partialFailures struct {
	mu       sync.Mutex
	rng      *rand.Rand
	fraction float64
	failed   int
}

func (f *partialFailures) middleware(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	put, ok := in.Parameters.(*awskinesis.PutRecordsInput)
	if !ok {
		return next.HandleInitialize(ctx, in)
	}
	f.mu.Lock()
	fail := make([]bool, len(put.Records))
	var keep []types.PutRecordsRequestEntry
	for i, e := range put.Records {
		fail[i] = f.rng.Float64() < f.fraction
		if fail[i] {
			f.failed++
		} else {
			keep = append(keep, e)
		}
	}
	f.mu.Unlock()

	var real []types.PutRecordsResultEntry
	var out middleware.InitializeOutput
	var md middleware.Metadata
	if len(keep) > 0 {
		cp := *put
		cp.Records = keep
		in.Parameters = &cp
		var err error
		out, md, err = next.HandleInitialize(ctx, in)
		if err != nil {
			return out, md, err
		}
		real = out.Result.(*awskinesis.PutRecordsOutput).Records
		if len(real) != len(keep) {
			return out, md, errors.New("partialFailures: result count mismatch")
		}
	}
	res := &awskinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(put.Records))}
	j := 0
	for i := range put.Records {
		if fail[i] {
			res.Records[i] = types.PutRecordsResultEntry{
				ErrorCode:    aws.String("ProvisionedThroughputExceededException"),
				ErrorMessage: aws.String("Rate exceeded for shard (injected by the test)"),
			}
			res.FailedRecordCount = aws.Int32(aws.ToInt32(res.FailedRecordCount) + 1)
			continue
		}
		res.Records[i] = real[j]
		j++
	}
	out.Result = res
	return out, md, nil
}

func TestPartialFailuresRetried(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 3)
	inj := &partialFailures{rng: rand.New(rand.NewPCG(7, 8)), fraction: 0.3}
	cl := srv.Client(t, withInitialize("partialFailures", inj.middleware))
	po := testProducerOptions(t)
	p := newProducer(t, cl, name, po)
	var s sent
	for round := range 4 {
		putMany(t, p, &s, 30, 10, 1000, round+1)
		time.Sleep(30 * time.Millisecond)
	}
	if err := p.Flush(ctxTimeout(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, srv.Client(t), name, stream.Start{StopAtEnd: true}, testConsumerOptions(t))
	checkExactly(t, &s, readAll(t, c))

	inj.mu.Lock()
	failed := inj.failed
	inj.mu.Unlock()
	retries := counter(po.Metrics, `preheat_kinesis_put_retries_total{reason="throttled"}`)
	if failed == 0 || retries != uint64(failed) {
		t.Errorf("injected %d failed entries, counted %d retries", failed, retries)
	}
	if n := counter(po.Metrics, `preheat_kinesis_dropped_user_records_total{reason="throttled"}`); n != 0 {
		t.Errorf("%d user records dropped", n)
	}
	t.Logf("injected %d failed entries in %d calls", failed, counter(po.Metrics, "preheat_kinesis_put_records_calls_total"))
}

// getFaults fails GetRecords calls before they reach the server: every
// throttleEvery-th with ProvisionedThroughputExceededException and every
// expireEvery-th with ExpiredIteratorException.
type getFaults struct {
	mu                         sync.Mutex
	calls, throttled, expired  int
	throttleEvery, expireEvery int
}

func (f *getFaults) middleware(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if _, ok := in.Parameters.(*awskinesis.GetRecordsInput); !ok {
		return next.HandleInitialize(ctx, in)
	}
	f.mu.Lock()
	f.calls++
	n := f.calls
	var err error
	switch {
	case n%f.throttleEvery == 0:
		f.throttled++
		err = &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded (injected)")}
	case n%f.expireEvery == 0:
		f.expired++
		err = &types.ExpiredIteratorException{Message: aws.String("Iterator expired (injected)")}
	}
	f.mu.Unlock()
	if err != nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, err
	}
	return next.HandleInitialize(ctx, in)
}

func TestGetRecordsFaults(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 2)
	p := newProducer(t, srv.Client(t), name, testProducerOptions(t))
	var s sent
	// Several flushes make several Kinesis records per shard, so that
	// faults fall between records of one shard.
	for round := range 5 {
		putMany(t, p, &s, 10, 10, 200, round+1)
		if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	inj := &getFaults{throttleEvery: 3, expireEvery: 4}
	co := testConsumerOptions(t)
	co.MaxRecordsPerCall = 2
	c := newConsumer(t, srv.Client(t, withInitialize("getFaults", inj.middleware)), name, stream.Start{StopAtEnd: true}, co)
	checkExactly(t, &s, readAll(t, c))
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.throttled == 0 || inj.expired == 0 {
		t.Fatalf("injected %d throttles and %d expirations", inj.throttled, inj.expired)
	}
	if n := counter(co.Metrics, `preheat_kinesis_throttles_total{op="GetRecords"}`); n != uint64(inj.throttled) {
		t.Errorf("counted %d throttles, injected %d", n, inj.throttled)
	}
	if n := counter(co.Metrics, "preheat_kinesis_iterator_expired_total"); n != uint64(inj.expired) {
		t.Errorf("counted %d expirations, injected %d", n, inj.expired)
	}
	if n := counter(co.Metrics, "preheat_kinesis_get_records_total"); n != uint64(inj.calls) {
		t.Errorf("counted %d GetRecords calls, made %d", n, inj.calls)
	}
}

// deadEndpoint returns the URL of a loopback port nothing listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func deadClient(t *testing.T) *awskinesis.Client {
	return awskinesis.New(awskinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(deadEndpoint(t)),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

// TestUnreachableDropsAfterBudget: records Put accepted are counted as
// dropped once the retry budget ends, and Flush and Close return.
func TestUnreachableDropsAfterBudget(t *testing.T) {
	t.Parallel()
	po := testProducerOptions(t)
	po.DeliveryTimeout = 300 * time.Millisecond
	p := newProducer(t, deadClient(t), "nowhere", po)
	var s sent
	putMany(t, p, &s, 5, 4, 100, 1)
	start := time.Now()
	if err := p.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("flush took %v with a delivery timeout of %v", d, po.DeliveryTimeout)
	}
	if n := counter(po.Metrics, `preheat_kinesis_dropped_user_records_total{reason="network"}`); n != uint64(s.total()) {
		t.Errorf("dropped %d user records for network errors, put %d", n, s.total())
	}
	if n := counter(po.Metrics, `preheat_kinesis_put_retries_total{reason="network"}`); n == 0 {
		t.Errorf("no retries counted")
	}
	if err := p.Close(ctxTimeout(t, time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.Put(context.Background(), "k", []byte("x")); err != stream.ErrClosed {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(ctxTimeout(t, time.Second)); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestUnreachableCloseDeadline: with a long retry budget, Close returns by
// its ctx deadline and counts what it drops.
func TestUnreachableCloseDeadline(t *testing.T) {
	t.Parallel()
	po := testProducerOptions(t)
	po.DeliveryTimeout = time.Minute
	p := newProducer(t, deadClient(t), "nowhere", po)
	var s sent
	putMany(t, p, &s, 5, 4, 100, 1)
	start := time.Now()
	err := p.Close(ctxTimeout(t, 300*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	if n := counter(po.Metrics, `preheat_kinesis_dropped_user_records_total{reason="closed"}`); n != uint64(s.total()) {
		t.Errorf("dropped %d user records on close, put %d", n, s.total())
	}
}

// TestPutBlocksWhenFull: Put waits for buffer space until its ctx ends.
func TestPutBlocksWhenFull(t *testing.T) {
	t.Parallel()
	po := testProducerOptions(t)
	po.BufferBytes = 2 << 20
	po.DeliveryTimeout = time.Minute
	p := newProducer(t, deadClient(t), "nowhere", po)
	big := make([]byte, stream.MaxRecordBytes)
	ctx := ctxTimeout(t, 5*time.Second)
	for range 2 {
		if err := p.Put(ctx, "k", big); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Put(short, "k", big); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put into a full buffer = %v, want a deadline error", err)
	}
	if err := p.Put(ctx, "k", make([]byte, stream.MaxRecordBytes+1)); err != stream.ErrTooLarge {
		t.Fatalf("Put of a too large record = %v", err)
	}
	if err := p.Close(ctxTimeout(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a deadline error", err)
	}
}
