package demo

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/corpus"
)

// FleetOptions configure a Fleet. A nil *FleetOptions is valid; a zero
// field means its default.
type FleetOptions struct {
	// Clients is how many clients are connected at once. Default 16.
	Clients int
	// Queries is the queries of each client session. Default 20.
	Queries int
	// Think is each client's pause between a result and its next query.
	// Default 0: none.
	Think time.Duration
}

// Fleet is a fleet of synthetic clients of the sync protocol of package
// corpus: each runs sessions of a connect and queries (every tenth a
// mutation), awaiting each answer and pausing between them, and the fleet
// records their request latencies. The demo drives its servers with one;
// the JVM tests capture the sessions of one.
type Fleet struct {
	url string
	o   FleetOptions
	lat *Latency
}

// NewFleet returns a fleet of clients of the websocket server at url.
func NewFleet(url string, opts *FleetOptions) *Fleet {
	var o FleetOptions
	if opts != nil {
		o = *opts
	}
	if o.Clients <= 0 {
		o.Clients = 16
	}
	if o.Queries <= 0 {
		o.Queries = 20
	}
	return &Fleet{url: url, o: o, lat: newLatency()}
}

// Latency is the fleet's record: its latencies so far, how many sessions
// it completed and how many failed.
func (f *Fleet) Latency() *Latency { return f.lat }

// Run drives the clients until ctx ends and returns their latencies. seed
// picks the clients' generators: the same seed sends the same messages.
func (f *Fleet) Run(ctx context.Context, seed uint64) *Latency {
	var wg sync.WaitGroup
	for i := range f.o.Clients {
		wg.Go(func() {
			g := corpus.New(seed*1000 + uint64(i))
			for ctx.Err() == nil {
				if err := f.session(ctx, g); err != nil && ctx.Err() == nil {
					f.lat.errors.Add(1)
					select { // a refused dial must not spin
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	return f.lat
}

func (f *Fleet) session(ctx context.Context, g *corpus.Generator) error {
	c, _, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	if err := c.Write(ctx, websocket.MessageText, g.Connect()); err != nil {
		return err
	}
	if _, err := AwaitID(ctx, c, 0); err != nil {
		return err
	}
	for q := range f.o.Queries {
		msg := g.Query(g.Kind())
		if q%10 == 9 {
			msg = g.Mutation() // real clients change things; warm-up must not
		}
		id := g.LastID()
		start := time.Now()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return err
		}
		if _, err := AwaitID(ctx, c, id); err != nil {
			return err
		}
		f.lat.record(time.Since(start))
		if f.o.Think > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(f.o.Think):
			}
		}
	}
	f.lat.sessions.Add(1)
	return c.Close(websocket.StatusNormalClosure, "done")
}

// AwaitID reads from c until the reply with the given id, skipping pushed
// updates, and returns it.
func AwaitID(ctx context.Context, c *websocket.Conn, id int) ([]byte, error) {
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		var m struct {
			ID *int `json:"id"`
		}
		if json.Unmarshal(msg, &m) == nil && m.ID != nil && *m.ID == id {
			return msg, nil
		}
	}
}

// Latency collects a fleet's request latencies, over the whole run and
// over a window that Window resets. It is safe for concurrent use.
type Latency struct {
	sessions atomic.Int64
	errors   atomic.Int64

	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	recent *hdrhistogram.Histogram
}

func newLatency() *Latency {
	return &Latency{all: hdrhistogram.New(1, int64(time.Minute), 2), recent: hdrhistogram.New(1, int64(time.Minute), 2)}
}

func (l *Latency) record(d time.Duration) {
	v := min(max(int64(d), 1), int64(time.Minute))
	l.mu.Lock()
	_ = l.all.RecordValue(v)
	_ = l.recent.RecordValue(v)
	l.mu.Unlock()
}

// Quantile returns the latency at percentile q (0 to 100) of every request.
func (l *Latency) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Duration(l.all.ValueAtQuantile(q))
}

// Count returns how many requests were answered.
func (l *Latency) Count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.TotalCount()
}

// Sessions returns how many client sessions ran to their end.
func (l *Latency) Sessions() int64 { return l.sessions.Load() }

// Errors returns how many client sessions failed.
func (l *Latency) Errors() int64 { return l.errors.Load() }

// Window returns the p50 and p99 of the requests answered since its last
// call.
func (l *Latency) Window() (p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p50, p99 = time.Duration(l.recent.ValueAtQuantile(50)), time.Duration(l.recent.ValueAtQuantile(99))
	l.recent.Reset()
	return p50, p99
}
