package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/wsbench"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// stallRig is a capturing tap in front of an echo server whose capture
// worker blocks on the first session it is given, until released.
type stallRig struct {
	t       *testing.T
	dir     string
	prod    *dirlog.Producer
	rec     *Recorder
	tap     *Tap
	srv     *httptest.Server
	victim  atomic.Pointer[Recording]
	stalled chan struct{} // closed once a worker blocks on the victim
	release chan struct{} // closing it lets the worker go on
	relOnce sync.Once
	stopped bool
}

func newStallRig(t *testing.T, tapOpts TapOptions, recOpts RecorderOptions) *stallRig {
	t.Helper()
	up := httptest.NewServer(wsbench.NewEchoHandler(&wsbench.EchoOptions{ReadLimit: 8 << 20}))
	t.Cleanup(up.Close)
	r := &stallRig{t: t, dir: t.TempDir(), stalled: make(chan struct{}), release: make(chan struct{})}
	var err error
	if r.prod, err = dirlog.NewProducer(r.dir, nil); err != nil {
		t.Fatal(err)
	}
	recOpts.TapID = "test-tap"
	if recOpts.FlushInterval == 0 {
		recOpts.FlushInterval = 50 * time.Millisecond
	}
	if r.rec, err = NewRecorder(r.prod, DefaultPolicy(), &recOpts); err != nil {
		t.Fatal(err)
	}
	if r.tap, err = NewTap(up.URL, r.rec, &tapOpts); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	r.tap.capture.hook = func(s *Recording) {
		r.victim.CompareAndSwap(nil, s)
		if r.victim.Load() != s {
			return
		}
		once.Do(func() { close(r.stalled) })
		<-r.release
	}
	r.srv = httptest.NewServer(r.tap)
	t.Cleanup(r.stop)
	return r
}

func (r *stallRig) url() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/sync" }

func (r *stallRig) unstall() { r.relOnce.Do(func() { close(r.release) }) }

func (r *stallRig) stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	r.unstall()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.srv.Close()
	if err := r.tap.Shutdown(ctx); err != nil {
		r.t.Errorf("tap shutdown: %v", err)
	}
	if err := r.rec.Close(ctx); err != nil {
		r.t.Errorf("recorder close: %v", err)
	}
	if err := r.prod.Close(ctx); err != nil {
		r.t.Errorf("producer close: %v", err)
	}
}

