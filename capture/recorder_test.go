package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
	"github.com/preheatdev/preheat/stream/kinesis"
)

// gatedProducer stands for a stream that stalls (Kinesis throttling, a full
// producer buffer): Put waits for gate, or for its ctx, then writes to inner.
type gatedProducer struct {
	inner stream.Producer
	gate  chan struct{}
	inPut atomic.Int32
}

func (g *gatedProducer) Put(ctx context.Context, key string, data []byte) error {
	g.inPut.Add(1)
	defer g.inPut.Add(-1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.inner.Put(ctx, key, data)
}

func (g *gatedProducer) Flush(ctx context.Context) error { return g.inner.Flush(ctx) }
func (g *gatedProducer) Close(ctx context.Context) error { return g.inner.Close(ctx) }

// gatedRecorder returns a recorder exporting through a gatedProducer into a
// directory log in dir.
func gatedRecorder(t *testing.T, opts capture.RecorderOptions) (*capture.Recorder, *gatedProducer, *dirlog.Producer, string) {
	t.Helper()
	dir := t.TempDir()
	inner, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedProducer{inner: inner, gate: make(chan struct{})}
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	rec, err := capture.NewRecorder(g, capture.DefaultPolicy(), &opts)
	if err != nil {
		t.Fatal(err)
	}
	return rec, g, inner, dir
}

// randomBinaryFrame returns a masked binary message of n random bytes, all
// in 0x80-0xBF so that the default redactor cannot mistake them for a key
// name and blank them (they stay 75% incompressible).
func randomBinaryFrame(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = 0x80 | b[i]&0x3f
	}
	return frame(true, 2, b, true)
}

// TestRecorderBudgetHoldsWhileStreamDown kills the Kinesis endpoint mid-run
// behind a tap. Proxying goes on unaffected: every message is echoed, none
// waits on capture. Capture memory stays within its budget, and every
// session opened is accounted for as either recorded or dropped whole.
func TestRecorderBudgetHoldsWhileStreamDown(t *testing.T) {
	ks := kinesalite.Start(t)
	client := ks.Client(t)
	ks.CreateStream(t, "down", 1)
	pset := metrics.NewSet()
	prod, err := kinesis.NewProducer(client, "down", &kinesis.ProducerOptions{DeliveryTimeout: time.Minute, BufferBytes: 2 << 20, Metrics: pset})
	if err != nil {
		t.Fatal(err)
	}
	const budget = 256 << 10
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{
		FlushInterval: 20 * time.Millisecond, BudgetBytes: budget, QueueLength: 4, Exporters: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}})
	tap, err := capture.NewTap(up.URL, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(tap)
	defer front.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var maxUsed atomic.Int64
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if u := rec.Status().BufferBytes; u > maxUsed.Load() {
				maxUsed.Store(u)
			}
		}
	})

	// Incompressible messages, so that compressed batches fill the
	// producer's buffer and then the capture budget quickly.
	var msgs [][]byte
	for range 40 {
		raw := make([]byte, 3<<10)
		rand.Read(raw)
		msgs = append(msgs, []byte(base64.StdEncoding.EncodeToString(raw)))
	}
	run := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				c := dial(t, ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/sync", nil)
				for i, m := range msgs {
					start := time.Now()
					if err := c.Write(ctx, websocket.MessageText, m); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					_, got, err := c.Read(ctx)
					if err != nil || string(got) != string(m) {
						t.Errorf("message %d: echo %d bytes, %v", i, len(got), err)
						return
					}
					// A liveness bound, not a speed assertion: no message
					// may wait on the dead stream.
					if d := time.Since(start); d > 5*time.Second {
						t.Errorf("message %d took %v", i, d)
					}
				}
				c.Close(websocket.StatusNormalClosure, "")
			})
		}
		wg.Wait()
	}
	// Sessions come in waves: the first after the stream dies fill the
	// budget (they are cut when it runs out); later ones meet a full budget
	// and are dropped whole at their start.
	const before, waves, perWave = 5, 4, 10
	const after = waves * perWave
	run(before)
	ks.Stop()
	for range waves {
		run(perWave)
	}
	close(stopWatch)
	watch.Wait()

	// The stream stays down: shutting down gives up on what is pending,
	// by its deadline.
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	tap.Shutdown(sctx)
	rec.Close(sctx)
	prod.Close(sctx)

	recorded := counter(t, rec, "preheat_tap_sessions_recorded_total")
	dropped := counter(t, rec, `preheat_tap_sessions_dropped_total{reason="budget"}`)
	if recorded+dropped != before+after {
		t.Fatalf("recorded %v + dropped %v != %d sessions opened", recorded, dropped, before+after)
	}
	// The budget shows as sessions dropped at their start or cut when it
	// ran out; which, depends on how the waves overlap with the producer
	// filling its buffer.
	cut := counter(t, rec, `preheat_tap_sessions_cut_total{reason="budget"}`) + counter(t, rec, `preheat_tap_sessions_cut_total{reason="queue_full"}`)
	if dropped+cut == 0 {
		var b strings.Builder
		pset.WritePrometheus(&b)
		rec.Metrics().WritePrometheus(&b)
		t.Log(b.String())
		t.Fatalf("no session dropped or cut with the stream down and a %d-byte budget", budget)
	}
	if cut > recorded {
		t.Fatalf("%v sessions cut, only %v recorded", cut, recorded)
	}
	if st := rec.Status(); st.Recording != 0 || st.BufferBytes != 0 {
		t.Fatalf("after Close: %d recordings, %d bytes still held", st.Recording, st.BufferBytes)
	}
	if m := maxUsed.Load(); m > budget+64<<10 {
		t.Fatalf("capture held %d bytes, budget %d", m, budget)
	}
	t.Logf("recorded %v, dropped %v, max buffer %d bytes", recorded, dropped, maxUsed.Load())
}

