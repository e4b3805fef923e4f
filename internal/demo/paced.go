package demo

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/corpus"
)

// PaceOptions configure Pace. A nil *PaceOptions is valid; a zero field
// means its default.
type PaceOptions struct {
	// Clients is how many clients are connected at once. Default 4.
	Clients int
	// Rate is the requests per second of all the clients together; each
	// sends at an even Rate/Clients. Default 600.
	Rate float64
	// Queries is the requests of each client session, after its connect.
	// Default 50.
	Queries int
	// QueriesOnly makes every request a query. Default false: every tenth
	// request of a session is a mutation, as real clients send.
	QueriesOnly bool
	// Record is where the requests are recorded as they are answered, so
	// that a caller can read them while Pace runs; Pace returns it.
	// Default a new record.
	Record *Requests
}

// Pace drives clients of the sync protocol of package corpus against the
// websocket server at url until ctx ends, and returns every request they
// timed. Unlike a Fleet, whose clients pause between an answer and their
// next request, Pace's clients send on a clock, as a server's users do,
// and it keeps each request's send time, so that the first requests a
// server answered can be told from the rest. seed picks the clients'
// generators: the same seed sends the same messages.
func Pace(ctx context.Context, url string, opts *PaceOptions, seed uint64) *Requests {
	var o PaceOptions
	if opts != nil {
		o = *opts
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Rate <= 0 {
		o.Rate = 600
	}
	if o.Queries <= 0 {
		o.Queries = 50
	}
	l := o.Record
	if l == nil {
		l = &Requests{}
	}
	var wg sync.WaitGroup
	for i := range o.Clients {
		wg.Go(func() {
			g := corpus.New(seed*1000 + uint64(i))
			tick := time.NewTicker(time.Duration(float64(time.Second) * float64(o.Clients) / o.Rate))
			defer tick.Stop()
			for ctx.Err() == nil {
				if err := pacedSession(ctx, url, &o, g, tick, l); err != nil && ctx.Err() == nil {
					l.AddErrors(1)
					select { // a refused dial must not spin
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	return l
}

// pacedSession runs one session of a Pace client: a connect, then
// o.Queries requests, one a tick.
func pacedSession(ctx context.Context, url string, o *PaceOptions, g *corpus.Generator, tick *time.Ticker, l *Requests) error {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(8 << 20)
	if err := c.Write(ctx, websocket.MessageText, g.Connect()); err != nil {
		return err
	}
	if _, err := AwaitID(ctx, c, 0); err != nil {
		return err
	}
	for q := range o.Queries {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		msg, write := g.Query(g.Kind()), false
		if q%10 == 9 && !o.QueriesOnly {
			msg, write = g.Mutation(), true
		}
		id := g.LastID()
		start := time.Now()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return unlessDone(ctx, err)
		}
		if _, err := AwaitID(ctx, c, id); err != nil {
			return unlessDone(ctx, err)
		}
		l.Add(Request{Sent: start, Latency: time.Since(start), Write: write})
	}
	return c.Close(websocket.StatusNormalClosure, "done")
}

// unlessDone returns err unless ctx has ended: a request cut short by the
// end of the run is not a failure.
func unlessDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Request is one timed request.
type Request struct {
	// Sent is when the request was written.
	Sent time.Time
	// Latency is from its write to its answer.
	Latency time.Duration
	// Write is set for a mutation.
	Write bool
}

// Requests is a record of timed requests and of how many client sessions
// failed. The zero value is an empty record; it is safe for concurrent use.
type Requests struct {
	mu     sync.Mutex
	rs     []Request
	errors atomic.Int64
}

// Add records a request.
func (l *Requests) Add(r Request) {
	l.mu.Lock()
	l.rs = append(l.rs, r)
	l.mu.Unlock()
}

// AddErrors counts n failed sessions.
func (l *Requests) AddErrors(n int64) { l.errors.Add(n) }

// Errors returns how many client sessions failed.
func (l *Requests) Errors() int64 { return l.errors.Load() }

// Len returns how many requests were recorded.
func (l *Requests) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rs)
}

// InOrder returns a copy of the requests in the order they were sent.
func (l *Requests) InOrder() []Request {
	l.mu.Lock()
	out := slices.Clone(l.rs)
	l.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Request) int { return a.Sent.Compare(b.Sent) })
	return out
}

// P99 returns the nearest-rank 99th percentile latency of the requests
// [from, to) in send order (to past the end means to the end), or 0 if
// there are none.
func (l *Requests) P99(from, to int) time.Duration {
	rs := l.InOrder()
	to = min(to, len(rs))
	if from >= to {
		return 0
	}
	ds := make([]time.Duration, 0, to-from)
	for _, r := range rs[from:to] {
		ds = append(ds, r.Latency)
	}
	return NearestRank(ds, 0.99)
}

// Between returns the latencies of the requests sent in [from, to).
func (l *Requests) Between(from, to time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, r := range l.rs {
		if !r.Sent.Before(from) && r.Sent.Before(to) {
			out = append(out, r.Latency)
		}
	}
	return out
}

// NearestRank returns the nearest-rank q quantile (0 to 1) of ds: of 200
// latencies, the 99th percentile is the third slowest. It returns 0 for
// none.
func NearestRank(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}
