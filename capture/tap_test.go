package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/session"
)

// exchange sends msgs over c and returns the echoes it reads back.
func exchange(t *testing.T, ctx context.Context, c *websocket.Conn, msgs [][]byte, binaryEvery int) [][]byte {
	t.Helper()
	var got [][]byte
	for i, m := range msgs {
		typ := websocket.MessageText
		if binaryEvery > 0 && i%binaryEvery == binaryEvery-1 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, m); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		rt, echo, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if rt != typ {
			t.Fatalf("message %d: type %v, sent %v", i, rt, typ)
		}
		got = append(got, echo)
	}
	return got
}

func testMessages(n int) [][]byte {
	g := corpus.New(11)
	msgs := [][]byte{g.Connect(), {}, bytes.Repeat([]byte("x"), 125), bytes.Repeat([]byte("y"), 126), bytes.Repeat([]byte("z"), 65536)}
	for len(msgs) < n {
		k := g.Kind()
		msgs = append(msgs, g.Query(k), g.Result(g.LastID(), k))
	}
	return msgs
}

// TestTapTransparentAndCaptured sends the same messages to an echo server
// directly and through the tap, with each compression mode: what the client
// gets back is the same, and the captured session holds exactly what was
// sent each way.
func TestTapTransparentAndCaptured(t *testing.T) {
	modes := map[string]websocket.CompressionMode{
		"plain":            websocket.CompressionDisabled,
		"no-takeover":      websocket.CompressionNoContextTakeover,
		"context-takeover": websocket.CompressionContextTakeover,
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}, CompressionMode: mode})
			r := newRig(t, up.URL, capture.DefaultPolicy(), nil)
			msgs := testMessages(60)
			opts := &websocket.DialOptions{Subprotocols: []string{"sync.v3"}, CompressionMode: mode}

			direct := dial(t, ctx, "ws"+strings.TrimPrefix(up.URL, "http")+"/sync?client=web", opts)
			want := exchange(t, ctx, direct, msgs, 7)
			direct.Close(websocket.StatusNormalClosure, "bye")

			c := dial(t, ctx, r.wsURL()+"/sync?client=web", opts)
			if c.Subprotocol() != "sync.v3" {
				t.Fatalf("subprotocol through the tap = %q", c.Subprotocol())
			}
			got := exchange(t, ctx, c, msgs, 7)
			c.Close(websocket.StatusNormalClosure, "bye")
			if !reflect.DeepEqual(got, want) {
				t.Fatal("echoes through the tap differ from the direct ones")
			}

			sessions, _ := r.sessions()
			if len(sessions) != 1 {
				t.Fatalf("captured %d sessions, want 1", len(sessions))
			}
			for _, evs := range sessions {
				open := evs[0]
				if open.Kind != session.KindOpen || open.Open.Route != "/sync?client=web" || open.Open.Subprotocol != "sync.v3" || open.Open.TapID != "test-tap" {
					t.Fatalf("open event = %+v %+v", open, open.Open)
				}
				if (mode != websocket.CompressionDisabled) != strings.Contains(open.Open.Extensions, "permessage-deflate") {
					t.Fatalf("extensions %q for mode %s", open.Open.Extensions, name)
				}
				// What the tap records is what was sent after the default
				// redaction (the connect message carries a token).
				rd, _ := redact.New(nil)
				sent := make([]string, len(msgs))
				for i, m := range msgs {
					var out []byte
					if i%7 == 6 {
						out, _ = rd.Binary(nil, m)
					} else {
						out, _ = rd.Payload(nil, m, false)
					}
					sent[i] = string(out)
				}
				if !strings.Contains(sent[0], redact.Marker) {
					t.Fatalf("the connect message should carry a redacted token: %q", sent[0])
				}
				if got := frames(evs, session.ClientToServer); !reflect.DeepEqual(got, sent) {
					for i := range min(len(got), len(sent)) {
						if got[i] != sent[i] {
							t.Errorf("client frame %d: %q, sent %q", i, got[i][:min(80, len(got[i]))], sent[i][:min(80, len(sent[i]))])
							break
						}
					}
					t.Fatalf("captured %d client frames, want the %d sent", len(got), len(sent))
				}
				if got := frames(evs, session.ServerToClient); !reflect.DeepEqual(got, sent) {
					t.Fatalf("captured %d server frames, want the %d echoed", len(got), len(sent))
				}
				i := 0
				for _, e := range evs {
					if e.Kind == session.KindFrame && e.Direction == session.ClientToServer {
						want := session.Text
						if i%7 == 6 {
							want = session.Binary
						}
						if e.Opcode != want {
							t.Fatalf("client message %d captured as %v, sent as %v", i, e.Opcode, want)
						}
						i++
					}
				}
				last := evs[len(evs)-1]
				if last.Kind != session.KindClose || last.ClosedBy != session.SideClient || last.Code != uint16(websocket.StatusNormalClosure) || last.Reason != "bye" {
					t.Fatalf("close event = %+v", last)
				}
			}
		})
	}
}

