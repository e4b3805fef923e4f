package loadtest_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/session"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// echoTarget answers every message with itself after delay, each reply on
// its own timer so that slow replies do not queue behind each other.
type echoTarget struct {
	delay time.Duration
	// noise, when set, multiplies each delay by a lognormal factor (median
	// 1, sigma 0.3) drawn from a hash of noise, the receive time and the
	// message: deterministic in a synctest bubble, independent between
	// targets of different noise.
	noise uint64

	mu        sync.Mutex
	conns     map[*websocket.Conn]struct{}
	active    int
	maxActive int
	accepted  int
	messages  int
	payloads  []string
	down      bool
}

func (e *echoTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	e.mu.Unlock()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	e.mu.Lock()
	if e.conns == nil {
		e.conns = map[*websocket.Conn]struct{}{}
	}
	e.conns[c] = struct{}{}
	e.accepted++
	e.active++
	e.maxActive = max(e.maxActive, e.active)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.conns, c)
		e.active--
		e.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var replies sync.WaitGroup
	defer replies.Wait()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.messages++
		e.payloads = append(e.payloads, string(msg))
		e.mu.Unlock()
		delay := e.delay
		if e.noise != 0 {
			h := fnv.New64a()
			fmt.Fprintf(h, "%d/%d/%s", e.noise, time.Now().UnixNano(), msg)
			z := rand.New(rand.NewPCG(h.Sum64(), e.noise)).NormFloat64()
			delay = time.Duration(float64(delay) * math.Exp(0.3*z))
		}
		replies.Go(func() {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				_ = c.Write(ctx, typ, msg)
			case <-ctx.Done():
			}
		})
	}
}

// kill drops every connection and refuses new upgrades.
func (e *echoTarget) kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = true
	for c := range e.conns {
		c.CloseNow()
	}
}

func (e *echoTarget) stats() (accepted, maxActive, messages int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.accepted, e.maxActive, e.messages
}

// serveLoopback serves h on 127.0.0.1 and returns its ws:// URL and
// server.
func serveLoopback(t testing.TB, h http.Handler) (string, *httptest.Server) {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return "ws" + s.URL[len("http"):], s
}

// sessions returns n recorded sessions, started every 1/rate seconds, each
// a connect then q queries 10ms apart, ids unique within a session.
func sessions(n, q int, rate float64) [][]session.Event {
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	var out [][]session.Event
	for i := range n {
		id := session.NewID()
		evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{
			Route: "/sync", Subprotocol: "sync.v3", Start: start.Add(time.Duration(float64(i) / rate * float64(time.Second))),
		}}}
		seq := uint64(0)
		add := func(off time.Duration, msg string) {
			seq++
			evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindFrame, Direction: session.ClientToServer,
				Opcode: session.Text, Offset: off, Payload: []byte(msg)})
		}
		add(0, `{"type":"connect","id":0}`)
		for j := 1; j <= q; j++ {
			op := "tasks.list"
			if j%2 == 0 {
				op = "user.me"
			}
			add(time.Duration(j)*10*time.Millisecond, fmt.Sprintf(`{"type":"query","id":%d,"op":%q}`, j, op))
		}
		seq++
		evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindClose, Offset: time.Duration(q+1) * 10 * time.Millisecond, Code: 1000})
		out = append(out, evs)
	}
	return out
}

// hostRoutes sends each request to the transport of its URL's host.
type hostRoutes map[string]http.RoundTripper

func (h hostRoutes) RoundTrip(r *http.Request) (*http.Response, error) {
	rt, ok := h[r.URL.Host]
	if !ok {
		return nil, fmt.Errorf("no route to %s", r.URL.Host)
	}
	return rt.RoundTrip(r)
}

func hostRouter(m map[string]*http.Client) *http.Client {
	rt := hostRoutes{}
	for host, c := range m {
		rt[host] = c.Transport
	}
	return &http.Client{Transport: rt}
}
