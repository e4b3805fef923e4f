package wsframe_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture/wsframe"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/internal/wsecho"
)

func TestMain(m *testing.M) {
	leaktest.Main(m)
}

// tap is one direction of the test relay: it skips the HTTP upgrade, then
// feeds a parser and records what it emits.
type tap struct {
	client   bool
	header   []byte
	inFrames bool
	params   chan *wsframe.DeflateParams // the server direction sends, the client one receives
	ext      string                      // server direction: the response's extensions header

	mu     sync.Mutex
	p      *wsframe.Parser
	msgs   []rec
	err    error
	notify chan struct{} // signalled after each control frame
}

func (t *tap) feed(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	if !t.inFrames {
		t.header = append(t.header, b...)
		i := bytes.Index(t.header, []byte("\r\n\r\n"))
		if i < 0 {
			return
		}
		b = t.header[i+4:]
		t.inFrames = true
		if !t.client {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(t.header[:i+4])), nil)
			if err != nil {
				t.err = err
				return
			}
			t.ext = strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
			d, err := wsframe.ParseDeflate(t.ext)
			if err != nil {
				t.err = err
				return
			}
			t.params <- d
			t.p = wsframe.NewParser(&wsframe.Options{Deflate: d})
		}
	}
	if len(b) == 0 {
		return
	}
	if t.p == nil {
		// The client sends frames only after the response, so the server
		// direction has parsed it by now.
		t.p = wsframe.NewParser(&wsframe.Options{Client: true, Deflate: <-t.params})
	}
	t.err = t.p.Feed(b, func(m *wsframe.Message) {
		t.msgs = append(t.msgs, toRec(m))
		if m.Opcode.IsControl() {
			select {
			case t.notify <- struct{}{}:
			default:
			}
		}
	})
}

func (t *tap) result() ([]rec, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.p != nil {
		t.p.Release()
	}
	return t.msgs, t.err
}

// relay accepts one connection on ln, dials upstream and copies both ways,
// teeing each direction into a tap. The taps parse on the copying goroutine
// after the bytes were forwarded, as the real tap hands them off after the
// write.
func relay(t *testing.T, ln net.Listener, upstream string, c2s, s2c *tap) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		down, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer down.Close()
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			t.Error(err)
			return
		}
		defer up.Close()
		copyTee := func(dst, src net.Conn, tp *tap) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					chunk := bytes.Clone(buf[:n])
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
					tp.feed(chunk)
				}
				if err != nil {
					break
				}
			}
			// Half-close so the peer sees EOF after the close handshake.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
		var inner sync.WaitGroup
		inner.Go(func() { copyTee(up, down, c2s) })
		inner.Go(func() { copyTee(down, up, s2c) })
		inner.Wait()
	})
	return wg.Wait
}

type sent struct {
	typ  websocket.MessageType
	data []byte
}

func testMessages() []sent {
	g := corpus.New(7)
	rng := rand.New(rand.NewPCG(5, 6))
	sized := func(typ websocket.MessageType, n int) sent {
		if typ == websocket.MessageBinary {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return sent{typ, b}
		}
		var b []byte
		for len(b) < n {
			b = append(b, g.Update()...)
		}
		return sent{typ, b[:n]}
	}
	var msgs []sent
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 200 << 10} {
		msgs = append(msgs, sized(websocket.MessageText, n), sized(websocket.MessageBinary, n))
	}
	msgs = append(msgs, sent{websocket.MessageText, g.Connect()})
	for range 40 {
		kind := g.Kind()
		msgs = append(msgs, sent{websocket.MessageText, g.Query(kind)}, sent{websocket.MessageText, g.Result(g.LastID(), kind)})
		if rng.IntN(3) == 0 {
			msgs = append(msgs, sized(websocket.MessageBinary, rng.IntN(5000)))
		}
	}
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	return msgs
}

