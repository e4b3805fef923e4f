package coldserver

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/corpus"
)

// sample is one answered query seen by the load generator.
type sample struct {
	at   time.Duration // since the load started
	kind string
	lat  time.Duration
}

// load drives corpus queries at a fixed total rate over several connections.
type load struct {
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples []sample
}

func startLoad(t *testing.T, url string, conns int, qps float64) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{start: time.Now(), cancel: cancel}
	for i := range conns {
		c := connectedMode(t, url, websocket.CompressionDisabled)
		l.wg.Go(func() { l.client(ctx, t, c, uint64(i+1), time.Duration(float64(conns)/qps*float64(time.Second))) })
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) client(ctx context.Context, t *testing.T, c *websocket.Conn, seed uint64, every time.Duration) {
	type sent struct {
		at   time.Time
		kind string
	}
	var mu sync.Mutex
	pending := map[string]sent{}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.CloseNow()
	wg.Go(func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Type string          `json:"type"`
				ID   json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("reply %s: %v", b, err)
				return
			}
			if m.Type != "result" {
				continue
			}
			mu.Lock()
			s, ok := pending[string(m.ID)]
			delete(pending, string(m.ID))
			mu.Unlock()
			if !ok {
				t.Errorf("result for unknown id %s", m.ID)
				return
			}
			now := time.Now()
			l.mu.Lock()
			l.samples = append(l.samples, sample{at: now.Sub(l.start), kind: s.kind, lat: now.Sub(s.at)})
			l.mu.Unlock()
		}
	})
	g := corpus.New(seed)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		kind := g.Kind()
		q := g.Query(kind)
		id := strings.TrimPrefix(string(q[:strings.Index(string(q), `,"op"`)]), `{"type":"query","id":`)
		mu.Lock()
		pending[id] = sent{at: time.Now(), kind: kind}
		mu.Unlock()
		if err := c.Write(ctx, websocket.MessageText, q); err != nil {
			return
		}
	}
}

func (l *load) snapshot() []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sample(nil), l.samples...)
}
