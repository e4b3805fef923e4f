package wsbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/preheatdev/preheat/internal/corpus"
)

// LoadOptions configure Load. A nil *LoadOptions means the defaults.
type LoadOptions struct {
	// Conns is the number of connections. Default 64.
	Conns int
	// Rate is the aggregate rate in messages per second, spread evenly over
	// the connections (open loop: each connection sends on its own
	// schedule whether or not echoes have come back). Zero, the default,
	// means closed loop: each connection sends its next message as soon as
	// the previous one's echo has arrived, which saturates the target.
	Rate float64
	// Duration is how long messages are measured, after Warmup. Default 10s.
	Duration time.Duration
	// Warmup is how long messages are sent but not counted first.
	// Default 1s; negative means none.
	Warmup time.Duration
	// Seed seeds the message corpus; connection i uses Seed+i. Default 1.
	Seed uint64
	// Messages is how many distinct messages each connection prepares
	// before the run and sends in turn, so generating them costs nothing
	// while measuring. Default 256.
	Messages int
	// Compression offers permessage-deflate. Default false.
	Compression bool
	// MaxSamples bounds the round trip times kept, in samples; past it the
	// figures are computed from the first MaxSamples. Default 20,000,000.
	MaxSamples int
	// DialParallel is how many connections are dialled at once.
	// Default 64.
	DialParallel int
	// Queue bounds, in messages, how far an open-loop connection's echoes
	// may fall behind its sends before the sender waits. Default 1,024.
	Queue int
}

