package coldserver

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/corpus"
)

// message is a client message. Only the fields the server acts on are
// decoded; id is kept as raw JSON so that it is echoed exactly.
type message struct {
	Type   string          `json:"type"`
	ID     json.RawMessage `json:"id"`
	Op     string          `json:"op"`
	Params *struct {
		Filter json.RawMessage `json:"filter"`
	} `json:"params"`
	Subscribe bool `json:"subscribe"`
}

// validID reports whether id is a JSON number or string.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return false
}

type errorReply struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Error string          `json:"error"`
}

// conn is one client session.
type conn struct {
	s   *Server
	c   *websocket.Conn
	ctx context.Context // ends when the session ends or the server closes

	inflight chan struct{}
	wg       sync.WaitGroup // query and update goroutines

	mu   sync.Mutex
	gen  *corpus.Generator
	subs []json.RawMessage // ids of subscribed queries, bounded
}

const maxSubs = 256

func (s *Server) serveConn(rctx context.Context, c *websocket.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	cn := &conn{
		s:        s,
		c:        c,
		ctx:      ctx,
		inflight: make(chan struct{}, s.opts.MaxInflight),
		gen:      corpus.New(rand.Uint64()),
	}
	defer cn.wg.Wait()
	defer cancel() // stop the query goroutines before waiting for them

	// Reads use the request's context so that Close can end a session with
	// a close handshake rather than by cancelling the read.
	if !cn.handshake(rctx) {
		return
	}
	if s.opts.UpdateInterval > 0 {
		cn.wg.Go(cn.pushUpdates)
	}
	for {
		typ, data, err := c.Read(rctx)
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig):
				s.bad[reasonOversize].Inc()
			case websocket.CloseStatus(err) == -1 && rctx.Err() == nil && s.ctx.Err() == nil:
				s.dropped.Inc() // no close frame, and not ended by us
			}
			return
		}
		received := time.Now()
		if typ != websocket.MessageText {
			cn.replyError(nil, reasonBinary, "binary messages are not supported")
			continue
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			cn.replyError(nil, reasonMalformed, "malformed message: "+err.Error())
			continue
		}
		switch m.Type {
		case "query":
			kind, ok := s.ops[m.Op]
			switch {
			case !validID(m.ID):
				cn.replyError(m.ID, reasonBadID, "query needs a number or string id")
				continue
			case !ok:
				cn.replyError(m.ID, reasonUnknownOp, "unknown op "+quote(m.Op))
				continue
			}
			variant := 0
			if m.Params != nil && len(m.Params.Filter) > 0 && !bytes.Equal(m.Params.Filter, []byte("null")) {
				variant |= 1
			}
			if m.Subscribe {
				variant |= 2
			}
			select {
			case cn.inflight <- struct{}{}:
			case <-ctx.Done():
				return
			}
			cn.wg.Go(func() {
				defer func() { <-cn.inflight }()
				cn.query(m, s.jit.paths[kind*len(variantNames)+variant], received)
			})
		case "mutate", "write", "delete":
			s.mutations.Inc()
			cn.write(append(append([]byte(`{"type":"ack","id":`), idOrNull(m.ID)...), '}'))
		case "ping":
			cn.write(append(append([]byte(`{"type":"pong","id":`), idOrNull(m.ID)...), '}'))
		case "connect":
			cn.replyError(m.ID, reasonDupConnect, "already connected")
		default:
			cn.replyError(m.ID, reasonUnknownType, "unknown message type "+quote(m.Type))
		}
	}
}

// handshake reads the first message, which must be a connect, runs it on
// the framework path and answers it.
func (cn *conn) handshake(rctx context.Context) bool {
	typ, data, err := cn.c.Read(rctx)
	if err != nil {
		if errors.Is(err, websocket.ErrMessageTooBig) {
			cn.s.bad[reasonOversize].Inc()
		}
		return false
	}
	var m message
	if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil || m.Type != "connect" {
		cn.s.bad[reasonNoConnect].Inc()
		cn.c.Close(websocket.StatusPolicyViolation, `first message must be {"type":"connect",...}`)
		return false
	}
	if _, err := cn.s.execute(cn.ctx, nil); err != nil {
		cn.c.Close(websocket.StatusTryAgainLater, "server overloaded")
		return false
	}
	var sid [16]byte
	crand.Read(sid[:])
	cn.write([]byte(`{"type":"connected","id":0,"session":"` + hex.EncodeToString(sid[:]) + `"}`))
	return true
}

