package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// Kinesis limits, from the Kinesis Data Streams quotas documentation.
const (
	maxRecordBytes     = 1 << 20     // data plus partition key of one record
	maxPutRecords      = 500         // records per PutRecords call
	maxPutBytes        = 5 << 20     // data plus partition keys per PutRecords call
	shardRecordsPerSec = 1000        // records written per shard per second
	shardBytesPerSec   = 1 << 20     // bytes written per shard per second
	maxPartitionKeyLen = 256         // Unicode characters; we count bytes, stricter
	shardRefreshOnMiss = time.Second // least time between refreshes on a miss
	// holdForListing bounds how long a lane whose records landed in another
	// shard waits for the shard map to be listed again.
	holdForListing = 5 * time.Second
)

// ProducerOptions tunes a Producer. The zero value, or nil, gives the
// defaults written beside each field.
type ProducerOptions struct {
	// Linger is how long a user record may wait for others to share its
	// Kinesis record before it is sent: the KPL's RecordMaxBufferedTime.
	// Default 100 ms.
	Linger time.Duration
	// BufferBytes bounds the data and keys of records accepted by Put and
	// not yet delivered or given up on. Put blocks while it is full. A
	// caller that bounds its own memory sheds the oldest records instead
	// (ShedOldest) and sets BufferBytes at least as large as that bound.
	// Default 64 MiB; at least 2 MiB.
	BufferBytes int64
	// MaxInFlightBytes bounds the data and keys of the records in the
	// PutRecords calls in flight at once, and so the memory their request
	// bodies take (base64 in JSON: up to about 2.7 times as much while a
	// call is in flight). One Kinesis record is always let through.
	// Default 2 MiB.
	MaxInFlightBytes int64
	// DeliveryTimeout is how long the producer keeps retrying a Kinesis
	// record after it was sealed (at most Linger after its first user
	// record was put), counting backoff. A record not delivered by then is
	// given up: counted in preheat_kinesis_dropped_user_records_total (or
	// preheat_kinesis_unknown_user_records_total when an attempt's outcome
	// was never learned) with the last failure's reason, and logged.
	// Default 5 minutes: an outage of a few minutes loses nothing the
	// buffer can hold, and a batch older than that is of little use to a
	// replay cache whose window is minutes long.
	DeliveryTimeout time.Duration
	// BackoffBase and BackoffMax bound the backoff before a retry: the
	// n-th retry waits a uniformly random time in [0, min(BackoffMax,
	// BackoffBase·2ⁿ⁻¹)] ("full jitter"). Defaults 100 ms and 5 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RequestTimeout bounds one PutRecords or ListShards call. Default 10 s.
	RequestTimeout time.Duration
	// MaxInFlight is the number of PutRecords calls in flight at once.
	// Default 4.
	MaxInFlight int
	// ShardRefreshInterval is how often the shard map is listed again.
	// It is also listed when a record lands in another shard than the map
	// predicted (after resharding). Default 1 minute.
	ShardRefreshInterval time.Duration
	// ShardRecordsPerSecond and ShardBytesPerSecond pace the Kinesis records
	// sent to each shard. Defaults 1,000 records/s and 1 MiB/s, the
	// Kinesis per-shard write limits.
	ShardRecordsPerSecond int
	ShardBytesPerSecond   int
	// Logger receives warnings about dropped records. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the producer's metrics. Default a new, unexposed set.
	Metrics *metrics.Set
}

