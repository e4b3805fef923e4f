package protopeer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// TestServerCountsWhatClientsDid checks, for every kind, that the server's
// own counters agree with the real clients' summary: one handshake and one
// completed subscription a session, no protocol errors, the same reads, and
// writes only when the clients write.
func TestServerCountsWhatClientsDid(t *testing.T) {
	const sessions = 4
	for _, kind := range Kinds {
		for _, writes := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/writes=%v", kind, writes), func(t *testing.T) {
				s := Start(t, kind)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				sum, err := RunClients(ctx, t, kind, s.URL, ClientOptions{Sessions: sessions, Concurrency: 2, Writes: writes})
				if err != nil {
					t.Fatalf("clients: %v (summary %+v)", err, sum)
				}
				c, err := s.Counters(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("summary %+v; counters %+v", sum, c)
				if sum.OK != sessions || sum.Failed != 0 {
					t.Errorf("clients: %d ok, %d failed, want %d ok", sum.OK, sum.Failed, sessions)
				}
				if c.Connections != sessions || c.Handshakes != sessions {
					t.Errorf("server: %d connections, %d handshakes, want %d each", c.Connections, c.Handshakes, sessions)
				}
				if c.ProtocolErrors != 0 {
					t.Errorf("server: %d protocol errors %v, want 0", c.ProtocolErrors, c.ProtocolErrorsByKind)
				}
				if c.SubscriptionsCompleted != sessions || sum.Subscriptions != sessions {
					t.Errorf("subscriptions: server completed %d, clients %d, want %d", c.SubscriptionsCompleted, sum.Subscriptions, sessions)
				}
				if c.Reads < 2*sessions || c.Reads != sum.Reads {
					t.Errorf("reads: server %d, clients %d, want equal and at least %d", c.Reads, sum.Reads, 2*sessions)
				}
				switch {
				case !writes && (c.Writes != 0 || sum.Writes != 0):
					t.Errorf("writes off: server executed %d %v, clients %d, want 0", c.Writes, c.WritesByKind, sum.Writes)
				case writes && (c.Writes == 0 || c.Writes != sum.Writes):
					t.Errorf("writes on: server executed %d %v, clients %d, want equal and > 0", c.Writes, c.WritesByKind, sum.Writes)
				}
				if writes && kind == SocketIO && c.WritesByKind["upload"] == 0 {
					t.Errorf("socket.io: no binary upload executed: %v", c.WritesByKind)
				}
				if writes && kind == JSONRPC && c.WritesByKind["tasks.touch"] == 0 {
					t.Errorf("json-rpc: no notification write executed: %v", c.WritesByKind)
				}
			})
		}
	}
}

// TestBadMessageCountsAsProtocolError checks that the protocol error counter
// can move: a malformed message sent over a plain websocket makes each
// server report exactly one protocol error, with the reaction its library
// defines.
func TestBadMessageCountsAsProtocolError(t *testing.T) {
	f := func(kind, subprotocol, query string, exchange func(ctx context.Context, c *websocket.Conn) error) {
		t.Helper()
		t.Run(kind, func(t *testing.T) {
			s := Start(t, kind)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var opts websocket.DialOptions
			if subprotocol != "" {
				opts.Subprotocols = []string{subprotocol}
			}
			c, _, err := websocket.Dial(ctx, s.URL+query, &opts)
			if err != nil {
				t.Fatalf("dial %s: %v", s.URL+query, err)
			}
			defer c.CloseNow()
			if err := exchange(ctx, c); err != nil {
				t.Fatal(err)
			}
			got, err := s.WaitCounters(ctx, func(c Counters) bool { return c.ProtocolErrors > 0 })
			if err != nil {
				t.Fatalf("%v (counters %+v)", err, got)
			}
			if got.ProtocolErrors != 1 {
				t.Errorf("%d protocol errors %v, want 1", got.ProtocolErrors, got.ProtocolErrorsByKind)
			}
			t.Logf("protocol errors %v", got.ProtocolErrorsByKind)
		})
	}

	// graphql-ws closes the connection with 4400 Bad Request.
	f(GraphQLTransportWS, "graphql-transport-ws", "", func(ctx context.Context, c *websocket.Conn) error {
		if err := c.Write(ctx, websocket.MessageText, []byte("not json")); err != nil {
			return err
		}
		_, msg, err := c.Read(ctx)
		if code := websocket.CloseStatus(err); code != 4400 {
			return fmt.Errorf("after a malformed message: read %q, %v (close %d), want close 4400", msg, err, code)
		}
		return nil
	})

	// subscriptions-transport-ws answers with connection_error and keeps the
	// connection.
	f(GraphQLWS, "graphql-ws", "", func(ctx context.Context, c *websocket.Conn) error {
		if err := c.Write(ctx, websocket.MessageText, []byte("not json")); err != nil {
			return err
		}
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), `"type":"connection_error"`) {
			return fmt.Errorf("after a malformed message: read %q, %v, want connection_error", msg, err)
		}
		return nil
	})

	// socket.io cannot decode an EVENT with broken JSON and closes the
	// Engine.IO connection.
	f(SocketIO, "", "?EIO=4&transport=websocket", func(ctx context.Context, c *websocket.Conn) error {
		expect := func(prefix string) error {
			_, msg, err := c.Read(ctx)
			if err != nil || !strings.HasPrefix(string(msg), prefix) {
				return fmt.Errorf("read %q, %v, want a packet starting %q", msg, err, prefix)
			}
			return nil
		}
		if err := expect("0{"); err != nil { // Engine.IO open
			return err
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
			return err
		}
		if err := expect("40{"); err != nil { // namespace connected
			return err
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`42["tasks:list"`)); err != nil {
			return err
		}
		if _, msg, err := c.Read(ctx); err == nil {
			return fmt.Errorf("after a malformed event: read %q, want the connection closed", msg)
		}
		return nil
	})

	// rpc-websockets answers with a -32700 parse error response.
	f(JSONRPC, "", "", func(ctx context.Context, c *websocket.Conn) error {
		if err := c.Write(ctx, websocket.MessageText, []byte("not json")); err != nil {
			return err
		}
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), `"code":-32700`) {
			return fmt.Errorf("after a malformed message: read %q, %v, want a -32700 error", msg, err)
		}
		return nil
	})
}

// TestPingIntervalReachesEngineIO checks that ServerOptions.PingInterval
// reaches socket.io: the Engine.IO open packet announces it and the server
// pings, a message the client must answer ("3") within pingTimeout (20 s).
func TestPingIntervalReachesEngineIO(t *testing.T) {
	s := StartWithOptions(t, SocketIO, &ServerOptions{PingInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.URL+"?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, open, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(open), `"pingInterval":50,`) {
		t.Fatalf("open packet %q, %v: want pingInterval 50", open, err)
	}
	_, ping, err := c.Read(ctx)
	if err != nil || string(ping) != "2" {
		t.Fatalf("read %q, %v, want a ping", ping, err)
	}
}

// stopTB records Skipf and Fatalf and stops Start by panicking, in place of
// the real runtime.Goexit.
type stopTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (s *stopTB) Helper() {}
func (s *stopTB) Skipf(format string, args ...any) {
	s.skipped = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (s *stopTB) Fatalf(format string, args ...any) {
	s.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func runStopped(f func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	f()
}

func TestStartRejectsUnknownKind(t *testing.T) {
	tb := &stopTB{TB: t}
	runStopped(func() { Start(tb, "stomp") })
	if !strings.Contains(tb.failed, `unknown kind "stomp"`) {
		t.Errorf("failed %q, want unknown kind", tb.failed)
	}
}
