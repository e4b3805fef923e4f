package replaycache_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func TestMain(m *testing.M) {
	// package session's zstd encoder and decoder are made on first use and
	// hold channels: make them outside any synctest bubble.
	evs := corpusSessions(0, time.Now(), 1, 3)[0]
	data, err := session.AppendBatch(nil, evs)
	if err == nil {
		_, err = session.DecodeBatch(data, nil)
	}
	if err != nil {
		panic(err)
	}
	leaktest.Main(m)
}

var quiet = slog.New(slog.DiscardHandler)

// newLog creates a directory log in a temporary directory and returns it
// with its producer, closed when the test ends.
func newLog(t *testing.T, opts *dirlog.ProducerOptions) (string, *dirlog.Producer) {
	t.Helper()
	dir := t.TempDir()
	o := dirlog.ProducerOptions{Partitions: 4, Logger: quiet}
	if opts != nil {
		o = *opts
		o.Logger = quiet
	}
	p, err := dirlog.NewProducer(dir, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return dir, p
}

// put encodes evs as one batch and puts it.
func put(t testing.TB, p stream.Producer, evs []session.Event) {
	t.Helper()
	data, err := session.AppendBatch(nil, evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(context.Background(), evs[0].Session.String(), data); err != nil {
		t.Fatal(err)
	}
}

func flush(t testing.TB, p stream.Producer) {
	t.Helper()
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// batches cuts evs into consecutive batches of 1 to max events.
func batches(rng *rand.Rand, evs []session.Event, max int) [][]session.Event {
	var out [][]session.Event
	for len(evs) > 0 {
		n := min(1+rng.IntN(max), len(evs))
		out = append(out, evs[:n])
		evs = evs[n:]
	}
	return out
}

// cacheRun is a cache reading a directory log in the background.
type cacheRun struct {
	*replaycache.Cache
	metrics *metrics.Set
	cancel  context.CancelFunc
	done    chan error
}

// startCache opens a consumer on dir at start and runs a cache over it
// until the test ends (or, with start.StopAtEnd, until the end of the log).
func startCache(t *testing.T, dir string, start stream.Start, opts *replaycache.Options) *cacheRun {
	t.Helper()
	cons, err := dirlog.NewConsumer(dir, start, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	o := replaycache.Options{}
	if opts != nil {
		o = *opts
	}
	o.Logger = quiet
	o.Metrics = metrics.NewSet()
	ctx, cancel := context.WithCancel(context.Background())
	r := &cacheRun{Cache: replaycache.New(cons, &o), metrics: o.Metrics, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cons.Close()
	})
	return r
}

// wait waits for Run to return (a consumer with StopAtEnd).
func (r *cacheRun) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return at the end of the log")
	}
}

// counter returns the value of a metric of the cache's set.
func (r *cacheRun) counter(name string) int {
	var buf bytes.Buffer
	r.metrics.WritePrometheus(&buf)
	for line := range bytes.Lines(buf.Bytes()) {
		var v float64
		if rest, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			fmt.Sscan(string(rest), &v)
			return int(v)
		}
	}
	return 0
}

// decodeView decodes every batch of a view.
func decodeView(t testing.TB, v replaycache.View) []session.Event {
	t.Helper()
	var evs []session.Event
	for _, b := range v.Batches {
		var err error
		if evs, err = session.DecodeBatch(b, evs); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// sameEvents fails unless got are the events of want, in order.
func sameEvents(t testing.TB, got, want []session.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("session %s: got %d events, want %d", want[0].Session, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Session != w.Session || g.Seq != w.Seq || g.Kind != w.Kind || g.Direction != w.Direction ||
			g.Offset != w.Offset || !bytes.Equal(g.Payload, w.Payload) || g.Code != w.Code {
			t.Fatalf("session %s event %d: got %+v, want %+v", w.Session, i, g, w)
		}
		if w.Kind == session.KindOpen && (g.Open.Route != w.Open.Route || !g.Open.Start.Equal(w.Open.Start)) {
			t.Fatalf("session %s: open %+v, want %+v", w.Session, g.Open, w.Open)
		}
	}
}

// opSession builds a session whose client sends one query of each op.
func opSession(start time.Time, route string, ops ...string) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: route, Start: start}}}
	add := func(e session.Event) {
		e.Session, e.Seq = id, uint64(len(evs))
		e.Offset = time.Duration(len(evs)) * time.Millisecond
		evs = append(evs, e)
	}
	for i, op := range ops {
		add(session.Event{Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text,
			Payload: fmt.Appendf(nil, `{"type":"query","id":%d,"op":%q,"params":{"op":"nested"}}`, i, op)})
		add(session.Event{Kind: session.KindFrame, Direction: session.ServerToClient, Opcode: session.Text,
			Payload: fmt.Appendf(nil, `{"type":"result","id":%d,"data":[]}`, i)})
	}
	add(session.Event{Kind: session.KindClose, Code: 1000, ClosedBy: session.SideClient})
	return evs
}

// corpusSessions returns n corpus sessions starting at start.
func corpusSessions(seed uint64, start time.Time, n, queries int) [][]session.Event {
	start = start.Truncate(time.Microsecond) // the wire's precision
	g := corpus.New(seed)
	out := make([][]session.Event, n)
	for i := range out {
		out[i] = g.Session(start, queries)
	}
	return out
}
