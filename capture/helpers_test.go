package capture_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// rig is a tap in front of an upstream, recording into a directory log.
type rig struct {
	t    *testing.T
	dir  string
	prod *dirlog.Producer
	rec  *capture.Recorder
	tap  *capture.Tap
	srv  *httptest.Server
	done bool
}

func newRig(t *testing.T, upstream string, policy capture.Policy, opts *capture.RecorderOptions) *rig {
	t.Helper()
	return newRigTap(t, upstream, policy, opts, nil)
}

// newRigTap is newRig with the tap's options.
func newRigTap(t *testing.T, upstream string, policy capture.Policy, opts *capture.RecorderOptions, tapOpts *capture.TapOptions) *rig {
	t.Helper()
	dir := t.TempDir()
	prod, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := capture.RecorderOptions{FlushInterval: 50 * time.Millisecond, TapID: "test-tap"}
	if opts != nil {
		o = *opts
		if o.FlushInterval == 0 {
			o.FlushInterval = 50 * time.Millisecond
		}
	}
	rec, err := capture.NewRecorder(prod, policy, &o)
	if err != nil {
		t.Fatal(err)
	}
	tap, err := capture.NewTap(upstream, rec, tapOpts)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: dir, prod: prod, rec: rec, tap: tap, srv: httptest.NewServer(tap)}
	t.Cleanup(r.stop)
	return r
}

func (r *rig) wsURL() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") }

// stop shuts the tap down and flushes capture into the stream.
func (r *rig) stop() {
	if r.done {
		return
	}
	r.done = true
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

// sessions stops the rig and returns every captured session's events in
// sequence order, and the raw record bytes read.
func (r *rig) sessions() (map[session.ID][]session.Event, [][]byte) {
	r.t.Helper()
	r.stop()
	return readSessions(r.t, r.dir)
}

func readSessions(t *testing.T, dir string) (map[session.ID][]session.Event, [][]byte) {
	t.Helper()
	c, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := make(map[session.ID][]session.Event)
	var raw [][]byte
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		rec, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, rec.Data)
		evs, err := session.DecodeBatch(rec.Data, nil)
		if err != nil {
			t.Fatalf("record %s/%s: %v", rec.Partition, rec.Position, err)
		}
		for _, e := range evs {
			if rec.Key != e.Session.String() {
				t.Fatalf("record key %s holds session %s", rec.Key, e.Session)
			}
			out[e.Session] = append(out[e.Session], e)
		}
	}
	for id, evs := range out {
		for i, e := range evs {
			if e.Seq != uint64(i) {
				t.Fatalf("session %s: event %d has seq %d (batches out of order or missing)", id, i, e.Seq)
			}
		}
	}
	return out, raw
}

// frames returns the payloads of a session's frames in one direction.
func frames(evs []session.Event, dir session.Direction) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == session.KindFrame && e.Direction == dir {
			out = append(out, string(e.Payload))
		}
	}
	return out
}

func counter(t *testing.T, r *capture.Recorder, name string) float64 {
	t.Helper()
	return metricValue(r.Metrics(), name)
}

// metricValue is the value of the series name in set, 0 when absent.
func metricValue(set *metrics.Set, name string) float64 {
	var b strings.Builder
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return 0
}

func dial(t *testing.T, ctx context.Context, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(8 << 20)
	return c
}

// acceptKey is the Sec-WebSocket-Accept answer to key (RFC 6455 section 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// recorderOnly returns a recorder writing to a directory log, closed and
// read back by the returned function.
func recorderOnly(t *testing.T, opts *capture.RecorderOptions) (*capture.Recorder, func() map[session.ID][]session.Event) {
	t.Helper()
	dir := t.TempDir()
	prod, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := capture.RecorderOptions{FlushInterval: 50 * time.Millisecond}
	if opts != nil {
		o = *opts
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &o)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	finish := func() map[session.ID][]session.Event {
		if !closed {
			closed = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rec.Close(ctx); err != nil {
				t.Errorf("recorder close: %v", err)
			}
			if err := prod.Close(ctx); err != nil {
				t.Errorf("producer close: %v", err)
			}
		}
		s, _ := readSessions(t, dir)
		return s
	}
	t.Cleanup(func() { finish() })
	return rec, finish
}

// quietLog discards what it is given, for tests that provoke errors the
// recorder or tap logs.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// waitFor polls cond until it holds, and fails the test after 10 seconds
// waiting for what cond describes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