// frame builds one raw websocket frame.
func frame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n < 1<<16:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	var key [4]byte
	rand.Read(key[:])
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// rawUpstream is a websocket server written by hand: it answers the
// handshake with rawResponse, records every byte it receives until the
// client half-closes, then sends reply and closes.
type rawUpstream struct {
	ln       net.Listener
	response []byte
	reply    []byte
	received chan []byte
}

func newRawUpstream(t *testing.T, reply []byte) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, reply: reply, received: make(chan []byte, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		accept := acceptKey(req.Header.Get("Sec-WebSocket-Key"))
		// Unusual but valid: header case and order as a real server may
		// write them, and a header Go would canonicalize.
		u.response = []byte("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nConnection: Upgrade\r\nsec-websocket-accept: " +
			accept + "\r\nX-odd-CASE: kept\r\n\r\n")
		c.Write(u.response)
		got, _ := io.ReadAll(br)
		u.received <- got
		c.Write(u.reply)
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return u
}

// TestTapRawBytes drives the tap with hand-made frames: fragmentation with
// an interleaved ping, 16- and 64-bit lengths, and finally a malformed frame.
// Both sides get exactly the bytes the other sent, the upstream's response
// header arrives byte for byte, a half-close passes through (the upstream
// replies after the client's EOF), and capture stops at the malformed frame
// while proxying goes on.
func TestTapRawBytes(t *testing.T) {
	reply := slicesConcat(
		frame(true, 1, []byte(`{"type":"result","id":1}`), false),
		frame(false, 2, bytes.Repeat([]byte{1}, 70000), false),
		frame(true, 0, []byte{2, 3}, false),
		frame(true, 8, append([]byte{0x03, 0xe8}, "done"...), false),
	)
	up := newRawUpstream(t, reply)
	r := newRig(t, "http://"+up.ln.Addr().String(), capture.DefaultPolicy(), nil)

	c, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /raw HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	// A client waits for the handshake response before it sends frames
	// (RFC 6455 section 4.1).
	head := make([]byte, 0, 512)
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			t.Fatalf("reading the handshake response: %v (got %q)", err, head)
		}
		head = append(head, b...)
	}
	sent := slicesConcat(
		frame(true, 1, []byte(`{"type":"connect"}`), true),
		frame(false, 1, []byte(`{"type":"query",`), true),
		frame(true, 9, []byte("ping!"), true),
		frame(false, 0, []byte(`"id":1,`), true),
		frame(true, 0, []byte(`"op":"tasks.list"}`), true),
		frame(true, 2, bytes.Repeat([]byte{7}, 300), true),
		frame(true, 1, []byte("unmasked from a client: a protocol error"), false),
		frame(true, 1, []byte("after the error"), true),
	)
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	all := append(head, rest...)
	var received []byte
	select {
	case received = <-up.received:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never saw the client's half-close")
	}
	if !bytes.Equal(received, sent) {
		t.Fatalf("upstream received %d bytes, client sent %d; not identical", len(received), len(sent))
	}
	if !bytes.HasPrefix(all, up.response) {
		t.Fatalf("response header changed on the way:\n%q\nwant\n%q", all[:min(len(all), len(up.response))], up.response)
	}
	if !bytes.Equal(all[len(up.response):], reply) {
		t.Fatalf("client received %d bytes after the header, upstream sent %d; not identical", len(all)-len(up.response), len(reply))
	}

	sessions, _ := r.sessions()
	if len(sessions) != 1 {
		t.Fatalf("captured %d sessions", len(sessions))
	}
	for _, evs := range sessions {
		want := []string{`{"type":"connect"}`, `{"type":"query","id":1,"op":"tasks.list"}`, strings.Repeat("\x07", 300)}
		if got := frames(evs, session.ClientToServer); !reflect.DeepEqual(got, want) {
			t.Fatalf("client frames = %q", got)
		}
		last := evs[len(evs)-1]
		if last.Kind != session.KindClose || last.ClosedBy != session.SideTap || !strings.Contains(last.Reason, "unmasked_client_frame") {
			t.Fatalf("last event = %+v, want the tap's close for the malformed frame", last)
		}
	}
	if n := counter(t, r.rec, `preheat_tap_sessions_cut_total{reason="parse_unmasked_client_frame"}`); n != 1 {
		t.Fatalf("cut counter = %v, want 1", n)
	}
}

