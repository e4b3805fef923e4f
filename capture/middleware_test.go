package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/session"
)

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

// TestMiddlewarePassesHalfCloseThroughReverseProxy: httputil.ReverseProxy,
// which the Middleware doc names as a supported handler, passes a
// backend's half-close on only when the connection it hijacked has
// CloseWrite. Behind the middleware, as without it, the client's last bytes
// after the backend half-closed must still reach the backend; a wrapper
// that hid CloseWrite would end the connection and lose them.
func TestMiddlewarePassesHalfCloseThroughReverseProxy(t *testing.T) {
	f := func(t *testing.T, wrap bool) {
		t.Helper()
		// The backend answers the upgrade, sends one frame, half-closes,
		// and then reads what the client still sends.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		received := make(chan []byte, 1)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil {
				received <- nil
				return
			}
			accept := acceptKey(req.Header.Get("Sec-WebSocket-Key"))
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept)
			c.Write(frame(true, 1, []byte("bye"), false))
			c.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(br)
			received <- got
		})
		u, _ := url.Parse("http://" + ln.Addr().String())
		var h http.Handler = httputil.NewSingleHostReverseProxy(u)
		if wrap {
			rec, _ := recorderOnly(t, nil)
			h = rec.Middleware(h)
		}
		front := httptest.NewServer(h)
		defer front.Close()

		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		if rest, err := io.ReadAll(br); err != nil || !bytes.Equal(rest, frame(true, 1, []byte("bye"), false)) {
			t.Fatalf("before EOF the client read %q, %v", rest, err)
		}
		last := frame(true, 1, []byte("last words"), true)
		c.Write(last)
		c.(*net.TCPConn).CloseWrite()
		select {
		case got := <-received:
			if !bytes.Equal(got, last) {
				t.Fatalf("backend received %d bytes after its half-close, want the client's %d", len(got), len(last))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("backend never saw the client's end")
		}
	}
	t.Run("plain", func(t *testing.T) { f(t, false) })
	t.Run("middleware", func(t *testing.T) { f(t, true) })
}