// sessions stops the rig and returns every recorded session's events.
func (r *stallRig) sessions() map[session.ID][]session.Event {
	r.t.Helper()
	r.stop()
	c, err := dirlog.NewConsumer(r.dir, stream.Start{StopAtEnd: true}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(map[session.ID][]session.Event)
	for {
		rec, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.t.Fatal(err)
		}
		evs, err := session.DecodeBatch(rec.Data, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, e := range evs {
			out[e.Session] = append(out[e.Session], e)
		}
	}
	for id, evs := range out {
		for i, e := range evs {
			if e.Seq != uint64(i) {
				r.t.Fatalf("session %s: event %d has seq %d", id, i, e.Seq)
			}
		}
	}
	return out
}

func metric(set *metrics.Set, name string) float64 {
	var b strings.Builder
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// echoes sends n messages of size bytes, numbered, on c and checks that
// each comes back unchanged.
func echoes(ctx context.Context, c *websocket.Conn, name string, n, size int) error {
	for i := range n {
		msg := bytes.Repeat([]byte{'a' + byte(i%26)}, size)
		copy(msg, fmt.Sprintf("%s %d ", name, i))
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return fmt.Errorf("%s: write %d: %w", name, i, err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("%s: read %d: %w", name, i, err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("%s: echo %d changed: %.40q, sent %.40q", name, i, got, msg)
		}
	}
	return nil
}

// TestTapForwardsWhileCaptureStalls: the capture of one session is stalled
// completely (its worker blocks inside the hand-off). That session's
// connection and four others through the same tap (on one event loop, or
// with a goroutine per direction) keep echoing, every byte unchanged; the
// stalled session's queue reaches its bound, so its capture is cut and
// counted at once, while it is still stalled; the other sessions, which
// send less than their bound, are captured whole by the other worker; and
// once the worker goes on, the stalled session is recorded as cut, a
// prefix of what it sent ending with the tap's close.
func TestTapForwardsWhileCaptureStalls(t *testing.T) {
	for _, core := range []struct {
		name string
		opts TapOptions
	}{
		{"event_loop", TapOptions{EventLoops: 1}},
		{"goroutines", TapOptions{NoEventLoop: true}},
	} {
		t.Run(core.name, func(t *testing.T) { forwardsWhileCaptureStalls(t, core.opts) })
	}
}

func forwardsWhileCaptureStalls(t *testing.T, opts TapOptions) {
	const (
		others   = 4
		trips    = 100
		size     = 4 << 10          // the victim's messages: 400 KiB, past its bound
		small    = 100              // the others': 20 KB both ways, in less than half their bound even if never drained
		bound    = 128 << 10        // CaptureBacklogBytes
		deadline = 30 * time.Second // generous: this checks progress, not speed
	)
	opts.CaptureWorkers, opts.CaptureBacklogBytes = 2, bound
	r := newStallRig(t, opts, RecorderOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(ctx, r.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		return c
	}

	victim := dial()
	defer victim.CloseNow()
	if err := echoes(ctx, victim, "victim", 1, small); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.stalled:
	case <-ctx.Done():
		t.Fatal("the victim's capture never reached the hook")
	}

	// While the victim's capture is stalled, it and the others echo on.
	errs := make(chan error, others+1)
	go func() { errs <- echoes(ctx, victim, "victim", trips, size) }()
	conns := make([]*websocket.Conn, others)
	for i := range conns {
		conns[i] = dial()
		defer conns[i].CloseNow()
		go func() { errs <- echoes(ctx, conns[i], fmt.Sprintf("other%d", i), trips, small) }()
	}
	for range others + 1 {
		if err := <-errs; err != nil {
			t.Fatalf("forwarding waited on a stalled capture: %v", err)
		}
	}
	// The victim sent 400 KiB while stalled, past its bound: cut, and
	// counted before the worker went on.
	cutName := `preheat_tap_sessions_cut_total{reason="backlog"}`
	if n := metric(r.rec.Metrics(), cutName); n != 1 {
		t.Errorf("%s = %v while stalled, want 1", cutName, n)
	}
	// The others' queues drain; the stalled one holds only the block of
	// the chunk its worker is stuck on.
	for q := 0.0; ; time.Sleep(10 * time.Millisecond) {
		if q = metric(r.tap.Metrics(), "preheat_tap_capture_queued_bytes"); q <= largeBlock {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%v bytes still queued for capture while stalled, want at most one block", q)
		}
	}
	r.unstall()
	for _, c := range append(conns, victim) {
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
	}

	sessions := r.sessions()
	if len(sessions) != others+1 {
		t.Fatalf("%d sessions recorded, want %d", len(sessions), others+1)
	}
	victimID := r.victim.Load().ID()
	for id, evs := range sessions {
		last := evs[len(evs)-1]
		var sent []string
		for _, e := range evs {
			if e.Kind == session.KindFrame && e.Direction == session.ClientToServer {
				sent = append(sent, string(e.Payload[:min(len(e.Payload), 12)]))
			}
		}
		if id == victimID {
			if last.Kind != session.KindClose || last.ClosedBy != session.SideTap || last.Reason != "preheat: backlog" {
				t.Errorf("stalled session ends with %v by %v (%q), want the tap's close for the backlog", last.Kind, last.ClosedBy, last.Reason)
			}
			if len(sent) > trips+1 {
				t.Errorf("stalled session recorded %d client messages, want a prefix of %d", len(sent), trips+1)
			}
			for i, p := range sent {
				if want := fmt.Sprintf("victim %d ", max(i-1, 0)); i > 0 && !strings.HasPrefix(p, want) {
					t.Errorf("stalled session's message %d is %q, want %q...", i, p, want)
					break
				}
			}
			continue
		}
		if last.Kind != session.KindClose || last.ClosedBy != session.SideClient {
			t.Errorf("session %s ends with %v by %v (%q), want the client's close", id, last.Kind, last.ClosedBy, last.Reason)
		}
		if len(sent) != trips {
			t.Errorf("session %s recorded %d client messages, want %d", id, len(sent), trips)
		}
	}
	if q := metric(r.tap.Metrics(), "preheat_tap_capture_queued_bytes"); q != 0 {
		t.Errorf("%v bytes still queued for capture after every session ended", q)
	}
	if st := r.rec.Status(); st.BufferBytes != 0 {
		t.Errorf("recorder holds %d bytes after close", st.BufferBytes)
	}
}

// TestHandoffCutsAtBudget: a session whose queued chunks would take the
// recorder past its budget has its capture cut for the budget, not queued
// without bound; every block goes back, and the budget with it.
func TestHandoffCutsAtBudget(t *testing.T) {
	r := newStallRig(t, TapOptions{EventLoops: 1, CaptureWorkers: 1, CaptureBacklogBytes: 8 << 20},
		RecorderOptions{BudgetBytes: 512 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, r.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if err := echoes(ctx, c, "victim", 1, 1<<10); err != nil {
		t.Fatal(err)
	}
	<-r.stalled
	// 2 MiB forwarded while stalled, past the 512 KiB budget.
	if err := echoes(ctx, c, "victim", 64, 32<<10); err != nil {
		t.Fatal(err)
	}
	if n := metric(r.rec.Metrics(), `preheat_tap_sessions_cut_total{reason="budget"}`); n != 1 {
		t.Errorf("sessions cut for the budget while stalled: %v, want 1", n)
	}
	if used := r.rec.Status().BufferBytes; used > 512<<10 {
		t.Errorf("recorder holds %d bytes, past its budget", used)
	}
	r.unstall()
	c.Close(websocket.StatusNormalClosure, "")
	sessions := r.sessions()
	evs := sessions[r.victim.Load().ID()]
	if len(evs) == 0 {
		t.Fatal("stalled session not recorded")
	}
	if last := evs[len(evs)-1]; last.ClosedBy != session.SideTap || last.Reason != "preheat: budget" {
		t.Errorf("stalled session ends by %v (%q), want the tap's close for the budget", last.ClosedBy, last.Reason)
	}
	if q := metric(r.tap.Metrics(), "preheat_tap_capture_queued_bytes"); q != 0 {
		t.Errorf("%v bytes still queued for capture", q)
	}
	if st := r.rec.Status(); st.BufferBytes != 0 {
		t.Errorf("recorder holds %d bytes after close", st.BufferBytes)
	}
}

// TestHandoffBoundsItems: a stalled session's queue of tiny chunks (one
// byte each, a client writing with no delay) reaches its bound through the
// items that describe them, not only through the bytes they copy: 10,000
// bytes take three 4 KiB blocks, but 10,000 items would take 640 KB.
func TestHandoffBoundsItems(t *testing.T) {
	prod, err := dirlog.NewProducer(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	rec, err := NewRecorder(prod, DefaultPolicy(), &RecorderOptions{TapID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())
	var wg sync.WaitGroup
	const bound = 64 << 10
	h := newHandoff(1, bound, &wg)
	stalled, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.hook = func(*Recording) {
		once.Do(func() { close(stalled) })
		<-release
	}
	f := h.begin(rec.Begin(httptest.NewRequest("GET", "/sync", nil), nil))
	msg := append([]byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x27, 0x10, 0, 0, 0, 0}, bytes.Repeat([]byte{'a'}, 10000)...)
	f.see(0, msg[:1], time.Now())
	<-stalled
	most := int64(0)
	for i := 1; i < len(msg); i++ {
		f.see(0, msg[i:i+1], time.Now())
		most = max(most, h.queued.Load())
	}
	if n := metric(rec.Metrics(), `preheat_tap_sessions_cut_total{reason="backlog"}`); n != 1 {
		t.Errorf("sessions cut for their backlog: %v, want 1", n)
	}
	if most > bound {
		t.Errorf("%d bytes queued at most, past the bound of %d", most, bound)
	}
	close(release)
	f.end(session.SideClient)
	wg.Wait()
	if q := h.queued.Load(); q != 0 {
		t.Errorf("%d bytes still queued after the end", q)
	}
}

// BenchmarkHandoffSee measures what capture costs the goroutine forwarding
// a session's bytes: copying one 200-byte masked text frame into the
// session's queue (one of 64 sessions in turn; a session is ended and
// another begun every 100 frames), with a worker capturing behind. After
// each round of 6,400 frames the clock stops while the worker and the
// exporters catch up, so that no session is cut (a cut session costs
// nothing to feed); every frame must be captured. ns/op is the forwarding
// side's cost alone.
func BenchmarkHandoffSee(b *testing.B) {
	prod, err := dirlog.NewProducer(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close(b.Context())
	rec, err := NewRecorder(prod, DefaultPolicy(), &RecorderOptions{TapID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close(b.Context())
	var wg sync.WaitGroup
	h := newHandoff(1, 8<<20, &wg)
	req := httptest.NewRequest("GET", "http://tap/sync", nil)
	payload := bytes.Repeat([]byte(`{"op":"get","id":1}`), 10)
	key := [4]byte{1, 2, 3, 4}
	msg := append([]byte{0x81, 0x80 | 126, 0, byte(len(payload))}, key[:]...)
	for i, c := range payload {
		msg = append(msg, c^key[i%4])
	}
	var feeds [64]*feed
	begin := func(i int) {
		if feeds[i] != nil {
			feeds[i].end(session.SideClient)
		}
		feeds[i] = h.begin(rec.Begin(req, nil))
	}
	for i := range feeds {
		begin(i)
	}
	at := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		feeds[i%len(feeds)].see(0, msg, at)
		if i%len(feeds) == len(feeds)-1 && (i/len(feeds))%100 == 99 {
			b.StopTimer()
			for range 1000 {
				if h.queued.Load() == 0 && rec.used.Load() < rec.opts.BudgetBytes/4 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			for j := range feeds {
				begin(j)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	for _, f := range feeds {
		f.end(session.SideClient)
	}
	wg.Wait()
	var cut strings.Builder
	rec.Metrics().WritePrometheus(&cut)
	if strings.Contains(cut.String(), "preheat_tap_sessions_cut_total") {
		b.Fatalf("sessions were cut: the benchmark measured less than capturing every frame\n%s", cut.String())
	}
}