// TestTransport runs coder/websocket clients and servers through a loopback
// relay that taps both directions, and checks the taps saw exactly what
// each side sent.
func TestTransport(t *testing.T) {
	const threshold = 100
	modes := []struct {
		name string
		mode websocket.CompressionMode
		ext  string
	}{
		{"disabled", websocket.CompressionDisabled, ""},
		{"no_context_takeover", websocket.CompressionNoContextTakeover, "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		{"context_takeover", websocket.CompressionContextTakeover, "permessage-deflate"},
	}
	msgs := testMessages()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()

			srv := wsecho.Start(t, &wsecho.Options{
				CompressionMode: m.mode, CompressionThreshold: threshold, ReadLimit: 1 << 20, FailOnAcceptError: true,
			})

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			params := make(chan *wsframe.DeflateParams, 1)
			c2s := &tap{client: true, params: params, notify: make(chan struct{}, 1)}
			s2c := &tap{params: params, notify: make(chan struct{}, 1)}
			wait := relay(t, ln, srv.Listener.Addr().String(), c2s, s2c)

			c, resp, err := websocket.Dial(ctx, "ws://"+ln.Addr().String(), &websocket.DialOptions{
				CompressionMode: m.mode, CompressionThreshold: threshold})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != m.ext {
				t.Errorf("negotiated %q, want %q", got, m.ext)
			}

			var wantC2S, wantS2C []rec
			compressed := func(n int) bool { return m.mode != websocket.CompressionDisabled && n >= threshold }
			for i, s := range msgs {
				ping := i%9 == 4
				pingErr := make(chan error, 1)
				if ping {
					go func() { pingErr <- c.Ping(ctx) }()
					// Wait for the tap to see the ping, so it goes out
					// before the next message.
					select {
					case <-c2s.notify:
					case <-ctx.Done():
						t.Fatal("ping not seen")
					}
					wantC2S = append(wantC2S, rec{Opcode: wsframe.OpPing})
					wantS2C = append(wantS2C, rec{Opcode: wsframe.OpPong})
				}
				if err := c.Write(ctx, s.typ, s.data); err != nil {
					t.Fatal(err)
				}
				typ, data, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if typ != s.typ || !bytes.Equal(data, s.data) {
					t.Fatalf("message %d: echo differs", i)
				}
				if ping {
					if err := <-pingErr; err != nil {
						t.Fatal(err)
					}
				}
				op := wsframe.OpText
				if s.typ == websocket.MessageBinary {
					op = wsframe.OpBinary
				}
				r := rec{Opcode: op, Payload: string(s.data), Compressed: compressed(len(s.data))}
				wantC2S = append(wantC2S, r)
				wantS2C = append(wantS2C, r)
			}
			if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatal(err)
			}
			closeRec := rec{Opcode: wsframe.OpClose, Payload: "\x03\xe8bye", CloseCode: 1000, CloseReason: "bye"}
			wantC2S = append(wantC2S, closeRec)
			wantS2C = append(wantS2C, closeRec)
			srv.CloseClientConnections()
			wait()

			if s2c.ext != m.ext {
				t.Errorf("tap saw extensions %q, want %q", s2c.ext, m.ext)
			}
			check := func(name string, tp *tap, want []rec) {
				t.Helper()
				got, err := tp.result()
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if len(got) != len(want) {
					t.Errorf("%s: got %d messages, want %d", name, len(got), len(want))
				}
				for i := range min(len(got), len(want)) {
					g := got[i]
					if g.WireBytes < len(g.Payload) && !g.Compressed || g.WireBytes < 2 {
						t.Errorf("%s: message %d: %d wire bytes for %d payload bytes", name, i, g.WireBytes, len(g.Payload))
					}
					g.WireBytes = 0
					switch g.Opcode {
					case wsframe.OpPing, wsframe.OpPong:
						g.Payload = "" // compared below
					}
					if !reflect.DeepEqual(g, want[i]) {
						t.Fatalf("%s: message %d:\n got %v\nwant %v", name, i, g, want[i])
					}
				}
			}
			check("client to server", c2s, wantC2S)
			check("server to client", s2c, wantS2C)
			// Pongs echo their pings.
			var pings, pongs []string
			for _, r := range c2s.msgs {
				if r.Opcode == wsframe.OpPing {
					pings = append(pings, r.Payload)
				}
			}
			for _, r := range s2c.msgs {
				if r.Opcode == wsframe.OpPong {
					pongs = append(pongs, r.Payload)
				}
			}
			if fmt.Sprint(pings) != fmt.Sprint(pongs) || len(pings) == 0 {
				t.Errorf("pings %q, pongs %q", pings, pongs)
			}
		})
	}
}
