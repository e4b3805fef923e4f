package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/session"
)

// TestRecorderCutsFloodWhileStalled: while the exporter is stalled, a flood
// of empty messages (the most events a byte) grows one pending batch. The
// recorder cuts the session when the batch would no longer fit in a stream
// record, before it reaches session.MaxBatchEvents, with room left for its
// close event: what reaches the stream is a whole session a reader accepts.
func TestRecorderCutsFloodWhileStalled(t *testing.T) {
	rec, g, inner, dir := gatedRecorder(t, capture.RecorderOptions{
		QueueLength: 1, Exporters: 1, FlushInterval: time.Hour,
		MaxSessionFrames: 4 * session.MaxBatchEvents,
	})
	s := rec.Begin(httptest.NewRequest("GET", "/sync", nil), http.Header{})
	if s == nil {
		t.Fatal("session not recorded")
	}
	s.Client(randomBinaryFrame(200<<10), time.Now()) // flushed: the exporter takes it and stalls
	waitFor(t, "the exporter to stall", func() bool { return g.inPut.Load() == 1 })
	s.Client(randomBinaryFrame(200<<10), time.Now()) // flushed into the queue, now full
	// Empty messages encode in a few bytes each, so the event limit comes
	// before the record size limit.
	empty := frame(true, 1, nil, true)
	flood := bytes.Repeat(empty, session.MaxBatchEvents+1000)
	s.Client(flood, time.Now())
	close(g.gate)
	s.End(session.SideClient)
	s.End(session.SideServer)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, rec, `preheat_tap_sessions_cut_total{reason="encode"}`); n != 0 {
		t.Errorf("%v sessions cut because an event could not be encoded", n)
	}
	if n := counter(t, rec, `preheat_tap_sessions_cut_total{reason="queue_full"}`); n != 1 {
		t.Errorf("sessions cut for a full queue: %v, want 1", n)
	}
	sessions, _ := readSessions(t, dir)
	evs := sessions[s.ID()]
	if len(evs) == 0 {
		t.Fatal("session not in the stream")
	}
	last := evs[len(evs)-1]
	if last.Kind != session.KindClose || last.ClosedBy != session.SideTap {
		t.Fatalf("session ends with %v from %v, want the tap's close", last.Kind, last.ClosedBy)
	}
	if n := len(frames(evs, session.ClientToServer)); n >= session.MaxBatchEvents-1 || n < 1000 {
		t.Errorf("%d client messages recorded before the cut, want some and fewer than session.MaxBatchEvents (%d)", n, session.MaxBatchEvents)
	}
}

// TestTapSkipsHandshakeReadersWouldRefuse: a client whose upgrade request
// carries more header fields than a reader accepts in an open event
// (session.MaxHeaderFields) is proxied as usual, and its session is skipped
// and counted rather than recorded without its connect event.
func TestTapSkipsHandshakeReadersWouldRefuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}})
	rig := newRig(t, up.URL, capture.DefaultPolicy(), nil)

	h := http.Header{}
	for i := range session.MaxHeaderFields + 10 {
		h.Set(fmt.Sprintf("X-F%d", i), "v")
	}
	c := dial(t, ctx, rig.wsURL()+"/sync", &websocket.DialOptions{HTTPHeader: h})
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("echo through the tap: %q, %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// A session with an ordinary handshake is still recorded.
	c = dial(t, ctx, rig.wsURL()+"/sync", nil)
	if err := c.Write(ctx, websocket.MessageText, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	rig.stop()
	if n := counter(t, rig.rec, `preheat_tap_sessions_skipped_total{reason="handshake"}`); n != 1 {
		t.Errorf("sessions skipped for their handshake: %v, want 1", n)
	}
	sessions, _ := rig.sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions in the stream, want 1", len(sessions))
	}
	for _, evs := range sessions {
		if got := frames(evs, session.ClientToServer); len(got) != 1 || got[0] != "second" {
			t.Errorf("recorded client messages %q, want [second]", got)
		}
	}
}