func (o *LoadOptions) withDefaults() LoadOptions {
	var c LoadOptions
	if o != nil {
		c = *o
	}
	if c.Conns <= 0 {
		c.Conns = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	switch {
	case c.Warmup < 0:
		c.Warmup = 0
	case c.Warmup == 0:
		c.Warmup = time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Messages <= 0 {
		c.Messages = 256
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = 20_000_000
	}
	if c.DialParallel <= 0 {
		c.DialParallel = 64
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	return c
}

// Latency summarizes round trip times, in microseconds.
type Latency struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean_us"`
	P50     float64 `json:"p50_us"`
	P90     float64 `json:"p90_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	Max     float64 `json:"max_us"`
}

// Result is what Load measured.
type Result struct {
	Target string `json:"target"`
	// Mode is "closed" (saturation) or "open" (fixed rate).
	Mode  string  `json:"mode"`
	Conns int     `json:"conns"`
	Rate  float64 `json:"rate,omitempty"`
	// Seconds is the measured window.
	Seconds float64 `json:"seconds"`
	// Messages were sent inside the window and echoed.
	Messages int64 `json:"messages"`
	// Total counts every message echoed, warm-up and connect messages
	// included: the work a proxy did during the whole run.
	Total          int64   `json:"total"`
	MessagesPerSec float64 `json:"messages_per_sec"`
	// MeanBytes is the mean payload size of the messages sent.
	MeanBytes float64 `json:"mean_bytes"`
	// Late counts open-loop sends that went out more than one interval
	// behind their schedule: the target, or the load generator, could not
	// keep up, and the round trips understate what a real client would
	// have waited.
	Late int64 `json:"late"`
	// Mismatched counts echoes that differed from what was sent.
	Mismatched int64   `json:"mismatched"`
	RTT        Latency `json:"rtt"`
}

// String is the human line for r.
func (r *Result) String() string {
	s := fmt.Sprintf("%s %s conns=%d: %d msgs in %.1fs = %.0f msg/s (%.0f B mean); rtt p50 %.0fµs p90 %.0fµs p99 %.0fµs p99.9 %.0fµs max %.0fµs",
		r.Target, r.Mode, r.Conns, r.Messages, r.Seconds, r.MessagesPerSec, r.MeanBytes,
		r.RTT.P50, r.RTT.P90, r.RTT.P99, r.RTT.P999, r.RTT.Max)
	if r.Mode == "open" {
		s += fmt.Sprintf("; target %.0f msg/s, %d late", r.Rate, r.Late)
	}
	if r.Mismatched > 0 {
		s += fmt.Sprintf("; %d MISMATCHED echoes", r.Mismatched)
	}
	return s
}

// loadConn is one connection's state and its findings.
type loadConn struct {
	c        *websocket.Conn
	msgs     [][]byte
	rtts     []time.Duration
	count    int64
	total    int64
	bytes    int64
	late     int64
	mismatch int64
}

// Load dials opts.Conns connections to the echo server at target (a ws://
// URL on loopback), sends each a connect message, and then drives them
// closed or open loop for Warmup plus Duration. Any connection failing fails
// the run.
func Load(ctx context.Context, target string, opts *LoadOptions) (*Result, error) {
	o := opts.withDefaults()
	if err := CheckLoopbackURL(ctx, target); err != nil {
		return nil, err
	}
	conns := make([]*loadConn, o.Conns)
	defer func() {
		cs := make([]*websocket.Conn, 0, len(conns))
		for _, lc := range conns {
			if lc != nil && lc.c != nil {
				cs = append(cs, lc.c)
			}
		}
		closeAll(context.WithoutCancel(ctx), cs, o.DialParallel)
	}()
	perConn := o.MaxSamples / o.Conns
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.DialParallel)
	for i := range conns {
		g.Go(func() error {
			gen := corpus.New(o.Seed + uint64(i))
			lc := &loadConn{msgs: make([][]byte, o.Messages)}
			for j := range lc.msgs {
				lc.msgs[j] = gen.Query(gen.Kind())
			}
			c, err := dial(gctx, target, o.Compression)
			if err != nil {
				return err
			}
			lc.c = c
			conns[i] = lc
			if err := roundTrip(gctx, c, gen.Connect(), nil); err != nil {
				return fmt.Errorf("connect message: %w", err)
			}
			lc.total++
			lc.rtts = make([]time.Duration, 0, min(perConn, 1<<16))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}

	start := time.Now()
	from := start.Add(o.Warmup)
	until := from.Add(o.Duration)
	// Reads get a grace period past the end for echoes still in flight.
	rctx, cancel := context.WithDeadline(ctx, until.Add(10*time.Second))
	defer cancel()
	g, gctx = errgroup.WithContext(rctx)
	for i, lc := range conns {
		if o.Rate > 0 {
			interval := time.Duration(float64(time.Second) * float64(o.Conns) / o.Rate)
			// Stagger the connections' schedules over one interval.
			first := start.Add(interval * time.Duration(i) / time.Duration(o.Conns))
			g.Go(func() error { return lc.openLoop(gctx, first, interval, from, until, perConn, o.Queue) })
		} else {
			g.Go(func() error { return lc.closedLoop(gctx, from, until, perConn) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	r := &Result{Target: target, Mode: "closed", Conns: o.Conns, Seconds: o.Duration.Seconds()}
	if o.Rate > 0 {
		r.Mode, r.Rate = "open", o.Rate
	}
	var all []time.Duration
	var bytes int64
	for _, lc := range conns {
		r.Messages += lc.count
		r.Total += lc.total
		r.Late += lc.late
		r.Mismatched += lc.mismatch
		bytes += lc.bytes
		all = append(all, lc.rtts...)
	}
	r.MessagesPerSec = float64(r.Messages) / r.Seconds
	if r.Messages > 0 {
		r.MeanBytes = float64(bytes) / float64(r.Messages)
	}
	r.RTT = summarize(all)
	if r.Mismatched > 0 {
		return r, fmt.Errorf("%d echoes differed from what was sent", r.Mismatched)
	}
	return r, nil
}

func dial(ctx context.Context, target string, compression bool) (*websocket.Conn, error) {
	mode := websocket.CompressionDisabled
	if compression {
		mode = websocket.CompressionContextTakeover
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, target, &websocket.DialOptions{CompressionMode: mode})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// roundTrip sends msg and reads its echo into buf (which may be nil).
func roundTrip(ctx context.Context, c *websocket.Conn, msg, buf []byte) error {
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return err
	}
	_, err := readEcho(ctx, c, buf)
	return err
}

func readEcho(ctx context.Context, c *websocket.Conn, buf []byte) ([]byte, error) {
	_, rd, err := c.Reader(ctx)
	if err != nil {
		return buf, err
	}
	return readAll(rd, buf[:0])
}

func (lc *loadConn) record(t0 time.Time, rtt time.Duration, from, until time.Time, n, max int) {
	lc.total++
	if t0.Before(from) || !t0.Before(until) {
		return
	}
	lc.count++
	lc.bytes += int64(n)
	if len(lc.rtts) < max {
		lc.rtts = append(lc.rtts, rtt)
	}
}

func (lc *loadConn) closedLoop(ctx context.Context, from, until time.Time, max int) error {
	buf := make([]byte, 0, 4096)
	for i := 0; ; i++ {
		msg := lc.msgs[i%len(lc.msgs)]
		t0 := time.Now()
		if !t0.Before(until) {
			return nil
		}
		if err := lc.c.Write(ctx, websocket.MessageText, msg); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		var err error
		buf, err = readEcho(ctx, lc.c, buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		rtt := time.Since(t0)
		if !bytes.Equal(buf, msg) {
			lc.mismatch++
		}
		lc.record(t0, rtt, from, until, len(msg), max)
	}
}

// openLoop sends message k at first+k*interval, until until, and a reader
// matches echoes to sends in order (an echo server answers in order).
func (lc *loadConn) openLoop(ctx context.Context, first time.Time, interval time.Duration, from, until time.Time, max, queue int) error {
	type sent struct {
		t0  time.Time
		msg []byte
	}
	inflight := make(chan sent, queue)
	var late atomic.Int64
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		defer close(inflight)
		for k := 0; ; k++ {
			due := first.Add(time.Duration(k) * interval)
			if !due.Before(until) {
				return
			}
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					werr = ctx.Err()
					return
				}
			}
			msg := lc.msgs[k%len(lc.msgs)]
			t0 := time.Now()
			if t0.Sub(due) > interval {
				late.Add(1)
			}
			select {
			case inflight <- sent{t0, msg}:
			case <-ctx.Done():
				werr = ctx.Err()
				return
			}
			if err := lc.c.Write(ctx, websocket.MessageText, msg); err != nil {
				werr = fmt.Errorf("write: %w", err)
				return
			}
		}
	})
	buf := make([]byte, 0, 4096)
	var rerr error
	for s := range inflight {
		var err error
		buf, err = readEcho(ctx, lc.c, buf)
		if err != nil {
			rerr = fmt.Errorf("read: %w", err)
			lc.c.CloseNow() // unblocks the writer
			for range inflight {
			}
			break
		}
		rtt := time.Since(s.t0)
		if !bytes.Equal(buf, s.msg) {
			lc.mismatch++
		}
		lc.record(s.t0, rtt, from, until, len(s.msg), max)
	}
	wg.Wait()
	lc.late = late.Load()
	return errors.Join(rerr, werr)
}

// summarize computes the mean and nearest-rank percentiles of d, sorting it.
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	rank := func(p float64) float64 {
		i := int(p*float64(len(d))+0.999999) - 1
		return us(d[max(0, min(i, len(d)-1))])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{
		Samples: len(d),
		Mean:    us(sum) / float64(len(d)),
		P50:     rank(0.50),
		P90:     rank(0.90),
		P99:     rank(0.99),
		P999:    rank(0.999),
		Max:     us(d[len(d)-1]),
	}
}
