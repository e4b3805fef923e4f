package coldserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// start returns a server behind a loopback HTTP server; both are closed
// when the test ends.
func start(t *testing.T, opts *Options) (*Server, string) {
	t.Helper()
	s := New(opts)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return s, hs.URL
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	return dialMode(t, url, websocket.CompressionNoContextTakeover)
}

// dialMode dials with the given compression; load generators leave it
// disabled to spare the CPU of a shared machine.
func dialMode(t *testing.T, url string, mode websocket.CompressionMode) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/sync", &websocket.DialOptions{
		Subprotocols:    []string{"sync.v3"},
		CompressionMode: mode,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
}

func recv(t *testing.T, c *websocket.Conn) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	return b, err
}

func mustRecv(t *testing.T, c *websocket.Conn) map[string]json.RawMessage {
	t.Helper()
	b, err := recv(t, c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	return m
}

// connected dials and completes the connect exchange.
func connected(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	return connectedMode(t, url, websocket.CompressionNoContextTakeover)
}

func connectedMode(t *testing.T, url string, mode websocket.CompressionMode) *websocket.Conn {
	t.Helper()
	c := dialMode(t, url, mode)
	send(t, c, string(corpus.New(1).Connect()))
	m := mustRecv(t, c)
	if string(m["type"]) != `"connected"` || string(m["id"]) != "0" || len(m["session"]) < 10 {
		t.Fatalf("connect reply: %v", m)
	}
	return c
}

func counter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	fams := scrape(t, s)
	var sum float64
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			full := f.GetName()
			if len(m.GetLabel()) > 0 {
				full += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						full += ","
					}
					full += l.GetName() + `="` + l.GetValue() + `"`
				}
				full += "}"
			}
			if full == name {
				switch {
				case m.GetCounter() != nil:
					sum += m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					sum += m.GetGauge().GetValue()
				case m.GetUntyped() != nil:
					sum += m.GetUntyped().GetValue()
				}
			}
		}
	}
	return sum
}

func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, rec.Body.String())
	}
	return fams
}

func TestSubprotocol(t *testing.T) {
	_, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	if got := c.Subprotocol(); got != "sync.v3" {
		t.Fatalf("subprotocol %q, want sync.v3", got)
	}
}

func TestConnectFirst(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	f := func(first string) {
		t.Helper()
		c := dial(t, url)
		send(t, c, first)
		_, err := recv(t, c)
		if st := websocket.CloseStatus(err); st != websocket.StatusPolicyViolation {
			t.Fatalf("first message %s: got %v, want close %v", first, err, websocket.StatusPolicyViolation)
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) && !strings.Contains(ce.Reason, "connect") {
			t.Fatalf("close reason %q does not say connect", ce.Reason)
		}
	}
	f(`{"type":"query","id":1,"op":"tasks.list","params":{}}`)
	f(`{"type":"ping","id":1}`)
	f(`not json`)
	if got := counter(t, s, `coldserver_bad_messages_total{reason="no_connect"}`); got != 3 {
		t.Fatalf("no_connect count %v, want 3", got)
	}
}

func TestQueryEchoesID(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	ids := []string{`7`, `"q-42"`, `12345678901234567890`, `1.5e3`}
	for _, id := range ids {
		send(t, c, `{"type":"query","id":`+id+`,"op":"tasks.list","params":{"workspace":1,"fields":["name"],"filter":{"completed":false}},"subscribe":true}`)
	}
	got := map[string]bool{}
	for range ids {
		m := mustRecv(t, c)
		if string(m["type"]) != `"result"` || string(m["op"]) != `"tasks.list"` {
			t.Fatalf("reply %v", m)
		}
		var data []map[string]any
		if err := json.Unmarshal(m["data"], &data); err != nil || len(data) == 0 {
			t.Fatalf("data %s: %v", m["data"], err)
		}
		got[string(m["id"])] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("no result with id %s; got %v", id, got)
		}
	}
	st := s.State()
	if st.Requests != uint64(len(ids)) || st.PathsSeen != 1 || st.Framework.Invocations != uint64(len(ids)+1) {
		t.Fatalf("state %+v", st)
	}
	if p := st.Paths[3]; p.Name != "tasks.list/filter+sub" || p.Invocations != uint64(len(ids)) {
		t.Fatalf("path %+v", p)
	}
}

func TestMutationsAcked(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	for i, typ := range []string{"mutate", "write", "delete"} {
		id := string(rune('1' + i))
		send(t, c, `{"type":"`+typ+`","id":`+id+`,"op":"tasks.update","params":{"gid":"1"}}`)
		m := mustRecv(t, c)
		if string(m["type"]) != `"ack"` || string(m["id"]) != id {
			t.Fatalf("%s reply %v", typ, m)
		}
	}
	if s.Mutations() != 3 {
		t.Fatalf("Mutations() = %d, want 3", s.Mutations())
	}
	if got := counter(t, s, "coldserver_mutations_total"); got != 3 {
		t.Fatalf("coldserver_mutations_total %v, want 3", got)
	}
}

