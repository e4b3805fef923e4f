package kinesis_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/kinesis"
)

// The offered load of BenchmarkFramesPerRecord: aggSessions sessions, each
// sending one frame per aggTick, for aggFeed. 200 sessions at 50 frames/s
// are 10,000 frames/s.
const (
	aggSessions = 200
	aggTick     = 20 * time.Millisecond
	aggFeed     = 5 * time.Second
	// aggFlushInterval and aggBatchBytes are the tap's defaults
	// (capture.RecorderOptions FlushInterval and BatchBytes).
	aggFlushInterval = time.Second
	aggBatchBytes    = 64 << 10
	// aggDrain bounds the wait for the producer to deliver what was put.
	aggDrain = 90 * time.Second
)

// BenchmarkFramesPerRecord measures how well the producer aggregates the
// tap's event batches into Kinesis records at 10,000 frames/s, against
// kinesalite. It feeds the producer for about 5 s, paced by a ticker, then
// flushes it, and reports frames, batches (user records) and bytes per
// Kinesis record. Each run takes several seconds whatever b.N is: run it
// with -benchtime=1x.
//
// batching=1s cuts each session's batches the way the tap does by default:
// when the oldest pending event is 1 s old, when the batch body reaches
// 64 KiB, or when the session closes. batching=1frame puts every frame in a
// batch of its own, the worst case for aggregation.
func BenchmarkFramesPerRecord(b *testing.B) {
	if testing.Short() {
		b.Skip("paced run of several seconds against kinesalite")
	}
	for _, perFrame := range []bool{false, true} {
		for _, shards := range []int{1, 4, 16} {
			name := fmt.Sprintf("batching=1s/shards=%d", shards)
			if perFrame {
				name = fmt.Sprintf("batching=1frame/shards=%d", shards)
			}
			b.Run(name, func(b *testing.B) { benchFramesPerRecord(b, shards, perFrame) })
		}
	}
}

// aggSession is one paced session: the corpus events still to send and the
// batch of events pending since the last flush.
type aggSession struct {
	key    string
	events []session.Event
	w      session.BatchWriter
	frames int       // frames in w
	oldest time.Time // when w's first event was appended
	// lead backdates the first batch of the run, so that sessions flush
	// at different times from the start, as on a tap that has been running.
	lead time.Duration
}

