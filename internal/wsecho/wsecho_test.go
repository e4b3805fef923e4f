package wsecho_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/internal/wsecho"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// TestEcho checks that each kind of message comes back as sent, with the
// subprotocol and compression negotiated as configured, plain and over TLS.
func TestEcho(t *testing.T) {
	f := func(name string, opts *wsecho.Options, dial websocket.DialOptions, wantProto, wantExt string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			srv := wsecho.Start(t, opts)
			if opts != nil && opts.TLS {
				dial.HTTPClient = srv.Client()
			}
			c, resp, err := websocket.Dial(ctx, wsURL(srv.URL)+"/any/path", &dial)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(4 << 20)
			if got := c.Subprotocol(); got != wantProto {
				t.Errorf("subprotocol %q, want %q", got, wantProto)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != wantExt {
				t.Errorf("extensions %q, want %q", got, wantExt)
			}
			msgs := []struct {
				typ  websocket.MessageType
				data []byte
			}{
				{websocket.MessageText, []byte(`{"type":"hello"}`)},
				{websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
				{websocket.MessageText, nil},
				{websocket.MessageBinary, bytes.Repeat([]byte("large "), 500<<10)},
			}
			for i, m := range msgs {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					t.Fatal(err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
					t.Fatalf("message %d: echo %v of %d bytes, %v; sent %v of %d", i, typ, len(got), err, m.typ, len(m.data))
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
	f("defaults", nil, websocket.DialOptions{}, "", "")
	f("subprotocol", &wsecho.Options{Subprotocols: []string{"sync.v3", "other"}},
		websocket.DialOptions{Subprotocols: []string{"other", "sync.v3"}}, "sync.v3", "")
	f("compression", &wsecho.Options{CompressionMode: websocket.CompressionContextTakeover},
		websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover}, "", "permessage-deflate")
	f("tls", &wsecho.Options{TLS: true}, websocket.DialOptions{}, "", "")
}

// TestReadLimit checks that a message past ReadLimit ends its connection.
func TestReadLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := wsecho.Start(t, &wsecho.Options{ReadLimit: 1 << 10})
	c, _, err := websocket.Dial(ctx, wsURL(srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<10)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatalf("a message of ReadLimit bytes: %v", err)
	}
	c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<10+1))
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("a message past ReadLimit: %v, want status %v", err, websocket.StatusMessageTooBig)
	}
}

// TestCleanupClosesOpenConnections checks that a test which leaves its
// connection open still ends with the echo's handler gone.
func TestCleanupClosesOpenConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var c *websocket.Conn
	t.Run("leaves a connection open", func(t *testing.T) {
		srv := wsecho.Start(t, nil)
		var err error
		c, _, err = websocket.Dial(ctx, wsURL(srv.URL), nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("read after the echo's test ended: %v (ctx %v), want the connection closed", err, ctx.Err())
	}
}

// TestFailOnAcceptError checks that a plain request is an error for a test
// that asked so, and is answered without failing one that did not.
func TestFailOnAcceptError(t *testing.T) {
	srv := wsecho.Start(t, nil)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode < 400 {
		t.Fatalf("plain request answered %d", resp.StatusCode)
	}
	// A real failure would fail this test, so a TB that records Errorf
	// stands in for it.
	tb := &recordingTB{TB: t, errs: make(chan string, 1)}
	strict := wsecho.Start(tb, &wsecho.Options{FailOnAcceptError: true})
	if resp, err := http.Get(strict.URL); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	select {
	case <-tb.errs:
	case <-time.After(10 * time.Second):
		t.Fatal("a refused upgrade did not fail the test")
	}
}

// recordingTB is a testing.TB whose Errorf records instead of failing.
type recordingTB struct {
	testing.TB
	errs chan string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	select {
	case r.errs <- fmt.Sprintf(format, args...):
	default:
	}
}
