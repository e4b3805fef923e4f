package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
	"github.com/preheatdev/preheat/stream/kinesis"
)

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

// TestMiddlewareCoder records a session served by coder/websocket, which
// writes its 101 with WriteHeader and then hijacks.
func TestMiddlewareCoder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, mode := range []websocket.CompressionMode{websocket.CompressionDisabled, websocket.CompressionContextTakeover} {
		rec, finish := recorderOnly(t, nil)
		var wg sync.WaitGroup
		srv := httptest.NewServer(rec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wg.Add(1)
			defer wg.Done()
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode})
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				c.Write(r.Context(), typ, append([]byte("echo:"), msg...))
			}
		})))
		c := dial(t, ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/mw", &websocket.DialOptions{CompressionMode: mode})
		var sent, echoed []string
		for i := range 20 {
			m := strings.Repeat("m", i*100)
			sent = append(sent, m)
			echoed = append(echoed, "echo:"+m)
			c.Write(ctx, websocket.MessageText, []byte(m))
			if _, got, err := c.Read(ctx); err != nil || string(got) != "echo:"+m {
				t.Fatalf("echo %d: %q, %v", i, got, err)
			}
		}
		c.Close(websocket.StatusNormalClosure, "done")
		wg.Wait()
		srv.Close()
		sessions := finish()
		if len(sessions) != 1 {
			t.Fatalf("mode %v: %d sessions", mode, len(sessions))
		}
		for _, evs := range sessions {
			if got := frames(evs, session.ClientToServer); !reflect.DeepEqual(got, sent) {
				t.Fatalf("mode %v: client frames %d, want %d", mode, len(got), len(sent))
			}
			if got := frames(evs, session.ServerToClient); !reflect.DeepEqual(got, echoed) {
				t.Fatalf("mode %v: server frames %d, want %d", mode, len(got), len(echoed))
			}
			if last := evs[len(evs)-1]; last.Kind != session.KindClose || last.ClosedBy != session.SideClient || last.Reason != "done" {
				t.Fatalf("mode %v: close %+v", mode, last)
			}
		}
	}
}