func benchFramesPerRecord(b *testing.B, shards int, perFrame bool) {
	srv := kinesalite.Start(b)
	name := fmt.Sprintf("bench-frames-%d-%t", shards, perFrame)
	srv.CreateStream(b, name, shards)
	var kb putBytes
	client := srv.Client(b, kb.option)
	set := metrics.NewSet()
	p, err := kinesis.NewProducer(client, name, &kinesis.ProducerOptions{
		Logger:  slog.New(slog.NewTextHandler(benchLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics: set,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx) // already closed on success; safe to call twice
	})

	gen := corpus.New(42)
	sessions := make([]*aggSession, aggSessions)
	for i := range sessions {
		sessions[i] = &aggSession{lead: time.Duration(i) * aggFlushInterval / aggSessions}
	}
	var frames, batches, batchBytes int
	buf := make([]byte, 0, aggBatchBytes)
	ctx, cancel := context.WithTimeout(context.Background(), aggFeed+aggDrain)
	defer cancel()
	flush := func(s *aggSession) {
		if s.w.Events() == 0 {
			return
		}
		var err error
		if buf, err = s.w.AppendTo(buf[:0]); err != nil {
			b.Fatal(err)
		}
		if err := p.Put(ctx, s.key, buf); err != nil {
			b.Fatal(err)
		}
		frames += s.frames
		batches++
		batchBytes += len(buf)
		s.w.Reset()
		s.frames = 0
	}
	// step appends events of s up to and including its next frame, and
	// flushes when the batching rule says so.
	step := func(s *aggSession, now time.Time) {
		for {
			if len(s.events) == 0 {
				s.events = gen.Session(now, 60)
				s.key = s.events[0].Session.String()
			}
			e := &s.events[0]
			s.events = s.events[1:]
			if s.w.Events() == 0 {
				s.oldest = now.Add(-s.lead)
				s.lead = 0
			}
			if err := s.w.Append(e); err != nil {
				b.Fatal(err)
			}
			if e.Kind == session.KindFrame {
				s.frames++
			}
			if perFrame || e.Kind == session.KindClose || s.w.Len() >= aggBatchBytes {
				flush(s)
			}
			if e.Kind == session.KindFrame || len(s.events) == 0 {
				return
			}
		}
	}

	b.ResetTimer()
	start := time.Now()
	t := time.NewTicker(aggTick)
	defer t.Stop()
	ticks := 0
	for now := range t.C {
		if now.Sub(start) >= aggFeed {
			break
		}
		ticks++
		for _, s := range sessions {
			step(s, now)
		}
		// The tap's flush ticker: batches whose oldest event is
		// FlushInterval old go out.
		for _, s := range sessions {
			if s.w.Events() > 0 && now.Sub(s.oldest) >= aggFlushInterval {
				flush(s)
			}
		}
	}
	for _, s := range sessions {
		flush(s)
	}
	fed := time.Since(start)
	if err := p.Close(ctx); err != nil {
		b.Fatalf("close producer: %v", err)
	}
	drained := time.Since(start) - fed
	b.StopTimer()

	m := promValues(b, set)
	records := m["preheat_kinesis_records_put_total"]
	users := m["preheat_kinesis_user_records_put_total"]
	dropped := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "preheat_kinesis_dropped_user_records_total") {
			dropped += v
		}
	}
	if records == 0 {
		b.Fatal("no Kinesis records put")
	}
	if dropped > 0 || int(users) != batches {
		b.Errorf("put %d batches, %v delivered, %v dropped", batches, users, dropped)
	}
	recBytes, recs := kb.total()
	if recs != int(records) {
		b.Errorf("counted %d Kinesis records accepted, metrics say %v", recs, records)
	}
	b.ReportMetric(float64(frames)/records, "frames/record")
	b.ReportMetric(float64(batches)/records, "batches/record")
	b.ReportMetric(float64(recBytes)/records, "bytes/record")
	b.ReportMetric(float64(frames)/fed.Seconds(), "frames/s")
	b.ReportMetric(float64(batchBytes)/fed.Seconds()/1e6, "MB/s")
	b.ReportMetric(drained.Seconds(), "drain-s")
	b.Logf("%d ticks in %v: %d frames in %d batches (%d bytes) -> %v Kinesis records (%d bytes); close took %v",
		ticks, fed.Round(time.Millisecond), frames, batches, batchBytes, records, recBytes, drained.Round(time.Millisecond))
}

// putBytes counts the Kinesis records that PutRecords calls got accepted,
// and their data bytes, from a middleware on the client.
type putBytes struct {
	mu      sync.Mutex
	bytes   int
	records int
}

func (c *putBytes) option(o *awskinesis.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("benchPutBytes", c.count), middleware.After)
	})
}

func (c *putBytes) count(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	req, ok := in.Parameters.(*awskinesis.PutRecordsInput)
	if !ok || err != nil {
		return out, md, err
	}
	res, ok := out.Result.(*awskinesis.PutRecordsOutput)
	if !ok || len(res.Records) != len(req.Records) {
		return out, md, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range res.Records {
		if r.ErrorCode == nil {
			c.records++
			c.bytes += len(req.Records[i].Data)
		}
	}
	return out, md, err
}

func (c *putBytes) total() (bytes, records int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.records
}

// promValues reads a metric set as Prometheus text: name with labels to
// value. Histogram series are included as they are written.
func promValues(b *testing.B, set *metrics.Set) map[string]float64 {
	b.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	m := make(map[string]float64)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			b.Fatalf("metric line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// benchLog sends the producer's warnings to the benchmark log.
type benchLog struct{ b *testing.B }

func (w benchLog) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