func slicesConcat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestTapRedaction checks that configured and default secrets never reach
// the stream: not in headers, the route or payloads, not in the decoded
// events and not in the stream's files.
func TestTapRedaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}, CompressionMode: websocket.CompressionContextTakeover})
	rd, err := redact.New(&redact.Options{Headers: []string{"X-Trace-Secret"}, QueryParams: []string{"room_code"}, JSONKeys: []string{"device.code", "pin"}})
	if err != nil {
		t.Fatal(err)
	}
	policy := capture.DefaultPolicy()
	policy.Redactor = rd
	r := newRig(t, up.URL, policy, nil)

	secrets := []string{"S3cr3tBearer", "CookieSecret77", "HeaderSecret88", "QuerySecret99", "KeySecret11", "TokenSecret22", "SessionSecret33", "PinSecret44", "PasswordSecret55"}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+secrets[0])
	h.Set("Cookie", "sid="+secrets[1])
	h.Set("X-Trace-Secret", secrets[2])
	h.Set("X-Trace", "trace-1")
	c := dial(t, ctx, r.wsURL()+"/sync?room_code="+secrets[3]+"&api_key="+secrets[4]+"&room=5", &websocket.DialOptions{HTTPHeader: h, CompressionMode: websocket.CompressionContextTakeover})
	msgs := [][]byte{
		[]byte(`{"type":"connect","token":"` + secrets[5] + `","device":{"code":"` + secrets[6] + `","user":42}}`),
		[]byte(`{"type":"query","params":{"pin":"` + secrets[7] + `","n":[1,2]},"id":3}`),
		[]byte(`not json but has a password: ` + secrets[8]),
		[]byte(`{"type":"query","op":"tasks.list","id":4}`),
	}
	exchange(t, ctx, c, msgs, 0)
	c.Close(websocket.StatusNormalClosure, "")

	sessions, _ := r.sessions()
	var all bytes.Buffer
	for _, evs := range sessions {
		for _, e := range evs {
			all.Write(e.Payload)
			if e.Open != nil {
				all.WriteString(e.Open.Route)
				for k, vs := range e.Open.Header {
					all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
				}
			}
		}
		open := evs[0].Open
		if open.Header.Get("X-Trace") != "trace-1" || !strings.Contains(open.Route, "room=5") {
			t.Errorf("redaction removed more than it should: %q %v", open.Route, open.Header)
		}
		if !strings.Contains(open.Header.Get("Authorization"), redact.Marker) {
			t.Errorf("Authorization = %q, want the marker", open.Header.Get("Authorization"))
		}
		client := frames(evs, session.ClientToServer)
		if client[3] != string(msgs[3]) {
			t.Errorf("an untouched message changed: %q", client[3])
		}
		if !strings.Contains(client[0], `"user":42`) || !strings.Contains(client[0], redact.Marker) {
			t.Errorf("connect message redacted wrongly: %q", client[0])
		}
	}
	files := readTree(t, r.dir)
	for _, s := range secrets {
		if bytes.Contains(all.Bytes(), []byte(s)) {
			t.Errorf("secret %q reached the captured session", s)
		}
		if bytes.Contains(files, []byte(s)) {
			t.Errorf("secret %q is in the stream's files", s)
		}
	}
	if counter(t, r.rec, `preheat_tap_redactions_total{what="field"}`) < 3 || counter(t, r.rec, `preheat_tap_redactions_total{what="blanked"}`) < 1 {
		t.Errorf("redactions not counted")
	}
}

