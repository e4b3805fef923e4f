// Package idtarget is a websocket target for tests of response
// correlation: each JSON message it receives says how to treat it, and an
// answer carries the message's id, as a request-response server's does.
//
// A message {"id":ID,"do":ACTION,"ms":N} is
//   - "answer": answered with {"id":ID} after N milliseconds; answers to
//     messages of the same id go in the order the messages came;
//   - "hold": never answered;
//   - "close": not answered, and the connection is dropped at once, without
//     a close frame, and with it every answer not yet written.
//
// Anything else is not answered. Session records a session of such
// messages, for a corpus.
package idtarget

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/session"
)

// Session records a session of client messages gap apart, each "ID ACTION"
// with ACTION "answer:MS", "hold" or "close" (a read operation, kind
// "tasks.get"), and the recorded server's answers after the last of them,
// each carrying its request's id: a client that sends without waiting, and
// may reuse ids.
func Session(gap time.Duration, msgs ...string) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: "/", Start: time.Now()}}}
	add := func(dir session.Direction, off time.Duration, payload string) {
		evs = append(evs, session.Event{Session: id, Seq: uint64(len(evs)), Kind: session.KindFrame, Direction: dir,
			Opcode: session.Text, Offset: off, Payload: []byte(payload)})
	}
	var ids []string
	for i, m := range msgs {
		mid, action, _ := strings.Cut(m, " ")
		do, ms, _ := strings.Cut(action, ":")
		if ms == "" {
			ms = "0"
		}
		add(session.ClientToServer, time.Duration(i)*gap, fmt.Sprintf(`{"op":"tasks.get","id":%s,"do":%q,"ms":%s}`, mid, do, ms))
		ids = append(ids, mid)
	}
	end := time.Duration(len(msgs)) * gap
	for _, mid := range ids {
		add(session.ServerToClient, end, `{"id":`+mid+`}`)
	}
	return append(evs, session.Event{Session: id, Seq: uint64(len(evs)), Kind: session.KindClose, Offset: end, Code: 1000, ClosedBy: session.SideClient})
}

// Handler is the target. Its zero value is ready to serve.
type Handler struct {
	mu       sync.Mutex
	received int
	answered int
}

// Message is what a message says to the target.
type Message struct {
	ID json.RawMessage `json:"id"`
	Do string          `json:"do"`
	MS int             `json:"ms"`
}

// Counts returns the messages received and the answers written so far.
func (h *Handler) Counts() (received, answered int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.received, h.answered
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(r.Context()) // ends pending answers with the connection
	defer cancel()
	var answers sync.WaitGroup
	defer answers.Wait()
	last := map[string]chan struct{}{} // id → done when its latest answer is written
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.received++
		h.mu.Unlock()
		var m Message
		if json.Unmarshal(msg, &m) != nil || m.ID == nil {
			continue
		}
		switch m.Do {
		case "close":
			cancel()
			c.CloseNow()
			return
		case "answer":
		default:
			continue
		}
		prev, done := last[string(m.ID)], make(chan struct{})
		last[string(m.ID)] = done
		due := time.Now().Add(time.Duration(m.MS) * time.Millisecond)
		resp := append(append([]byte(`{"id":`), m.ID...), '}')
		answers.Go(func() {
			defer close(done)
			t := time.NewTimer(time.Until(due))
			defer t.Stop()
			if prev != nil {
				select {
				case <-prev:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			if c.Write(ctx, websocket.MessageText, resp) == nil {
				h.mu.Lock()
				h.answered++
				h.mu.Unlock()
			}
		})
	}
}