func TestBadMessages(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	f := func(msg string, binary bool, wantID, reason string) {
		t.Helper()
		before := counter(t, s, `coldserver_bad_messages_total{reason="`+reason+`"}`)
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		if err := c.Write(t.Context(), typ, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		m := mustRecv(t, c)
		if string(m["type"]) != `"error"` || string(m["id"]) != wantID || len(m["error"]) < 3 {
			t.Fatalf("%s: reply %v", msg, m)
		}
		if got := counter(t, s, `coldserver_bad_messages_total{reason="`+reason+`"}`); got != before+1 {
			t.Fatalf("%s: %s count %v, want %v", msg, reason, got, before+1)
		}
	}
	f(`{"type":"query","id":`, false, "null", reasonMalformed)
	f(`[1,2,3]`, false, "null", reasonMalformed)
	f(`{"type":"query","id":3,"op":"tasks.list","subscribe":"yes"}`, false, "null", reasonMalformed)
	f(`{"type":"frobnicate","id":4}`, false, "4", reasonUnknownType)
	f(`{"id":5}`, false, "5", reasonUnknownType)
	f(`{"type":"query","id":6,"op":"no.such.op","params":{}}`, false, "6", reasonUnknownOp)
	f(`{"type":"query","op":"tasks.list","params":{}}`, false, "null", reasonBadID)
	f(`{"type":"query","id":{"x":1},"op":"tasks.list"}`, false, "null", reasonBadID)
	f(`{"type":"connect","id":0}`, false, "0", reasonDupConnect)
	f(`{"type":"ping","id":8}`, true, "null", reasonBinary)

	send(t, c, `{"type":"ping","id":9}`)
	if m := mustRecv(t, c); string(m["type"]) != `"pong"` || string(m["id"]) != "9" {
		t.Fatalf("ping after bad messages: %v", m)
	}
}

func TestOversize(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1, ReadLimit: 1024})
	c := connected(t, url)
	send(t, c, `{"type":"query","id":1,"op":"tasks.list","params":{"notes":"`+strings.Repeat("x", 2048)+`"}}`)
	_, err := recv(t, c)
	if st := websocket.CloseStatus(err); st != websocket.StatusMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, s, `coldserver_bad_messages_total{reason="oversize"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("oversize message not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpdatesForSubscriptions(t *testing.T) {
	_, url := start(t, &Options{Scale: 0.1, UpdateInterval: 20 * time.Millisecond})
	c := connected(t, url)
	send(t, c, `{"type":"query","id":77,"op":"inbox.list","params":{},"subscribe":true}`)
	for {
		m := mustRecv(t, c)
		if string(m["type"]) == `"update"` {
			if string(m["sub"]) != "77" || len(m["changes"]) < 10 {
				t.Fatalf("update %v", m)
			}
			return
		}
	}
}

func TestMetricsParse(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	send(t, c, `{"type":"query","id":1,"op":"user.me","params":{}}`)
	mustRecv(t, c)
	time.Sleep(50 * time.Millisecond) // let the jitter task run a few times

	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	for _, name := range []string{"jvm_scheduler_jitter_seconds", "sync_request_duration_seconds"} {
		f := fams[name]
		if f == nil || f.GetType().String() != "HISTOGRAM" || len(f.GetMetric()) != 1 {
			t.Fatalf("%s: %v", name, f)
		}
		h := f.GetMetric()[0].GetHistogram()
		if len(h.GetBucket()) < 10 || h.GetSampleCount() == 0 {
			t.Fatalf("%s: %v", name, h)
		}
	}
	if f := fams["jvm_compilation_time_ms_total"]; f == nil || f.GetType().String() != "COUNTER" {
		t.Fatalf("jvm_compilation_time_ms_total: %v", f)
	}
	for _, name := range []string{"coldserver_mutations_total", "coldserver_bad_messages_total",
		"coldserver_sessions_active", "coldserver_paths", "coldserver_compile_queue_length"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if got := counter(t, s, "coldserver_sessions_active"); got != 1 {
		t.Errorf("coldserver_sessions_active %v, want 1", got)
	}
	if got := counter(t, s, `coldserver_paths{tier="interpreted"}`) + counter(t, s, `coldserver_paths{tier="c1"}`) +
		counter(t, s, `coldserver_paths{tier="c2"}`); got != 1 {
		t.Errorf("coldserver_paths sum %v, want 1", got)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	s, url := start(t, &Options{Scale: 0.1})
	c := connected(t, url)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-done:
		if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
			t.Fatalf("client read after Close: %v, want 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client not closed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

// TestSlowKind: Options.Slow multiplies the service time of every path of
// its kind, at every tier, and of no other kind.
func TestSlowKind(t *testing.T) {
	plain := New(&Options{Seed: 3})
	slow := New(&Options{Seed: 3, Slow: map[string]float64{"tasks.get": 4, "no.such.kind": 9, "tasks.list": 0.5}})
	defer plain.Close()
	defer slow.Close()
	for i, p := range plain.jit.paths {
		q := slow.jit.paths[i]
		want := 1.0
		if strings.HasPrefix(p.name, "tasks.get/") {
			want = 4
		}
		for tier := Interpreted; tier <= C2; tier++ {
			if got, base := q.serviceTime(tier), p.serviceTime(tier); got != time.Duration(float64(base)*want) {
				t.Errorf("%s at %v: %v, want %v × %v", p.name, tier, got, base, want)
			}
		}
	}
}

// TestStartsWarm: under Options.Warm every path runs C2 code from the
// first request, and the server counts itself warm once it has served.
func TestStartsWarm(t *testing.T) {
	s, url := start(t, &Options{Warm: true, Scale: 0.2, WarmWindow: time.Second})
	for _, p := range append(s.State().Paths, s.State().Framework) {
		if p.Tier != C2 {
			t.Fatalf("%s starts at %v", p.Name, p.Tier)
		}
	}
	c := connected(t, url)
	g := corpus.New(1)
	for range 20 {
		send(t, c, string(g.Query(g.Kind())))
		if m := mustRecv(t, c); string(m["type"]) != `"result"` {
			t.Fatalf("reply %v", m)
		}
	}
	if st := s.State(); st.WarmAt.IsZero() || st.Tiers[C2] != st.PathsSeen || st.CompileMillis != 0 {
		t.Fatalf("state %+v: want warm with nothing compiled", st)
	}
}