func readTree(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}

// TestTapPolicy checks sampling, route rules and run-time switches.
func TestTapPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}})
	policy := capture.Policy{SampleRate: 0.5, Exclude: []string{"/sync/admin*"}}
	r := newRig(t, up.URL, policy, nil)
	talk := func(path string) {
		c := dial(t, ctx, r.wsURL()+path, nil)
		exchange(t, ctx, c, [][]byte{[]byte(`{"type":"connect"}`)}, 0)
		c.Close(websocket.StatusNormalClosure, "")
	}
	const n = 200
	for range n {
		talk("/sync")
	}
	talk("/sync/admin/x")
	r.rec.SetEnabled(false)
	talk("/sync")
	r.rec.SetEnabled(true)
	if err := r.rec.SetRouteEnabled("/sync", false); err != nil {
		t.Fatal(err)
	}
	talk("/sync")
	talk("/other") // still recorded, sampling permitting

	sessions, _ := r.sessions()
	sampled := 0
	for _, evs := range sessions {
		switch route := evs[0].Open.Route; route {
		case "/sync":
			sampled++
		case "/other":
		default:
			t.Errorf("recorded route %q", route)
		}
	}
	// Binomial(200, 0.5): 4.5 standard deviations either side.
	if sampled < 68 || sampled > 132 {
		t.Errorf("recorded %d of %d sessions at rate 0.5", sampled, n)
	}
	skipped := counter(t, r.rec, `preheat_tap_sessions_skipped_total{reason="sampled_out"}`)
	if int(skipped)+sampled < n || int(skipped)+sampled > n+2 {
		t.Errorf("sampled_out %v + recorded %d do not account for %d sessions", skipped, sampled, n)
	}
	for _, reason := range []string{"excluded", "off", "route_off"} {
		if counter(t, r.rec, `preheat_tap_sessions_skipped_total{reason="`+reason+`"}`) != 1 {
			t.Errorf("skipped{%s} != 1", reason)
		}
	}
}

// TestTapSessionCaps checks that a session over its frame cap stops being
// recorded, ends with the tap's close event, and goes on being proxied.
func TestTapSessionCaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}})
	r := newRig(t, up.URL, capture.DefaultPolicy(), &capture.RecorderOptions{MaxSessionFrames: 6, MaxMessageBytes: 100})
	c := dial(t, ctx, r.wsURL()+"/sync", nil)
	msgs := testMessages(20)
	got := exchange(t, ctx, c, msgs, 0)
	if !reflect.DeepEqual(got, msgs) {
		t.Fatal("echo through a capped session differs")
	}
	c.Close(websocket.StatusNormalClosure, "")
	sessions, _ := r.sessions()
	for _, evs := range sessions {
		if n := len(evs); n != 1+6+1 {
			t.Fatalf("%d events, want open + 6 frames + close", n)
		}
		last := evs[len(evs)-1]
		if last.ClosedBy != session.SideTap || last.Reason != "preheat: frames" {
			t.Fatalf("close = %+v", last)
		}
		for _, e := range evs[1:7] {
			if len(e.Payload) > 100 || (len(e.Payload) == 100) != e.Truncated {
				t.Fatalf("frame of %d bytes, truncated %v", len(e.Payload), e.Truncated)
			}
		}
	}
}