// TestRecorderStalledBatchFitsStreamRecord: while the exporter is stalled
// and its queue is full, a session's pending batch must not grow past what
// one stream record holds (stream.MaxRecordBytes). A larger batch would be
// refused by Put once the stream recovered, and the session would reach the
// stream with a hole in its sequence numbers (later batches, close included,
// still going out): half a session, which the design forbids.
func TestRecorderStalledBatchFitsStreamRecord(t *testing.T) {
	rec, g, inner, dir := gatedRecorder(t, capture.RecorderOptions{QueueLength: 1, Exporters: 1, FlushInterval: 20 * time.Millisecond})
	s := rec.Begin(httptest.NewRequest("GET", "/sync", nil), http.Header{})
	if s == nil {
		t.Fatal("session not recorded")
	}
	s.Client(randomBinaryFrame(200<<10), time.Now()) // flushed: the exporter takes it and stalls
	waitFor(t, "the exporter to stall", func() bool { return g.inPut.Load() == 1 })
	s.Client(randomBinaryFrame(200<<10), time.Now()) // flushed into the queue, now full
	for range 10 {
		s.Client(randomBinaryFrame(200<<10), time.Now()) // pending: 2 MiB in one batch
	}
	close(g.gate) // the stream recovers
	waitFor(t, "the backlog to be exported", func() bool { return rec.Status().BufferBytes == 0 })
	s.Client(randomBinaryFrame(1<<10), time.Now())
	s.End(session.SideClient)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, rec, "preheat_tap_batches_failed_total"); n != 0 {
		t.Errorf("%v batches failed once the stream was back (a batch grew past stream.MaxRecordBytes)", n)
	}
	readSessions(t, dir) // fails on the sequence gap
}

// TestRecorderSurvivesBatchAtEncodeLimit: with MaxSessionBytes set above
// session.MaxBatchBytes (16 MiB), a stalled session's pending batch can grow
// towards that limit. When appending an event then fails, the session is
// cut, and its close event may not fit either: recording it must not cut the
// session again (appendLocked -> cutLocked -> closeLocked -> appendLocked
// without end), or the process dies of a stack overflow and takes every
// proxied connection with it. The recording runs in a child process with a
// 64 MiB stack limit, so that such a recursion fails fast, and the test
// checks that the child survives.
func TestRecorderSurvivesBatchAtEncodeLimit(t *testing.T) {
	if os.Getenv("PREHEAT_RECORDER_CHILD") == "encode-failure" {
		encodeFailureChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRecorderSurvivesBatchAtEncodeLimit$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PREHEAT_RECORDER_CHILD=encode-failure")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := string(out)
		if i := strings.Index(msg, "fatal error"); i >= 0 {
			msg = msg[max(0, i-200):min(len(msg), i+100)]
		} else if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		var frames []string
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(line, "capture.(*Recording)") && len(frames) < 8 {
				frames = append(frames, strings.TrimSpace(line))
			}
		}
		t.Fatalf("recording process died: %v\n%s\n...\n%s", err, msg, strings.Join(frames, "\n"))
	}
}

