package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/session"
)

// cores are the tap's ways of proxying an upgraded connection; the tests
// below run under each and check, by the tap's counter, that the one they
// name proxied it. The event loop exists on Linux only. Its loops wait in
// epoll_wait by default (fewer loops than Ps); with as many loops as Ps
// they park on the runtime's poller instead (event_loop_parked).
var cores = []struct {
	name string
	opts capture.TapOptions
}{
	{"event_loop", capture.TapOptions{}},
	{"event_loop_parked", capture.TapOptions{EventLoops: runtime.GOMAXPROCS(0)}},
	{"goroutines", capture.TapOptions{NoEventLoop: true}},
}

// checkCore fails t unless every websocket r's tap proxied went through
// core, and n of them did.
func checkCore(t *testing.T, r *rig, core string, n int) {
	t.Helper()
	core, _, _ = strings.Cut(core, "_parked")
	if core == "event_loop" && runtime.GOOS != "linux" {
		core = "goroutines"
	}
	if got := metricValue(r.tap.Metrics(), `preheat_tap_websockets_proxied_total{core="`+core+`"}`); got != float64(n) {
		t.Fatalf("%v connections proxied by the %s core, want %d", got, core, n)
	}
}

// rawServer is a websocket upstream written by hand: it answers every
// upgrade with a 101 response, then hands the connection to serve, in the
// connection's own goroutine.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					c.Close()
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
					acceptKey(req.Header.Get("Sec-WebSocket-Key")))
				serve(c, br)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

// rawUpgrade dials the tap at addr, sends an upgrade request for path with
// first right behind it (pipelined, before the response), and reads the
// response header byte by byte, so that nothing after it is consumed.
func rawUpgrade(t *testing.T, addr, path string, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), first...)); err != nil {
		t.Fatal(err)
	}
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("reading the upgrade response: %v (got %q)", err, head)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("upgrade refused: %q", head)
	}
	return c
}

// bulkFrames returns n binary frames of size bytes each, masked as a
// client sends them or not, and their payloads.
func bulkFrames(n, size int, masked bool) (wire []byte, payloads []string) {
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, size)
		p[0], p[size-1] = byte(i>>8), 0xA5
		wire = append(wire, frame(true, 2, p, masked)...)
		payloads = append(payloads, string(p))
	}
	return wire, payloads
}

// TestTapBackpressure moves 16 MiB each way through the tap to peers that
// do not read for a while (far more than the sockets' buffers hold), the
// client's first frame pipelined behind its upgrade request. Each side gets
// exactly the bytes the other sent, a half-close passes through after
// them, and capture records every frame of both directions.
func TestTapBackpressure(t *testing.T) {
	const nFrames, size = 256, 64 << 10
	toServer, clientPayloads := bulkFrames(nFrames, size, true)
	toClient, serverPayloads := bulkFrames(nFrames, size, false)
	for _, core := range cores {
		t.Run(core.name, func(t *testing.T) {
			received := make(chan []byte, 1)
			up := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				defer c.Close()
				// Not read for a while: the tap's writes to it back up.
				// (Its receive buffer stays small, as autotuning grows it
				// only as it is read; shrinking it with SetReadBuffer
				// after the connection is up made the kernel drop
				// segments already in flight, and retransmissions backed
				// off past the test's deadline.)
				time.Sleep(300 * time.Millisecond)
				got, _ := io.ReadAll(br)
				received <- got
				c.Write(toClient)
			})
			r := newRigTap(t, up, capture.DefaultPolicy(), &capture.RecorderOptions{
				MaxSessionBytes: 64 << 20, MaxSessionFrames: 4 * nFrames, BudgetBytes: 256 << 20, TapID: "test-tap",
			}, &core.opts)
			c := rawUpgrade(t, r.srv.Listener.Addr().String(), "/bulk", toServer[:size+14])
			writeErr := make(chan error, 1)
			go func() {
				_, err := c.Write(toServer[size+14:])
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				writeErr <- err
			}()
			select {
			case got := <-received:
				if !bytes.Equal(got, toServer) {
					t.Fatalf("upstream received %d bytes (sha256 %x), client sent %d (%x)", len(got), sha256.Sum256(got), len(toServer), sha256.Sum256(toServer))
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream never saw the client's half-close")
			}
			if err := <-writeErr; err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // now the client's side backs up
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, toClient) {
				t.Fatalf("client received %d bytes, upstream sent %d; not identical", len(got), len(toClient))
			}
			checkCore(t, r, core.name, 1)
			sessions, _ := r.sessions()
			if len(sessions) != 1 {
				t.Fatalf("captured %d sessions", len(sessions))
			}
			for _, evs := range sessions {
				for dir, want := range map[session.Direction][]string{session.ClientToServer: clientPayloads, session.ServerToClient: serverPayloads} {
					got := frames(evs, dir)
					if len(got) != len(want) {
						t.Fatalf("direction %v: captured %d frames, want %d", dir, len(got), len(want))
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("direction %v: frame %d differs", dir, i)
						}
					}
				}
			}
		})
	}
}