// TestTapPlainHTTP checks that requests that are not upgrades, and refused
// upgrades, are proxied with their bodies.
func TestTapPlainHTTP(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/refuse":
			w.Header().Set("X-Why", "no")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "not for you")
		default:
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Host", r.Host)
			w.Header().Set("X-Forwarded-For-Seen", r.Header.Get("X-Forwarded-For"))
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
		}
	}))
	defer up.Close()
	r := newRig(t, up.URL, capture.DefaultPolicy(), nil)

	resp, err := http.Post(r.srv.URL+"/api/x?y=1", "text/plain", strings.NewReader("body!"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST /api/x?y=1 body!" || resp.Header.Get("X-Forwarded-For-Seen") != "127.0.0.1" {
		t.Fatalf("plain request: %q, headers %v", b, resp.Header)
	}
	if host := resp.Header.Get("X-Host"); host != r.srv.Listener.Addr().String() {
		t.Fatalf("upstream saw Host %q, want the client's %q", host, r.srv.Listener.Addr())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err = websocket.Dial(ctx, r.wsURL()+"/refuse", nil)
	if err == nil {
		t.Fatal("upgrade refused by the upstream succeeded")
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Why") != "no" || string(b) != "not for you" {
		t.Fatalf("refusal relayed as %d %v %q", resp.StatusCode, resp.Header, b)
	}
	if sessions, _ := r.sessions(); len(sessions) != 0 {
		t.Fatalf("captured %d sessions from refused upgrades", len(sessions))
	}
}

// TestTapShutdown checks that Shutdown waits for open sessions, and closes
// them at its deadline.
func TestTapShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{Subprotocols: []string{"sync.v3"}})
	r := newRig(t, up.URL, capture.DefaultPolicy(), nil)
	c := dial(t, ctx, r.wsURL()+"/sync", nil)
	exchange(t, ctx, c, [][]byte{[]byte("hi")}, 0)

	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if err := r.tap.Shutdown(sctx); err == nil {
		t.Fatal("Shutdown returned nil with a session open past its deadline")
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("session still open after Shutdown's deadline")
	}
	if _, _, err := websocket.Dial(ctx, r.wsURL()+"/sync", nil); err == nil {
		t.Fatal("upgrade accepted after Shutdown")
	}
	sessions, _ := r.sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	for _, evs := range sessions {
		if last := evs[len(evs)-1]; last.Kind != session.KindClose || last.ClosedBy != session.SideTap {
			t.Fatalf("last event = %+v, want the tap's close", last)
		}
	}
}

