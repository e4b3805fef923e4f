package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/preheatdev/preheat/stream"
)

// errShardGone says a shard listed earlier no longer exists: it expired
// past the stream's retention. Its reader ends as if it read it to its end.
var errShardGone = errors.New("shard no longer exists")

// maxGetRecordsPerSecond is the Kinesis limit of GetRecords calls per shard.
const maxGetRecordsPerSecond = 5

// ConsumerOptions tunes a Consumer. The zero value, or nil, gives the
// defaults written beside each field.
type ConsumerOptions struct {
	// IdleInterval is how long a shard reader waits after a GetRecords call
	// that returned no records. Default 1 s.
	IdleInterval time.Duration
	// ShardSyncInterval is how often the shards are listed to find new
	// ones. They are also listed whenever a shard is read to its close.
	// Default 1 minute.
	ShardSyncInterval time.Duration
	// GetRecordsPerSecond caps the GetRecords calls per shard. Default and
	// maximum 5, the Kinesis limit.
	GetRecordsPerSecond float64
	// MaxRecordsPerCall is the Limit of each GetRecords call, in Kinesis
	// records. Default 10,000, the Kinesis maximum.
	MaxRecordsPerCall int32
	// BufferRecords is the capacity, in user records, of the queue between
	// the shard readers and Next. Default 1,000.
	BufferRecords int
	// BackoffBase and BackoffMax bound the wait after a throttled or failed
	// call: the n-th consecutive failure waits a uniformly random time in
	// [0, min(BackoffMax, BackoffBase·2ⁿ⁻¹)]. Defaults 200 ms and 10 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RequestTimeout bounds each call to Kinesis. Default 10 s.
	RequestTimeout time.Duration
	// Logger receives warnings about skipped records and failing calls.
	// Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the consumer's metrics. Default a new, unexposed set.
	Metrics *metrics.Set
}