func (o *ProducerOptions) withDefaults() ProducerOptions {
	var c ProducerOptions
	if o != nil {
		c = *o
	}
	if c.Linger <= 0 {
		c.Linger = 100 * time.Millisecond
	}
	if c.BufferBytes <= 0 {
		c.BufferBytes = 64 << 20
	}
	c.BufferBytes = max(c.BufferBytes, 2<<20)
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 2 << 20
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 5 * time.Minute
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 100 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4
	}
	if c.ShardRefreshInterval <= 0 {
		c.ShardRefreshInterval = time.Minute
	}
	if c.ShardRecordsPerSecond <= 0 {
		c.ShardRecordsPerSecond = shardRecordsPerSec
	}
	if c.ShardBytesPerSecond <= 0 {
		c.ShardBytesPerSecond = shardBytesPerSec
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// Producer puts records into a Kinesis stream, aggregated in the KPL format.
// It implements stream.Producer.
//
// User records are grouped by the shard their partition key hashes to,
// according to a shard map listed from Kinesis, and each group is sent as
// one Kinesis record whose ExplicitHashKey is the shard's starting hash key,
// so that every user record lands in the shard its own key maps to. Until
// the first listing succeeds, records are grouped by partition key instead
// and sent without an ExplicitHashKey.
//
// Each shard (a lane) has at most one Kinesis record in flight, and a child
// shard's lane waits until its parents' lanes are empty, so the records of
// one key keep their order through retries and resharding, with one
// exception: when a shard splits, the Kinesis record in flight to it (built
// from the old map) lands whole in the lower child, so for keys that now
// map to the upper child those records sit in the sibling shard, which a
// consumer reads concurrently. The first such landing makes the producer
// hold the lane, list the shards again, and regroup the lane's waiting
// records by the new map, so at most one Kinesis record per split shard is
// affected. Readers that sort by sequence (the replay cache) are not.
//
// The records of one key reach the stream as an unbroken run: when the
// producer gives up a record, it gives up with it every record of the same
// key it still holds. PutTracked reports each record's fate.
type Producer struct {
	client *awskinesis.Client
	stream string
	opts   ProducerOptions
	log    *slog.Logger
	m      producerMetrics

	space *semaphore.Weighted // buffer bytes

	ctx    context.Context // canceled by Close once flushing ended
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // cap 1: run has work to look at
	relist chan struct{} // cap 1: refresh the shard map now

	mu            sync.Mutex
	closed        bool
	shards        *shardMap           // nil until the first listing
	parents       map[string][]string // shard id → parent shard ids
	buckets       map[string]*bucket  // open aggregates by lane id
	lanes         map[string]*lane    // sealed aggregates by lane id
	inFlight      int                 // PutRecords calls in flight
	inFlightBytes int64               // data and keys in them
	epoch         uint64              // bumped by each Flush
	pending       map[uint64]int      // user records not yet finished, by epoch
	changed       chan struct{}       // closed and replaced when pending shrinks
	rng           *rand.Rand          // jitter; guarded by mu
	lastList      time.Time           // last shard listing started
	reports       []report            // fates to report once mu is released
	lostKeys      map[string]bool     // keys given up since flushReports last ran
	reportMu      sync.Mutex          // held while running reports, in order
	reportc       chan struct{}       // cap 1: wakes report

	closeOnce sync.Once
	closeErr  error
}

var _ stream.Producer = (*Producer)(nil)

// bucket is an aggregate being filled for one lane.
type bucket struct {
	agg   kpl.Aggregator
	recs  []userRecord // in the order added
	key   string       // the Kinesis record's partition key: the first user record's
	ehk   *string      // explicit hash key, nil when grouping by partition key
	bytes int64        // buffer bytes of the user records in it
	first time.Time
	epoch uint64
}

// userRecord is what the producer keeps of one user record besides its
// data: whom to tell its fate.
type userRecord struct {
	key    string
	weight int64                // buffer bytes: data and key
	done   func(stream.Outcome) // nil when put with Put
}

// aggregate is one sealed Kinesis record waiting to be delivered.
type aggregate struct {
	lane      string
	data      []byte
	key       string
	ehk       *string
	recs      []userRecord // the user records in data, in order
	bytes     int64
	epoch     uint64
	sealed    time.Time // the delivery timeout runs from here
	attempts  int
	reason    string // the last attempt's failure
	notBefore time.Time
	// unknown: an attempt failed without the producer learning whether
	// Kinesis stored the record (a timeout, a broken connection), so it
	// may be in the stream.
	unknown bool
}

// lane is the FIFO of sealed aggregates for one shard (or, before the
// first shard listing, one partition key).
type lane struct {
	queue    []*aggregate
	inFlight bool
	// holdUntil: a record landed in another shard than predicted; the lane
	// waits for a new shard map until then (cleared by a listing).
	holdUntil time.Time
	records   *rate.Limiter
	bytes     *rate.Limiter
}

type producerMetrics struct {
	set                *metrics.Set
	userRecordsPut     *metrics.Counter
	recordsPut         *metrics.Counter
	userPerRecord      *metrics.Histogram
	putLatency         *metrics.Histogram
	putCalls           *metrics.Counter
	bufferedBytes      *metrics.Gauge
	shardListings      *metrics.Counter
	shardListingErrors *metrics.Counter
}

func newProducerMetrics(set *metrics.Set) producerMetrics {
	return producerMetrics{
		set:                set,
		userRecordsPut:     set.GetOrCreateCounter("preheat_kinesis_user_records_put_total"),
		recordsPut:         set.GetOrCreateCounter("preheat_kinesis_records_put_total"),
		userPerRecord:      set.GetOrCreateHistogram("preheat_kinesis_user_records_per_record"),
		putLatency:         set.GetOrCreateHistogram("preheat_kinesis_put_records_duration_seconds"),
		putCalls:           set.GetOrCreateCounter("preheat_kinesis_put_records_calls_total"),
		bufferedBytes:      set.GetOrCreateGauge("preheat_kinesis_producer_buffered_bytes", nil),
		shardListings:      set.GetOrCreateCounter(`preheat_kinesis_list_shards_total{component="producer"}`),
		shardListingErrors: set.GetOrCreateCounter(`preheat_kinesis_list_shards_errors_total{component="producer"}`),
	}
}

func (m producerMetrics) retries(reason string, n int) {
	m.set.GetOrCreateCounter(`preheat_kinesis_put_retries_total{reason="` + reason + `"}`).Add(n)
}

func (m producerMetrics) dropped(reason string, n int) {
	m.set.GetOrCreateCounter(`preheat_kinesis_dropped_user_records_total{reason="` + reason + `"}`).Add(n)
}

func (m producerMetrics) unknown(reason string, n int) {
	m.set.GetOrCreateCounter(`preheat_kinesis_unknown_user_records_total{reason="` + reason + `"}`).Add(n)
}

// NewProducer returns a producer for the named stream. It starts goroutines
// that Close stops. It does not call Kinesis before returning: the shard
// map is listed in the background.
func NewProducer(client *awskinesis.Client, streamName string, opts *ProducerOptions) (*Producer, error) {
	if client == nil {
		return nil, errors.New("kinesis producer: nil client")
	}
	if streamName == "" {
		return nil, errors.New("kinesis producer: empty stream name")
	}
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		client:  client,
		stream:  streamName,
		opts:    o,
		log:     o.Logger.With("stream", streamName),
		m:       newProducerMetrics(o.Metrics),
		space:   semaphore.NewWeighted(o.BufferBytes),
		ctx:     ctx,
		cancel:  cancel,
		wake:    make(chan struct{}, 1),
		relist:  make(chan struct{}, 1),
		reportc: make(chan struct{}, 1),
		buckets: make(map[string]*bucket),
		lanes:   make(map[string]*lane),
		pending: make(map[uint64]int),
		changed: make(chan struct{}),
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	p.wg.Add(3)
	go p.run()
	go p.refreshLoop()
	go p.report()
	return p, nil
}

// Put queues data under key. See stream.Producer.
func (p *Producer) Put(ctx context.Context, key string, data []byte) error {
	return p.PutTracked(ctx, key, data, nil)
}

// PutTracked is Put, and then calls done, once, with the record's fate:
// delivered, lost (never stored), or unknown (given up after an attempt
// whose outcome was never learned). done runs on one of the producer's
// goroutines, possibly before PutTracked returns, and must not call the
// producer. When PutTracked returns an error, done is not called.
//
// A record given up takes every record of its key the producer still
// holds with it, including those put before its done function returns,
// each reported with reason "key_lost". A caller that stops putting a
// key once done reports a record of it not delivered, with its own puts
// of that key ordered after that check, never has a later record of the
// key sent after the lost one.
func (p *Producer) PutTracked(ctx context.Context, key string, data []byte, done func(stream.Outcome)) error {
	if len(data) > stream.MaxRecordBytes {
		return stream.ErrTooLarge
	}
	if key == "" || len(key) > maxPartitionKeyLen {
		return fmt.Errorf("kinesis put: partition key must be 1 to %d bytes, got %d", maxPartitionKeyLen, len(key))
	}
	if p.isClosed() {
		return stream.ErrClosed
	}
	weight := int64(len(data) + len(key))
	if err := p.space.Acquire(ctx, weight); err != nil {
		return fmt.Errorf("kinesis put: wait for buffer space: %w", err)
	}
	p.m.bufferedBytes.Add(float64(weight))

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.release(weight)
		return stream.ErrClosed
	}
	laneID, ehk := p.route(key)
	b := p.buckets[laneID]
	if b != nil && b.agg.SizeWith(key, "", len(data))+len(b.key) > maxRecordBytes {
		p.sealLocked(laneID, b)
		b = nil
	}
	// run needs to look only when an aggregate is sealed or a bucket
	// starts lingering.
	wake := b == nil
	if b == nil {
		b = &bucket{key: key, ehk: ehk, first: time.Now(), epoch: p.epoch}
		p.buckets[laneID] = b
	}
	b.agg.Add(key, "", data)
	b.recs = append(b.recs, userRecord{key: key, weight: weight, done: done})
	b.bytes += weight
	p.pending[p.epoch]++
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	return nil
}