// TestMiddlewareRawHijack records a session from a handler that hijacks
// first and writes the 101 response itself, as gorilla/websocket does.
func TestMiddlewareRawHijack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, finish := recorderOnly(t, nil)
	var wg sync.WaitGroup
	srv := httptest.NewServer(rec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		accept := acceptKey(r.Header.Get("Sec-WebSocket-Key"))
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n")
		brw.Write(frame(true, 1, []byte(`{"type":"hello"}`), false))
		brw.Flush()
		io.Copy(io.Discard, brw) // the client's frames, until it hangs up
	})))
	defer srv.Close()
	c := dial(t, ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/raw", nil)
	if _, got, err := c.Read(ctx); err != nil || string(got) != `{"type":"hello"}` {
		t.Fatalf("read hello: %q %v", got, err)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"query","id":1}`))
	c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	c.CloseNow()
	wg.Wait()
	sessions := finish()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	for _, evs := range sessions {
		if got := frames(evs, session.ServerToClient); !reflect.DeepEqual(got, []string{`{"type":"hello"}`}) {
			t.Fatalf("server frames %q", got)
		}
		if got := frames(evs, session.ClientToServer); !reflect.DeepEqual(got, []string{`{"type":"query","id":1}`, "\x01\x02\x03"}) {
			t.Fatalf("client frames %q", got)
		}
	}
}

// TestAdmin drives the admin API over HTTP.
func TestAdmin(t *testing.T) {
	rec, _ := recorderOnly(t, nil)
	reloads := 0
	srv := httptest.NewServer(rec.AdminHandler(&capture.AdminOptions{Token: "s3cret", Reload: func() error { reloads++; return nil }}))
	defer srv.Close()
	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("GET", "/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("status without a token: %d", code)
	}
	if code, _ := do("GET", "/status", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("status with a wrong token: %d", code)
	}
	if code, _ := do("GET", "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	if code, body := do("POST", "/capture/off", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"enabled": false`) {
		t.Fatalf("capture off: %d %s", code, body)
	}
	if code, body := do("POST", "/capture/routes/off?route=/sync*", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"/sync*"`) {
		t.Fatalf("route off: %d %s", code, body)
	}
	if code, _ := do("POST", "/capture/routes/off?route=nope", "s3cret"); code != http.StatusBadRequest {
		t.Fatalf("bad route: %d", code)
	}
	if code, _ := do("POST", "/reload", "s3cret"); code != http.StatusOK || reloads != 1 {
		t.Fatalf("reload: %d, %d reloads", code, reloads)
	}
	code, body := do("GET", "/status", "s3cret")
	var st capture.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s %v", code, body, err)
	}
	if st.Enabled || !reflect.DeepEqual(st.RoutesOff, []string{"/sync*"}) || st.BudgetBytes == 0 {
		t.Fatalf("status = %+v", st)
	}
	if code, body := do("GET", "/metrics", "s3cret"); code != http.StatusOK || !strings.Contains(body, "preheat_tap_capture_enabled 0") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
}

// TestTapTLS runs the tap with TLS on both sides: a wss client, an https
// upstream verified against its own CA.
func TestTapTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(8 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, msg)
		}
	}))
	defer up.Close()
	rec, finish := recorderOnly(t, nil)
	tap, err := capture.NewTap("wss://"+up.Listener.Addr().String(), rec, &capture.TapOptions{
		TLSClientConfig: up.Client().Transport.(*http.Transport).TLSClientConfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(tap)
	front.TLS = &tls.Config{NextProtos: []string{"http/1.1"}}
	front.StartTLS()
	defer front.Close()
	c := dial(t, ctx, "wss://"+front.Listener.Addr().String()+"/secure", &websocket.DialOptions{HTTPClient: front.Client()})
	msgs := testMessages(10)
	if got := exchange(t, ctx, c, msgs, 0); !reflect.DeepEqual(got, msgs) {
		t.Fatal("echo over TLS differs")
	}
	c.Close(websocket.StatusNormalClosure, "")
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	tap.Shutdown(sctx)
	sessions := finish()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	for _, evs := range sessions {
		if n := len(frames(evs, session.ClientToServer)); n != len(msgs) {
			t.Fatalf("%d client frames captured, want %d", n, len(msgs))
		}
	}
}

// TestTapStreamDown kills the Kinesis endpoint mid-run. Proxying goes on
// unaffected: every message is echoed, none waits on capture. Capture
// memory stays within its budget, and every session opened is accounted
// for as either recorded or dropped whole.
func TestTapStreamDown(t *testing.T) {
	ks := kinesalite.Start(t)
	client := ks.Client(t)
	ks.CreateStream(t, "down", 1)
	pset := metrics.NewSet()
	prod, err := kinesis.NewProducer(client, "down", &kinesis.ProducerOptions{RetryBudget: time.Minute, BufferBytes: 2 << 20, Metrics: pset})
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
	up := echoServer(t, websocket.CompressionDisabled)
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

// TestMiddlewarePipelinedFrame sends the first frame in the same write as
// the handshake, so the server has it buffered before the handler hijacks:
// coder/websocket must still read it, and the capture must hold it.
func TestMiddlewarePipelinedFrame(t *testing.T) {
	rec, finish := recorderOnly(t, nil)
	var wg sync.WaitGroup
	srv := httptest.NewServer(rec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		c.Write(ctx, typ, msg)
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame(true, 1, []byte(`{"early":true}`), true)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	echo := frame(true, 1, []byte(`{"early":true}`), false)
	got := make([]byte, len(echo))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, echo) {
		t.Fatalf("echo of the pipelined frame: %q, %v", got, err)
	}
	conn.Close()
	wg.Wait()
	for _, evs := range finish() {
		if got := frames(evs, session.ClientToServer); !reflect.DeepEqual(got, []string{`{"early":true}`}) {
			t.Fatalf("client frames %q", got)
		}
	}
}

// TestTapBrokenUpstreamHandshake checks that an upstream answering an
// upgrade with garbage, a truncated response, an oversize header or
// nothing at all gives the client a 502, and each is counted.
func TestTapBrokenUpstreamHandshake(t *testing.T) {
	answers := map[string]string{
		"garbage":   "NOT HTTP AT ALL\r\n\r\n",
		"truncated": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
		"oversize":  "HTTP/1.1 101 Switching Protocols\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
		"silent":    "",
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, answer)
				c.Close()
			})
			defer func() { ln.Close(); wg.Wait() }()
			rec, _ := recorderOnly(t, nil)
			tap, err := capture.NewTap("http://"+ln.Addr().String(), rec, &capture.TapOptions{HandshakeTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			front := httptest.NewServer(tap)
			defer front.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/x", nil)
			if err == nil {
				t.Fatal("dial succeeded through a broken upstream")
			}
			if resp == nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("client got %v, %v; want 502", resp, err)
			}
			var b strings.Builder
			tap.Metrics().WritePrometheus(&b)
			if !strings.Contains(b.String(), `preheat_tap_upgrade_failures_total{reason="upstream_response"} 1`) {
				t.Fatalf("failure not counted:\n%s", b.String())
			}
		})
	}
}