// leakJWT returns a distinct short JWT (one fits in a close reason) and the
// parts of it that must not reach the stream.
func leakJWT(name string) (string, []string) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"` + name + `"}`))
	sig := base64.RawURLEncoding.EncodeToString([]byte("sig-" + name))
	return "eyJhbGciOiJIUzI1NiJ9." + payload + "." + sig, []string{payload, sig}
}

// TestNoSecretLeavesTheTapByDefault plants, through a real client and the
// real tap with the default policy, every kind of secret that real
// deployments carry: credential headers set by auth proxies, a token in
// Sec-WebSocket-Protocol, JSON keys spelled every way, tokens outside any
// key (a JWT or "Bearer ..." in a text message, a query parameter, a
// header, the path), and close reasons in both directions. None may reach
// the stream, in the decoded sessions or in its files; what is not secret
// stays readable.
func TestNoSecretLeavesTheTapByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The upstream echoes, and on "close please" closes with a reason that
	// quotes a token.
	serverJWT, serverParts := leakJWT("server-close")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"sync.v3", "graphql-transport-ws"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if string(msg) == "close please" {
				c.Close(websocket.StatusPolicyViolation, "revoked "+serverJWT)
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	rig := newRig(t, up.URL, capture.DefaultPolicy(), nil)

	var secrets []string
	secret := func(name string) string {
		s := "S3cr3t-" + name + "-" + strings.Repeat("x", 4)
		secrets = append(secrets, s)
		return s
	}
	jwt := func(name string) string {
		s, parts := leakJWT(name)
		secrets = append(secrets, parts...)
		return s
	}
	opaque := "gho_" + "16C7e42F292c6912E7710c838347Ae178B4a" // a bearer token's shape
	secrets = append(secrets, opaque[4:])

	// Session one: headers, route, subprotocol, messages, a client close.
	h := http.Header{}
	for _, name := range []string{
		"X-Forwarded-Access-Token", "X-Auth-Request-Access-Token", "X-Amzn-Oidc-Data",
		"Cf-Access-Jwt-Assertion", "X-Session-Token", "X-Api-Key", "Authorization", "Cookie",
	} {
		h.Set(name, secret(name))
	}
	h.Set("X-Debug", "sent with Bearer "+opaque)
	h.Set("X-Trace", "trace-1")
	route := "/sync/" + jwt("path") + "?client=web&userJwt=" + secret("query-jwt") + "&q=" + jwt("query-value") + "&h=Bearer%20" + opaque
	protoToken := secret("proto")
	c := dial(t, ctx, rig.wsURL()+route, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"sync.v3", "access_token", protoToken}})
	if c.Subprotocol() != "sync.v3" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	msgs := [][]byte{
		[]byte(`{"type":"connect","jwt":"` + secret("jwt") + `","user_token":"` + secret("user_token") + `","apiToken":"` + secret("apiToken") +
			`","csrfToken":"` + secret("csrfToken") + `","x-api-key":"` + secret("x-api-key") + `","access-token":"` + secret("access-token") +
			`","secretKey":"` + secret("secretKey") + `","auth":{"id":"` + secret("auth") + `"},"passwords":["` + secret("passwords") +
			`"],"credentials":{"pass":"` + secret("credentials.pass") + `"},"token_type":"Bearer","client":"web"}`),
		[]byte(`{"type":"query","note":"` + jwt("json-value") + `","header":"Bearer ` + opaque + `","op":"tasks.list"}`),
		[]byte(`hello ` + jwt("text") + ` bye`),
		[]byte(`42["msg",{"x":"` + jwt("socketio") + `"}]`),
		[]byte(`{"type":"query","op":"tasks.list","id":4}`),
	}
	exchange(t, ctx, c, msgs, 0)
	bin := append([]byte{0x82, 0xa1, 'x'}, jwt("binary")...)
	if err := c.Write(ctx, websocket.MessageBinary, bin); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	clientJWT := jwt("client-close")
	c.Close(websocket.StatusPolicyViolation, "bad token "+clientJWT)

	// Session two: a JWT as the only subprotocol entry but one, and a close
	// from the server that quotes a token.
	protoJWT := jwt("proto-jwt")
	c2 := dial(t, ctx, rig.wsURL()+"/sync", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws", protoJWT}})
	if err := c2.Write(ctx, websocket.MessageText, []byte("close please")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("read after close please: %v", err)
	}
	c2.CloseNow()
	secrets = append(secrets, serverParts...)

	sessions, _ := rig.sessions()
	if len(sessions) != 2 {
		t.Fatalf("captured %d sessions, want 2", len(sessions))
	}
	var all strings.Builder
	for _, evs := range sessions {
		for _, e := range evs {
			all.Write(e.Payload)
			all.WriteString("\n" + e.Reason + "\n")
			if o := e.Open; o != nil {
				all.WriteString(o.Route + "\n" + o.Subprotocol + "\n" + o.Extensions + "\n")
				for k, vs := range o.Header {
					all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
				}
			}
		}
		open := evs[0].Open
		last := evs[len(evs)-1]
		if last.Kind != session.KindClose || !strings.Contains(last.Reason, redact.Marker) {
			t.Errorf("close event %+v: want its reason redacted", last)
		}
		switch {
		case strings.HasPrefix(open.Route, "/sync/"):
			// What is not secret stays readable, for the replayer.
			if open.Subprotocol != "sync.v3" || !strings.HasPrefix(open.Header.Get("Sec-Websocket-Protocol"), "sync.v3,access_token,") {
				t.Errorf("subprotocol %q, offered %q: the protocol names must stay", open.Subprotocol, open.Header.Get("Sec-Websocket-Protocol"))
			}
			if open.Header.Get("X-Trace") != "trace-1" || open.Header.Get("X-Debug") != "sent with Bearer "+redact.Marker {
				t.Errorf("headers %v", open.Header)
			}
			if !strings.Contains(open.Route, "client=web") {
				t.Errorf("route %q", open.Route)
			}
			client := frames(evs, session.ClientToServer)
			if len(client) != len(msgs)+1 {
				t.Fatalf("%d client frames, want %d", len(client), len(msgs)+1)
			}
			for _, want := range []string{`"token_type":"Bearer"`, `"client":"web"`} {
				if !strings.Contains(client[0], want) {
					t.Errorf("connect message %s: %s should stay", client[0], want)
				}
			}
			if !json.Valid([]byte(client[0])) || !json.Valid([]byte(client[1])) {
				t.Errorf("redacted JSON is not valid: %s %s", client[0], client[1])
			}
			if client[2] != "hello "+redact.Marker+" bye" || client[4] != string(msgs[4]) {
				t.Errorf("text frames %q, %q", client[2], client[4])
			}
		default:
			if open.Subprotocol != "graphql-transport-ws" {
				t.Errorf("subprotocol %q, want graphql-transport-ws", open.Subprotocol)
			}
		}
	}
	files := readTree(t, rig.dir)
	for _, s := range append(secrets, protoToken, clientJWT, serverJWT, protoJWT) {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q reached the captured sessions", s)
		}
		if bytes.Contains(files, []byte(s)) {
			t.Errorf("secret %q is in the stream's files", s)
		}
	}
	for _, what := range []string{"header", "query", "field", "token", "blanked", "close_reason"} {
		if counter(t, rig.rec, `preheat_tap_redactions_total{what="`+what+`"}`) < 1 {
			t.Errorf("no %s redaction counted", what)
		}
	}
}