func (o *ConsumerOptions) withDefaults() ConsumerOptions {
	var c ConsumerOptions
	if o != nil {
		c = *o
	}
	if c.IdleInterval <= 0 {
		c.IdleInterval = time.Second
	}
	if c.ShardSyncInterval <= 0 {
		c.ShardSyncInterval = time.Minute
	}
	if c.GetRecordsPerSecond <= 0 || c.GetRecordsPerSecond > maxGetRecordsPerSecond {
		c.GetRecordsPerSecond = maxGetRecordsPerSecond
	}
	if c.MaxRecordsPerCall <= 0 || c.MaxRecordsPerCall > 10000 {
		c.MaxRecordsPerCall = 10000
	}
	if c.BufferRecords <= 0 {
		c.BufferRecords = 1000
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 200 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// Consumer reads every shard of a Kinesis stream and deaggregates KPL
// records. It implements stream.Consumer.
//
// One goroutine per shard reads it with GetRecords; a coordinating
// goroutine lists the shards and starts a child shard only once its parents
// have been read to their end, so the records of one key come in order
// across resharding.
//
// Positions are the Kinesis sequence number of the record ("SEQ") for a
// record that was not aggregated, and "SEQ:N" for the N-th user record
// (from 0) of an aggregated one, so that a consumer can resume in the middle
// of an aggregate.
type Consumer struct {
	client *awskinesis.Client
	stream string
	start  stream.Start
	after  map[string]position
	opts   ConsumerOptions
	log    *slog.Logger
	m      consumerMetrics

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	out     chan stream.Record
	results chan shardResult
	done    chan struct{} // closed when reading ended; err says why
	err     error

	posMu     sync.Mutex
	positions map[string]string

	closeOnce sync.Once
	closedMu  sync.Mutex
	closed    bool
}

var _ stream.Consumer = (*Consumer)(nil)

// position is a parsed Record.Position.
type position struct {
	seq   string
	index int // user record index in an aggregate, or -1
}

func parsePosition(s string) (position, error) {
	seq, idx, found := strings.Cut(s, ":")
	if seq == "" || strings.Trim(seq, "0123456789") != "" {
		return position{}, fmt.Errorf("bad position %q", s)
	}
	if !found {
		return position{seq: seq, index: -1}, nil
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 {
		return position{}, fmt.Errorf("bad position %q", s)
	}
	return position{seq: seq, index: n}, nil
}

func formatPosition(seq string, index int, aggregated bool) string {
	if !aggregated {
		return seq
	}
	return seq + ":" + strconv.Itoa(index)
}

type consumerMetrics struct {
	set             *metrics.Set
	getRecords      *metrics.Counter
	recordsRead     *metrics.Counter
	userRecordsRead *metrics.Counter
	throttles       *metrics.Counter
	expired         *metrics.Counter
	corrupt         *metrics.Counter
	shardListings   *metrics.Counter
}

func newConsumerMetrics(set *metrics.Set) consumerMetrics {
	return consumerMetrics{
		set:             set,
		getRecords:      set.GetOrCreateCounter("preheat_kinesis_get_records_total"),
		recordsRead:     set.GetOrCreateCounter("preheat_kinesis_records_read_total"),
		userRecordsRead: set.GetOrCreateCounter("preheat_kinesis_user_records_read_total"),
		throttles:       set.GetOrCreateCounter(`preheat_kinesis_throttles_total{op="GetRecords"}`),
		expired:         set.GetOrCreateCounter("preheat_kinesis_iterator_expired_total"),
		corrupt:         set.GetOrCreateCounter("preheat_kinesis_corrupt_aggregates_total"),
		shardListings:   set.GetOrCreateCounter(`preheat_kinesis_list_shards_total{component="consumer"}`),
	}
}

func (m consumerMetrics) errors(op, reason string) {
	m.set.GetOrCreateCounter(`preheat_kinesis_errors_total{op="` + op + `",reason="` + reason + `"}`).Inc()
}

func (m consumerMetrics) behind(shard string, millis int64) {
	m.set.GetOrCreateGauge(`preheat_kinesis_millis_behind_latest{shard="`+shard+`"}`, nil).Set(float64(millis))
}

// NewConsumer returns a consumer of the named stream starting where start
// says. It starts goroutines that Close stops; errors from Kinesis come
// from Next.
func NewConsumer(client *awskinesis.Client, streamName string, start stream.Start, opts *ConsumerOptions) (*Consumer, error) {
	if client == nil {
		return nil, errors.New("kinesis consumer: nil client")
	}
	if streamName == "" {
		return nil, errors.New("kinesis consumer: empty stream name")
	}
	after := make(map[string]position, len(start.After))
	for shard, s := range start.After {
		p, err := parsePosition(s)
		if err != nil {
			return nil, fmt.Errorf("kinesis consumer: shard %s: %w", shard, err)
		}
		after[shard] = p
	}
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{
		client:    client,
		stream:    streamName,
		start:     start,
		after:     after,
		opts:      o,
		log:       o.Logger.With("stream", streamName),
		m:         newConsumerMetrics(o.Metrics),
		ctx:       ctx,
		cancel:    cancel,
		out:       make(chan stream.Record, o.BufferRecords),
		results:   make(chan shardResult),
		done:      make(chan struct{}),
		positions: make(map[string]string),
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// Next returns the next record. See stream.Consumer.
func (c *Consumer) Next(ctx context.Context) (stream.Record, error) {
	c.closedMu.Lock()
	closed := c.closed
	c.closedMu.Unlock()
	if closed {
		return stream.Record{}, stream.ErrClosed
	}
	select {
	case r := <-c.out:
		return c.returned(r), nil
	case <-ctx.Done():
		return stream.Record{}, ctx.Err()
	case <-c.done:
		// Readers finished sending before done was closed.
		select {
		case r := <-c.out:
			return c.returned(r), nil
		default:
			return stream.Record{}, c.err
		}
	}
}

func (c *Consumer) returned(r stream.Record) stream.Record {
	c.posMu.Lock()
	c.positions[r.Partition] = r.Position
	c.posMu.Unlock()
	return r
}

// Positions returns the position of the last record Next returned from
// each shard. See stream.Consumer.
func (c *Consumer) Positions() map[string]string {
	c.posMu.Lock()
	defer c.posMu.Unlock()
	out := make(map[string]string, len(c.positions))
	for k, v := range c.positions {
		out[k] = v
	}
	return out
}

// Close stops the consumer and waits for its goroutines. See
// stream.Consumer.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closedMu.Lock()
		c.closed = true
		c.closedMu.Unlock()
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// Shard states kept by the coordinator.
const (
	shardWaiting  = iota // parents not read yet
	shardRunning         // a reader is on it
	shardRead            // read to its close, or skipped as already read
	shardAtEnd           // StopAtEnd: read to the end it had
	shardOrphaned        // StopAtEnd: a parent stopped at its end, so never read
	shardSkipped         // Start.Latest: closed before the consumer started
)

type shardState struct {
	info   shardInfo
	status int
}

type shardResult struct {
	id     string
	closed bool // read to its close (NextShardIterator nil)
	err    error
}

// run is the coordinator: it lists shards, starts readers in parent-first
// order, and ends the consumer with io.EOF (StopAtEnd) or a permanent error.
func (c *Consumer) run() {
	defer c.wg.Done()
	known := make(map[string]*shardState)
	running := 0
	first := true
	fails := 0
	ticker := time.NewTicker(c.opts.ShardSyncInterval)
	defer ticker.Stop()

	// finish stops the readers and waits for them, so that every record
	// they queued is in c.out before done is closed, then reports err.
	finish := func(err error) {
		c.cancel()
		for ; running > 0; running-- {
			<-c.results
		}
		c.err = err
		close(c.done)
	}
	for {
		if err := c.sync(known, first); err != nil {
			if c.ctx.Err() != nil {
				finish(stream.ErrClosed)
				return
			}
			c.m.errors("ListShards", errorReason(err))
			if permanent(err) {
				finish(fmt.Errorf("kinesis consumer: %w", err))
				return
			}
			fails++
			c.log.Warn("kinesis consumer could not list shards", "error", err)
		} else {
			first = false
			fails = 0
		}
		running += c.startReady(known)
		if c.start.StopAtEnd && fails == 0 && running == 0 && allFinished(known) {
			finish(io.EOF)
			return
		}
		var retry <-chan time.Time
		if fails > 0 {
			retry = time.After(backoff(c.opts.BackoffBase, c.opts.BackoffMax, fails))
		}
		select {
		case <-c.ctx.Done():
			finish(stream.ErrClosed)
			return
		case <-ticker.C:
		case <-retry:
		case r := <-c.results:
			running--
			st := known[r.id]
			switch {
			case r.err != nil:
				finish(fmt.Errorf("kinesis consumer: shard %s: %w", r.id, r.err))
				return
			case r.closed:
				st.status = shardRead
			default:
				st.status = shardAtEnd
			}
		}
	}
}

// allFinished reports whether no shard is running or can still start.
func allFinished(known map[string]*shardState) bool {
	for _, st := range known {
		if st.status == shardWaiting || st.status == shardRunning {
			return false
		}
	}
	return true
}

// sync lists the shards and adds the new ones.
func (c *Consumer) sync(known map[string]*shardState, first bool) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	defer cancel()
	c.m.shardListings.Inc()
	shards, err := listShards(ctx, c.client, c.stream)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if st, ok := known[s.id]; ok {
			st.info = s // it may have closed since
		} else {
			known[s.id] = &shardState{info: s}
		}
	}
	if !first {
		return nil
	}
	// A shard with a listed descendant in Start.After was read to its end
	// before: skip it, and start its other children at their beginning.
	var markRead func(id string)
	markRead = func(id string) {
		st := known[id]
		if st == nil || st.status == shardRead {
			return
		}
		st.status = shardRead
		for _, p := range st.info.parents {
			markRead(p)
		}
	}
	for id := range c.after {
		if st := known[id]; st != nil {
			for _, p := range st.info.parents {
				markRead(p)
			}
		}
	}
	// Starting at the latest records, shards already closed hold nothing
	// new: skip them, and start their children at the latest records too.
	if c.start.Latest {
		for id, st := range known {
			if _, ok := c.after[id]; !ok && st.info.closed && st.status == shardWaiting {
				st.status = shardSkipped
			}
		}
	}
	return nil
}

// startReady starts a reader on every waiting shard whose listed parents
// were all read to their close, and returns how many it started.
func (c *Consumer) startReady(known map[string]*shardState) int {
	started := 0
	for id, st := range known {
		if st.status != shardWaiting {
			continue
		}
		ready, orphan, fromParent := true, false, false
		for _, p := range st.info.parents {
			ps := known[p]
			if ps == nil || ps.status == shardSkipped {
				continue // no longer listed (expired) or skipped: start right away
			}
			switch ps.status {
			case shardRead:
				fromParent = true
			case shardAtEnd, shardOrphaned:
				orphan = true
			default:
				ready = false
			}
		}
		if orphan && ready {
			// StopAtEnd stopped a parent before its close; what its
			// children hold came after the end this consumer reads to.
			st.status = shardOrphaned
			continue
		}
		if !ready {
			continue
		}
		st.status = shardRunning
		// A shard whose parent was read (by this consumer, or before it
		// per Start.After) starts at its first record, not where Start says.
		spec := c.startSpec(id, fromParent)
		r := &shardReader{c: c, shard: id, spec: spec, knownClosed: st.info.closed}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			closed, err := r.run()
			// The coordinator receives results until every reader it
			// started has reported, even when closing.
			c.results <- shardResult{id: id, closed: closed, err: err}
		}()
		started++
	}
	return started
}