// route returns the lane and explicit hash key for a partition key.
func (p *Producer) route(key string) (string, *string) {
	if p.shards != nil {
		if s := p.shards.lookup(partitionHash(key)); s != nil {
			return s.id, aws.String(s.startKey)
		}
	}
	return keyLanePrefix + key, nil
}

// keyLanePrefix starts the ids of lanes that group by partition key, used
// until the first shard listing succeeds.
const keyLanePrefix = "key:"

func isKeyLane(id string) bool { return strings.HasPrefix(id, keyLanePrefix) }

func (p *Producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Producer) release(weight int64) {
	p.space.Release(weight)
	p.m.bufferedBytes.Add(-float64(weight))
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sealLocked turns the lane's open bucket into an aggregate at the end of
// the lane.
func (p *Producer) sealLocked(laneID string, b *bucket) {
	delete(p.buckets, laneID)
	p.sealBucketLocked(laneID, b, time.Now())
}

func (p *Producer) sealBucketLocked(laneID string, b *bucket, sealed time.Time) {
	l := p.laneLocked(laneID)
	l.queue = append(l.queue, &aggregate{
		lane:   laneID,
		data:   encodeAggregate(&b.agg),
		key:    b.key,
		ehk:    b.ehk,
		recs:   b.recs,
		bytes:  b.bytes,
		epoch:  b.epoch,
		sealed: sealed,
	})
}

// encodeAggregate returns the Kinesis record's data for agg's user
// records. A single user record travels plain, as the KPL sends it: any
// consumer reads it without deaggregating. Its data never starts with the
// aggregation magic, because session batches do not.
func encodeAggregate(agg *kpl.Aggregator) []byte {
	data := agg.Encode(make([]byte, 0, agg.Size()))
	if agg.Len() == 1 {
		if recs, err := kpl.Deaggregate(data); err == nil && len(recs) == 1 && !kpl.IsAggregated(recs[0].Data) {
			data = recs[0].Data
		}
	}
	return data
}

func (p *Producer) laneLocked(id string) *lane {
	l := p.lanes[id]
	if l == nil {
		l = &lane{
			records: rate.NewLimiter(rate.Limit(p.opts.ShardRecordsPerSecond), p.opts.ShardRecordsPerSecond),
			bytes:   rate.NewLimiter(rate.Limit(p.opts.ShardBytesPerSecond), max(p.opts.ShardBytesPerSecond, maxRecordBytes)),
		}
		p.lanes[id] = l
	}
	return l
}

// Flush returns once every record put before the call was delivered or
// given up on, or when ctx is done. See stream.Producer.
func (p *Producer) Flush(ctx context.Context) error {
	if p.isClosed() {
		return stream.ErrClosed
	}
	return p.flush(ctx)
}

func (p *Producer) flush(ctx context.Context) error {
	p.mu.Lock()
	e := p.epoch
	p.epoch++
	for id, b := range p.buckets {
		p.sealLocked(id, b)
	}
	p.mu.Unlock()
	p.signal()
	for {
		p.mu.Lock()
		left := 0
		for ep, n := range p.pending {
			if ep <= e {
				left += n
			}
		}
		ch := p.changed
		p.mu.Unlock()
		if left == 0 {
			// Their fates are known: report them before returning.
			p.flushReports()
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("kinesis flush: %d records not yet delivered: %w", left, ctx.Err())
		}
	}
}

// Close flushes until ctx is done, then stops the producer. Records still
// buffered then are counted as dropped with reason "closed". See
// stream.Producer.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		err := p.flush(ctx)
		p.cancel()
		p.wg.Wait()
		p.mu.Lock()
		dropped := 0
		for id, b := range p.buckets {
			p.sealLocked(id, b)
		}
		for _, l := range p.lanes {
			for _, a := range l.queue {
				dropped += len(a.recs)
				p.finishLocked(a, a.givenUp("closed"))
			}
			l.queue = nil
		}
		p.mu.Unlock()
		p.flushReports()
		if dropped > 0 {
			p.log.Warn("kinesis producer closed with undelivered records", "dropped_user_records", dropped)
		}
		if err != nil {
			p.closeErr = fmt.Errorf("kinesis close: %w", err)
		}
	})
	return p.closeErr
}

// finishLocked ends an aggregate's life with out, counts it, and files
// its user records' reports for flushReports.
func (p *Producer) finishLocked(a *aggregate, out stream.Outcome) {
	switch out.Fate {
	case stream.Lost:
		p.m.dropped(out.Reason, len(a.recs))
	case stream.Unknown:
		p.m.unknown(out.Reason, len(a.recs))
	}
	p.pending[a.epoch] -= len(a.recs)
	if p.pending[a.epoch] <= 0 {
		delete(p.pending, a.epoch)
	}
	p.release(a.bytes)
	p.fileReportsLocked(a.recs, out)
	close(p.changed)
	p.changed = make(chan struct{})
}