// TestTapHalfCloseThenStream: one side half-closes, then the other sends
// far more than the sockets hold and closes, while the receiver is not
// reading yet. Every byte arrives before the end, in both orders. (The
// first event loop lost the tail: the sender's socket reported a hang-up
// while the loop was not reading it, and the pair ended as reset.)
func TestTapHalfCloseThenStream(t *testing.T) {
	wire, _ := bulkFrames(64, 64<<10, false)
	masked, _ := bulkFrames(64, 64<<10, true)
	for _, core := range cores {
		for _, first := range []string{"client", "upstream"} {
			t.Run(core.name+"/"+first+"_half_closes", func(t *testing.T) {
				received := make(chan []byte, 1)
				up := rawServer(t, func(c net.Conn, br *bufio.Reader) {
					defer c.Close()
					if first == "client" {
						io.ReadAll(br) // until the client's half-close
						c.Write(wire)
						return
					}
					c.(*net.TCPConn).CloseWrite()
					time.Sleep(300 * time.Millisecond) // the client's stream backs up
					got, _ := io.ReadAll(br)
					received <- got
				})
				r := newRigTap(t, up, capture.DefaultPolicy(), &capture.RecorderOptions{MaxSessionBytes: 64 << 20, TapID: "test-tap"}, &core.opts)
				c := rawUpgrade(t, r.srv.Listener.Addr().String(), "/half", nil)
				if first == "client" {
					c.(*net.TCPConn).CloseWrite()
					time.Sleep(300 * time.Millisecond) // the upstream's stream backs up
					got, err := io.ReadAll(c)
					if err != nil || !bytes.Equal(got, wire) {
						t.Fatalf("client received %d of %d bytes (err %v)", len(got), len(wire), err)
					}
				} else {
					if _, err := io.ReadAll(c); err != nil { // the upstream's half-close
						t.Fatal(err)
					}
					if _, err := c.Write(masked); err != nil {
						t.Fatal(err)
					}
					c.Close()
					select {
					case got := <-received:
						if !bytes.Equal(got, masked) {
							t.Fatalf("upstream received %d of %d bytes", len(got), len(masked))
						}
					case <-time.After(20 * time.Second):
						t.Fatal("the upstream never saw the client's end")
					}
				}
				checkCore(t, r, core.name, 1)
				if n := counter(t, r.rec, `preheat_tap_sessions_cut_total{reason="parse"}`); n != 0 {
					t.Fatalf("%v sessions cut", n)
				}
			})
		}
	}
}