// TestTapTLS runs the tap with TLS on both sides: a wss client, an https
// upstream verified against its own CA.
func TestTapTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := wsecho.Start(t, &wsecho.Options{TLS: true})
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

// TestTapForwardedHeadersSameOnUpgrade: for plain requests the tap uses
// httputil.ReverseProxy with Rewrite, which drops the client's
// X-Forwarded-For and Forwarded headers before SetXForwarded. Upgrades get
// the same headers upstream; were the client's kept (appended to, or
// forwarded untouched), a client could put any address in front of its own
// on websocket upgrades only.
func TestTapForwardedHeadersSameOnUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Forwarded", r.Header.Get("Forwarded"))
		w.WriteHeader(http.StatusForbidden) // refuse upgrades: the tap relays the headers
	}))
	defer up.Close()
	tap, err := capture.NewTap(up.URL, nil, &capture.TapOptions{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(tap)
	defer front.Close()
	get := func(upgrade bool) (xff, fwd string) {
		req, _ := http.NewRequest("GET", front.URL+"/sync", nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", "13")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Seen-XFF"), resp.Header.Get("X-Seen-Forwarded")
	}
	px, pf := get(false)
	ux, uf := get(true)
	if px != ux || pf != uf {
		t.Fatalf("upstream saw X-Forwarded-For %q, Forwarded %q on a plain request but %q, %q on an upgrade", px, pf, ux, uf)
	}
}