// encodeFailureChild is TestRecorderSurvivesBatchAtEncodeLimit's child
// process: it grows a stalled session's batch towards
// session.MaxBatchBytes.
func encodeFailureChild(t *testing.T) {
	debug.SetMaxStack(64 << 20)
	rec, g, inner, _ := gatedRecorder(t, capture.RecorderOptions{
		QueueLength: 1, Exporters: 1, MaxSessionBytes: 64 << 20, BudgetBytes: 1 << 30, FlushInterval: time.Hour,
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rec.Close(ctx)
		inner.Close(ctx)
	}()
	s := rec.Begin(httptest.NewRequest("GET", "/sync", nil), http.Header{})
	if s == nil {
		t.Fatal("session not recorded")
	}
	s.Client(randomBinaryFrame(64<<10), time.Now())
	waitFor(t, "the exporter to stall", func() bool { return g.inPut.Load() == 1 })
	// 15.6 MiB in large messages, then one-byte messages: each of their
	// events is smaller than the tap's close event, so when the batch is
	// full the close event cannot fit either.
	for range 249 {
		s.Client(randomBinaryFrame(64<<10), time.Now())
	}
	tiny := frame(true, 2, []byte{'a'}, true)
	var chunk []byte
	for range 4096 {
		chunk = append(chunk, tiny...)
	}
	work := make([]byte, len(chunk))
	for i := 0; i < 200 && counter(t, rec, `preheat_tap_sessions_cut_total{reason="encode"}`) == 0; i++ {
		copy(work, chunk)
		s.Client(work, time.Now())
	}
	s.End(session.SideClient)
	t.Logf("survived: cut{encode} = %v", counter(t, rec, `preheat_tap_sessions_cut_total{reason="encode"}`))
}

// TestRecorderCloseAccountsForPendingBatches: when its ctx ends,
// Recorder.Close gives up on sessions whose batch found no room in a queue.
// Their batches are still accounted for, exported or counted as failed (the
// Close doc says "what is left then is counted as failed"), the sessions
// leave the active set, and the budget they held is given back, so that
// Status does not report them for ever.
// (TestRecorderBudgetHoldsWhileStreamDown checks the same state after a
// Close with the stream down.)
func TestRecorderCloseAccountsForPendingBatches(t *testing.T) {
	rec, g, inner, _ := gatedRecorder(t, capture.RecorderOptions{QueueLength: 1, Exporters: 1, FlushInterval: time.Hour})
	var ss []*capture.Recording
	for i := range 3 {
		s := rec.Begin(httptest.NewRequest("GET", "/sync", nil), http.Header{})
		if s == nil {
			t.Fatal("session not recorded")
		}
		s.Client(frame(true, 1, []byte(`{"type":"hello"}`), true), time.Now())
		s.End(session.SideClient) // flushes: exporter, then queue, then pending
		if i == 0 {
			waitFor(t, "the exporter to stall", func() bool { return g.inPut.Load() == 1 })
		}
		ss = append(ss, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rec.Close(ctx)
	ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer icancel()
	inner.Close(ictx)

	st := rec.Status()
	failed := counter(t, rec, "preheat_tap_batches_failed_total")
	exported := counter(t, rec, "preheat_tap_batches_exported_total")
	if st.Recording != 0 || st.BufferBytes != 0 || failed+exported != 3 {
		t.Fatalf("after Close: %d recordings still active, %d budget bytes still held, batches failed %v + exported %v, want 3 sessions accounted for",
			st.Recording, st.BufferBytes, failed, exported)
	}
}

// TestRecorderBudgetCountsParserMemory: messages still being received are
// held by each session's parsers (up to MaxMessageBytes uncompressed,
// MaxInflateBytes = 4 MiB compressed, plus a 32 KiB window per direction
// with context takeover). The byte budget counts them as well as encoded
// events; otherwise many sessions, each midway through a large message,
// would hold many times BudgetBytes while Status reported almost nothing in
// use.
func TestRecorderBudgetCountsParserMemory(t *testing.T) {
	const budget = 1 << 20
	rec, _ := recorderOnly(t, &capture.RecorderOptions{BudgetBytes: budget, FlushInterval: 50 * time.Millisecond, Logger: quietLog})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var ss []*capture.Recording
	for range 48 {
		s := rec.Begin(httptest.NewRequest("GET", "/sync", nil), http.Header{})
		if s == nil {
			break // dropped for the budget: fine, that is the budget working
		}
		f := randomBinaryFrame(250 << 10)
		s.Client(f[:len(f)-1], time.Now()) // all but the last byte of the message
		ss = append(ss, s)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapInuse) - int64(before)
	used := rec.Status().BufferBytes
	for _, s := range ss {
		s.End(session.SideClient)
	}
	if grown > 2*budget {
		t.Fatalf("%d sessions admitted; capture holds %d MiB of heap with a %d MiB budget (Status reports %d bytes in use)",
			len(ss), grown>>20, budget>>20, used)
	}
}

// TestRecorderCloseDuringBeginKeepsSessionsWhole: a Close racing Begin must
// not cut a session between its publication in the recorder's active set
// and its open event; the close event would then take seq 0 and the open
// follow it (or be lost). Every session in the stream starts with its open
// and ends with its close. The window is narrow, so the test tries many
// times within a time bound.
func TestRecorderCloseDuringBeginKeepsSessionsWhole(t *testing.T) {
	deadline := time.Now().Add(3 * time.Second)
	req := httptest.NewRequest("GET", "/sync", nil)
	for it := 0; time.Now().Before(deadline); it++ {
		dir := t.TempDir()
		prod, err := dirlog.NewProducer(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for !stop.Load() {
					if s := rec.Begin(req, http.Header{}); s != nil {
						s.End(session.SideClient)
					}
				}
			})
		}
		time.Sleep(time.Duration(it%3) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rec.Close(ctx)
		stop.Store(true)
		wg.Wait()
		prod.Close(ctx)
		cancel()
		ss, _ := readSessions(t, dir)
		for id, evs := range ss {
			if evs[0].Kind != session.KindOpen || evs[len(evs)-1].Kind != session.KindClose {
				kinds := make([]string, len(evs))
				for i, e := range evs {
					kinds[i] = fmt.Sprintf("%d:%v", e.Seq, e.Kind)
				}
				t.Fatalf("iteration %d: session %s is %v: it must start with its open and end with its close", it, id, kinds)
			}
		}
	}
}

// TestRecorderAttributesCloseToInitiatingSide: the tap parses each
// direction after forwarding it, in that direction's goroutine. When the
// client's close frame follows a message that takes a while to parse and
// redact, the upstream's reply is forwarded and parsed first; the session
// must still be recorded as closed by the client, which started the closing
// handshake. (A recording that took the first close frame parsed as the
// start fails this test every time with a 2 MiB message, about one run in
// four with the default MaxMessageBytes and a 240 KiB one, and
// TestTapTransparentAndCaptured about once in 100 runs under -race.)
func TestRecorderAttributesCloseToInitiatingSide(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closeFrame := func(masked bool) []byte { return frame(true, 8, append([]byte{0x03, 0xe8}, "bye"...), masked) }
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		accept := acceptKey(req.Header.Get("Sec-WebSocket-Key"))
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept)
		// Answer the client's close as soon as its 11 bytes (masked, with a
		// 5-byte payload) arrive.
		var tail []byte
		buf := make([]byte, 64<<10)
		for {
			n, err := br.Read(buf)
			tail = append(tail, buf[:n]...)
			if len(tail) > 16 {
				tail = tail[len(tail)-16:]
			}
			if len(tail) >= 11 && tail[len(tail)-11] == 0x88 && tail[len(tail)-10] == 0x85 {
				c.Write(closeFrame(false))
				break
			}
			if err != nil {
				return
			}
		}
		io.Copy(io.Discard, br)
	})
	r := newRig(t, "http://"+ln.Addr().String(), capture.DefaultPolicy(), &capture.RecorderOptions{MaxMessageBytes: 4 << 20, MaxSessionBytes: 8 << 20})
	c, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /sync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// A large JSON message, slow to redact, then the client's close.
	var msg bytes.Buffer
	msg.WriteString(`{"items":[`)
	for i := 0; msg.Len() < 2<<20; i++ {
		fmt.Fprintf(&msg, `{"id":%d,"name":"n%d","token":"t%d"},`, i, i, i)
	}
	msg.WriteString(`{}]}`)
	// The end of the message and the close arrive in one read of the tap,
	// so the close is forwarded before the message is parsed and redacted.
	all := append(frame(true, 1, msg.Bytes(), true), closeFrame(true)...)
	c.Write(all[:len(all)-1024])
	time.Sleep(100 * time.Millisecond)
	c.Write(all[len(all)-1024:])
	got := make([]byte, len(closeFrame(false)))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading the upstream's close: %v", err)
	}
	c.Close()
	sessions, _ := r.sessions()
	for _, evs := range sessions {
		if last := evs[len(evs)-1]; last.Kind != session.KindClose || last.ClosedBy != session.SideClient {
			t.Fatalf("the client started the closing handshake; recorded close = %+v", last)
		}
	}
}
