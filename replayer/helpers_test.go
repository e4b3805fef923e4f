package replayer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/session"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// received is one message a test target got.
type received struct {
	at      time.Time
	conn    int
	payload string
}

// target is a websocket server that records what replays send it.
type target struct {
	// reply, when set, answers a message after delay; nil resp sends none.
	reply func(msg []byte) (resp []byte, delay time.Duration)
	// drop, when set, says to close the connection abruptly on its n-th
	// message (1-based) for connection number conn.
	drop func(conn, n int) bool
	// dropCode, when set, closes dropped connections with this status
	// instead of abruptly.
	dropCode websocket.StatusCode
	// refuse, when set, answers every upgrade with this HTTP status.
	refuse int
	// protocols are the subprotocols accepted.
	protocols []string

	mu      sync.Mutex
	msgs    []received
	endings map[int]string // by connection number: "normal" or why not
	conns   int
	headers []http.Header
	urls    []string
	protos  []string
}

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if t.refuse != 0 {
		http.Error(w, "no", t.refuse)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: t.protocols})
	if err != nil {
		return
	}
	defer c.CloseNow()
	t.mu.Lock()
	t.conns++
	n := t.conns
	t.headers = append(t.headers, r.Header.Clone())
	t.urls = append(t.urls, r.URL.String())
	t.protos = append(t.protos, c.Subprotocol())
	t.mu.Unlock()
	var replies sync.WaitGroup
	defer replies.Wait()
	ctx, cancel := context.WithCancel(r.Context()) // ends pending replies with the connection
	defer cancel()
	for i := 1; ; i++ {
		_, msg, err := c.Read(ctx)
		if err != nil {
			ending := "normal"
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				ending = err.Error()
			}
			t.mu.Lock()
			if t.endings == nil {
				t.endings = map[int]string{}
			}
			t.endings[n] = ending
			t.mu.Unlock()
			return
		}
		t.mu.Lock()
		t.msgs = append(t.msgs, received{at: time.Now(), conn: n, payload: string(msg)})
		t.mu.Unlock()
		if t.drop != nil && t.drop(n, i) {
			if t.dropCode != 0 {
				c.Close(t.dropCode, "dropped")
			}
			return
		}
		if t.reply == nil {
			continue
		}
		resp, delay := t.reply(msg)
		if resp == nil {
			continue
		}
		replies.Go(func() {
			tm := time.NewTimer(delay)
			defer tm.Stop()
			select {
			case <-tm.C:
				_ = c.Write(ctx, websocket.MessageText, resp)
			case <-ctx.Done():
			}
		})
	}
}

// ended returns how the connections that have ended did, in the order
// they were accepted.
func (t *target) ended() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, n := range slices.Sorted(maps.Keys(t.endings)) {
		out = append(out, t.endings[n])
	}
	return out
}

func (t *target) received() []received {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]received(nil), t.msgs...)
}

// serveLoopback serves h on a real 127.0.0.1 listener and returns its
// ws:// URL.
func serveLoopback(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return "ws" + s.URL[len("http"):]
}

// recorded builds a session: connect at offset 0, then client messages at
// the given offsets (ms), each with a server reply 1ms later.
func recorded(start time.Time, msgs []string, offsetsMS []int) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{
		Route: "/sync?client=web", Subprotocol: "sync.v3", Start: start,
		Header: http.Header{"User-Agent": {"test/1"}, "Cookie": {"sid=__preheat_redacted__"}},
	}}}
	seq := uint64(0)
	for i, m := range msgs {
		seq++
		off := time.Duration(offsetsMS[i]) * time.Millisecond
		evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindFrame,
			Direction: session.ClientToServer, Opcode: session.Text, Offset: off, Payload: []byte(m)})
		seq++
		evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindFrame,
			Direction: session.ServerToClient, Opcode: session.Text, Offset: off + time.Millisecond, Payload: []byte(`{"type":"result"}`)})
	}
	seq++
	last := time.Duration(offsetsMS[len(offsetsMS)-1]) * time.Millisecond
	return append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindClose, Offset: last + 10*time.Millisecond, Code: 1000, ClosedBy: session.SideClient})
}

// pipelined returns a recorded session with its server messages moved after
// its last client message, as a client that sends without waiting for
// answers records; each answer carries its request's id.
func pipelined(evs []session.Event) []session.Event {
	var client, server []session.Event
	for _, ev := range evs[1 : len(evs)-1] {
		if ev.Direction == session.ClientToServer {
			client = append(client, ev)
		} else {
			var m struct{ ID json.RawMessage }
			if json.Unmarshal(client[len(client)-1].Payload, &m) == nil && m.ID != nil {
				ev.Payload = fmt.Appendf(nil, `{"type":"result","id":%s}`, m.ID)
			}
			server = append(server, ev)
		}
	}
	out := append([]session.Event{evs[0]}, client...)
	out = append(out, server...)
	out = append(out, evs[len(evs)-1])
	for i := range out {
		out[i].Seq = uint64(i)
	}
	return out
}