// TestTapReset: a peer that resets its connection ends the proxied pair at
// once. When the client resets, the upstream sees its connection end; when
// the upstream resets while the client is still sending, the client's
// connection ends. Either way the tap counts no open websocket after, and
// the session's close names the side that reset.
func TestTapReset(t *testing.T) {
	for _, core := range cores {
		for _, side := range []session.Side{session.SideClient, session.SideServer} {
			t.Run(core.name+"/"+side.String(), func(t *testing.T) {
				ended := make(chan error, 1)
				up := rawServer(t, func(c net.Conn, br *bufio.Reader) {
					defer c.Close()
					if side == session.SideServer {
						// Read the first frame, then reset.
						io.ReadFull(br, make([]byte, 24))
						c.(*net.TCPConn).SetLinger(0)
						return
					}
					_, err := io.Copy(io.Discard, br)
					ended <- err
				})
				r := newRigTap(t, up, capture.DefaultPolicy(), nil, &core.opts)
				c := rawUpgrade(t, r.srv.Listener.Addr().String(), "/reset", frame(true, 1, []byte(`{"type":"connect"}`), true))
				waitFor(t, "the tap to record the first frame", func() bool {
					return counter(t, r.rec, `preheat_tap_frames_recorded_total{direction="client"}`) == 1
				})
				if side == session.SideClient {
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					select {
					case <-ended:
					case <-time.After(10 * time.Second):
						t.Fatal("the upstream's connection outlived the client's reset")
					}
				} else {
					// Keep sending while the upstream resets, so that the tap
					// may meet the reset writing as well as reading.
					go func() {
						msg := frame(true, 1, []byte(`{"type":"query","op":"tasks.list"}`), true)
						for range 2000 {
							if _, err := c.Write(msg); err != nil {
								return
							}
						}
					}()
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.Copy(io.Discard, c); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatal("the client's connection outlived the upstream's reset")
					}
				}
				waitFor(t, "the tap to let go of the connection", func() bool {
					return metricValue(r.tap.Metrics(), "preheat_tap_websockets_active") == 0
				})
				checkCore(t, r, core.name, 1)
				sessions, _ := r.sessions()
				if len(sessions) != 1 {
					t.Fatalf("captured %d sessions", len(sessions))
				}
				for _, evs := range sessions {
					last := evs[len(evs)-1]
					if last.Kind != session.KindClose || last.ClosedBy != side {
						t.Fatalf("last event = %+v, want a close by the %v", last, side)
					}
				}
			})
		}
	}
}

// TestTapIdleConnectionsHoldNoGoroutines: on Linux, an idle connection in
// the event loop holds no goroutine, where the goroutine core holds two
// (which shows that the count below sees them).
func TestTapIdleConnectionsHoldNoGoroutines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux only")
	}
	// Enough connections that every loop (as many as Ps, parked) shows
	// as a small fraction of them.
	conns := max(40, 8*runtime.GOMAXPROCS(0))
	for _, core := range cores {
		t.Run(core.name, func(t *testing.T) {
			var mu sync.Mutex
			var held []net.Conn
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range held {
					c.Close()
				}
			})
			up := rawServer(t, func(c net.Conn, _ *bufio.Reader) {
				mu.Lock()
				defer mu.Unlock()
				held = append(held, c) // held open, with no goroutine
			})
			r := newRigTap(t, up, capture.DefaultPolicy(), nil, &core.opts)
			settled := func() int {
				// Handlers and the upstream's handshakes end just after
				// the upgrade: wait for the count to stand still.
				last := -1
				for range 100 {
					n := runtime.NumGoroutine()
					if n == last {
						return n
					}
					last = n
					time.Sleep(50 * time.Millisecond)
				}
				return last
			}
			before := settled()
			for i := range conns {
				rawUpgrade(t, r.srv.Listener.Addr().String(), "/idle", frame(true, 1, fmt.Appendf(nil, `{"n":%d}`, i), true))
			}
			waitFor(t, "every connection to be proxied", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == conns
			})
			extra := settled() - before
			t.Logf("%s: %d more goroutines with %d idle connections", core.name, extra, conns)
			switch core.name {
			case "event_loop", "event_loop_parked":
				if extra > conns/4 {
					t.Fatalf("%d more goroutines with %d idle connections in the event loop; want a few loops at most", extra, conns)
				}
			default:
				if extra < 2*conns {
					t.Fatalf("%d more goroutines with %d idle spliced connections, want at least %d: the count misses them", extra, conns, 2*conns)
				}
			}
			checkCore(t, r, core.name, conns)
			if n := metricValue(r.tap.Metrics(), "preheat_tap_websockets_active"); n != float64(conns) {
				t.Fatalf("active websockets = %v, want %d", n, conns)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := r.tap.Shutdown(ctx); err == nil {
				t.Fatal("Shutdown returned nil with idle connections open past its deadline")
			}
			if n := metricValue(r.tap.Metrics(), "preheat_tap_websockets_active"); n != 0 {
				t.Fatalf("%v websockets still active after Shutdown closed them", n)
			}
		})
	}
}