// query serves one query on path p and writes its result.
func (cn *conn) query(m message, p *path, received time.Time) {
	s := cn.s
	if _, err := s.execute(cn.ctx, p); err != nil {
		if cn.ctx.Err() == nil {
			s.overloaded.Inc()
			cn.writeJSON(errorReply{Type: "error", ID: m.ID, Error: "server overloaded"})
		}
		return
	}
	cn.mu.Lock()
	res := cn.gen.Result(0, m.Op)
	if m.Subscribe {
		if len(cn.subs) == maxSubs {
			cn.subs = append(cn.subs[:0], cn.subs[1:]...)
		}
		cn.subs = append(cn.subs, m.ID)
	}
	cn.mu.Unlock()
	// corpus writes id 0; splice in the client's id verbatim.
	const prefix = `{"type":"result","id":0`
	out := make([]byte, 0, len(res)+len(m.ID))
	out = append(out, prefix[:len(prefix)-1]...)
	out = append(out, m.ID...)
	out = append(out, res[len(prefix):]...)
	s.latency.observe(time.Since(received).Seconds())
	s.requests.Inc()
	cn.write(out)
}

// execute runs one request on p (nil for a connect) and the framework path:
// it waits for a worker, holds it and the safepoint read lock for the
// service time of the tiers the paths run at, and records the invocation
// for the warm window. It returns the tier of p.
func (s *Server) execute(ctx context.Context, p *path) (Tier, error) {
	select {
	case s.slots <- struct{}{}:
	default:
		t := time.NewTimer(s.opts.QueueTimeout)
		select {
		case s.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return 0, errors.New("timed out waiting for a worker")
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
	defer func() { <-s.slots }()

	s.jit.safepoint.RLock()
	ft := s.jit.invoke(s.jit.framework)
	d := s.jit.framework.serviceTime(ft)
	pt := ft
	if p != nil {
		pt = s.jit.invoke(p)
		d += p.serviceTime(pt)
	}
	s.jit.safepoint.RUnlock()
	s.run(ctx, d)
	s.warm.record(time.Now(), ft == C2 && pt == C2, s.jit.pending.Load() == 0)
	return pt, ctx.Err()
}

// safepointPoll is how often running code polls for a safepoint: the
// longest a request delays a compiler that is waiting to install code.
const safepointPoll = time.Millisecond

// run simulates running code for d: it sleeps in slices of safepointPoll,
// holding the safepoint read lock during each, so that an install stops the
// world promptly and stalls running requests for its pause. Slices are cut
// against the end time so that timer overshoot does not accumulate.
func (s *Server) run(ctx context.Context, d time.Duration) {
	start := time.Now()
	end := start.Add(d)
	t := time.NewTimer(d)
	t.Stop()
	for now := start; now.Before(end); now = time.Now() {
		s.jit.safepoint.RLock()
		t.Reset(min(safepointPoll, end.Sub(now)))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		s.jit.safepoint.RUnlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// pushUpdates now and then pushes a change to one of the session's
// subscribed queries.
func (cn *conn) pushUpdates() {
	t := time.NewTicker(cn.s.opts.UpdateInterval)
	defer t.Stop()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-t.C:
		}
		cn.mu.Lock()
		if len(cn.subs) == 0 {
			cn.mu.Unlock()
			continue
		}
		sub := cn.subs[rand.IntN(len(cn.subs))]
		upd := cn.gen.Update()
		cn.mu.Unlock()
		// corpus picks its own sub id; splice in a real one.
		i := bytes.Index(upd, []byte(`,"changes":`))
		if i < 0 {
			continue
		}
		out := append([]byte(`{"type":"update","sub":`), sub...)
		cn.write(append(out, upd[i:]...))
	}
}

func (cn *conn) replyError(id json.RawMessage, reason, msg string) {
	cn.s.bad[reason].Inc()
	if !validID(id) {
		id = nil
	}
	cn.writeJSON(errorReply{Type: "error", ID: id, Error: msg})
}

func (cn *conn) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		cn.s.opts.Logger.Error("coldserver: encode reply", "err", err)
		return
	}
	cn.write(b)
}

// write sends one text message. On failure it ends the session.
func (cn *conn) write(b []byte) {
	ctx, cancel := context.WithTimeout(cn.ctx, cn.s.opts.WriteTimeout)
	defer cancel()
	if err := cn.c.Write(ctx, websocket.MessageText, b); err != nil && cn.ctx.Err() == nil {
		cn.s.opts.Logger.Debug("coldserver: write", "err", err)
		cn.c.CloseNow()
	}
}

func idOrNull(id json.RawMessage) []byte {
	if validID(id) {
		return id
	}
	return []byte("null")
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
