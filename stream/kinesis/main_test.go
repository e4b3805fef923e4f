package kinesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/stream"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var streamSeq atomic.Int64

// newStream starts kinesalite and creates a stream with the given number
// of shards.
func newStream(t *testing.T, shards int) (*kinesalite.Server, string) {
	t.Helper()
	srv := kinesalite.Start(t)
	name := fmt.Sprintf("test-%d", streamSeq.Add(1))
	srv.CreateStream(t, name, shards)
	return srv, name
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testProducerOptions(t *testing.T) *ProducerOptions {
	return &ProducerOptions{
		Linger:               20 * time.Millisecond,
		BackoffBase:          10 * time.Millisecond,
		BackoffMax:           200 * time.Millisecond,
		ShardRefreshInterval: 500 * time.Millisecond,
		Logger:               testLogger(t),
		Metrics:              metrics.NewSet(),
	}
}

func testConsumerOptions(t *testing.T) *ConsumerOptions {
	return &ConsumerOptions{
		IdleInterval:      20 * time.Millisecond,
		ShardSyncInterval: 200 * time.Millisecond,
		BackoffBase:       10 * time.Millisecond,
		BackoffMax:        200 * time.Millisecond,
		Logger:            testLogger(t),
		Metrics:           metrics.NewSet(),
	}
}

func newProducer(t *testing.T, c *awskinesis.Client, name string, o *ProducerOptions) *Producer {
	t.Helper()
	p, err := NewProducer(c, name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// sent is what a test put: per key, the payloads in order.
type sent struct {
	mu   sync.Mutex
	keys map[string][][]byte
}

func (s *sent) add(key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string][][]byte)
	}
	s.keys[key] = append(s.keys[key], data)
}

func (s *sent) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.keys {
		n += len(v)
	}
	return n
}

func sessionKey(i int) string { return fmt.Sprintf("%032x", uint64(i)*0x9E3779B97F4A7C15) }

// payload returns a random payload that names its key and index, so a test
// can tell records apart and check their order.
func payload(rng *rand.Rand, key string, i int, maxLen int) []byte {
	head := fmt.Sprintf("%s/%06d/", key, i)
	b := make([]byte, len(head)+rng.IntN(maxLen))
	copy(b, head)
	for j := len(head); j < len(b); j++ {
		b[j] = byte(rng.Uint32())
	}
	return b
}

// putMany puts perKey records for each of keys keys, one goroutine per key
// so that keys interleave, and records them in s.
func putMany(t *testing.T, p *Producer, s *sent, keys, perKey, maxLen, seed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(k)))
			key := sessionKey(k)
			for i := range perKey {
				d := payload(rng, key, seed*1_000_000+i, maxLen)
				s.add(key, d)
				if err := p.Put(ctx, key, d); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put: %v", err)
	}
}

// readAll reads until io.EOF.
func readAll(t *testing.T, c *Consumer) []stream.Record {
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
			t.Fatalf("next after %d records: %v", len(out), err)
		}
		out = append(out, r)
	}
}

func newConsumer(t *testing.T, cl *awskinesis.Client, name string, start stream.Start, o *ConsumerOptions) *Consumer {
	t.Helper()
	c, err := NewConsumer(cl, name, start, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkSameSet checks that got holds exactly the records in s, each once,
// in any order, and returns per key the put index of each record read.
func checkSameSet(t *testing.T, s *sent, got []stream.Record) map[string][]int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	index := make(map[string]int) // data → put index
	for _, list := range s.keys {
		for i, d := range list {
			index[string(d)] = i
		}
	}
	seen := make(map[string]bool)
	order := make(map[string][]int)
	for _, r := range got {
		i, ok := index[string(r.Data)]
		if !ok {
			t.Fatalf("read a record that was not put: %s %s %.40q", r.Partition, r.Position, r.Data)
		}
		if seen[string(r.Data)] {
			t.Fatalf("read a record twice: %s %s %.40q", r.Partition, r.Position, r.Data)
		}
		seen[string(r.Data)] = true
		order[r.Key] = append(order[r.Key], i)
	}
	if len(seen) != len(index) {
		t.Fatalf("read %d distinct records, put %d", len(seen), len(index))
	}
	return order
}

// checkExactly checks that got holds exactly the records in s, each once,
// in put order per key.
func checkExactly(t *testing.T, s *sent, got []stream.Record) {
	t.Helper()
	byKey := make(map[string][][]byte)
	for _, r := range got {
		if !bytes.HasPrefix(r.Data, []byte(r.Key+"/")) {
			t.Fatalf("record at %s %s has key %q but data %.40q", r.Partition, r.Position, r.Key, r.Data)
		}
		byKey[r.Key] = append(byKey[r.Key], r.Data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(byKey) != len(s.keys) {
		t.Errorf("read %d keys, put %d", len(byKey), len(s.keys))
	}
	for key, want := range s.keys {
		have := byKey[key]
		if len(have) != len(want) {
			t.Errorf("key %s: read %d records, put %d", key, len(have), len(want))
			continue
		}
		for i := range want {
			if !bytes.Equal(have[i], want[i]) {
				t.Errorf("key %s: record %d differs: read %.40q, put %.40q", key, i, have[i], want[i])
				break
			}
		}
	}
}

func counter(set *metrics.Set, name string) uint64 {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n float64
			fmt.Sscan(v, &n)
			return uint64(n)
		}
	}
	return 0
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
