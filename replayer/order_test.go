package replayer_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/pipenet"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// strictServer acknowledges a session's first message after ackDelay and
// closes the connection with 4401, as graphql-ws does, when another message
// arrives before its acknowledgement. It pings with ping every pingEvery
// (when set) and closes with 4408 when an answer other than pong, or none,
// comes before the next ping.
type strictServer struct {
	ackDelay        time.Duration
	ping, pong, ack string
	pingEvery       time.Duration
	extra           []string // sent once after the ack, never recorded for replay

	mu      sync.Mutex
	codes   []websocket.StatusCode // how each connection ended, by the server
	got     []string
	answers int
}

func (s *strictServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	end := func(code websocket.StatusCode) {
		s.mu.Lock()
		s.codes = append(s.codes, code)
		s.mu.Unlock()
		if code != 0 {
			c.Close(code, "protocol error")
		}
	}
	type msg struct {
		b   []byte
		err error
	}
	in := make(chan msg)
	go func() {
		for {
			_, b, err := c.Read(ctx)
			select {
			case in <- msg{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	ack := time.NewTimer(time.Hour)
	defer ack.Stop()
	var ping <-chan time.Time
	if s.pingEvery > 0 {
		t := time.NewTicker(s.pingEvery)
		defer t.Stop()
		ping = t.C
	}
	first, acked, pinged := true, false, false
	for {
		select {
		case m := <-in:
			if m.err != nil {
				end(0)
				return
			}
			s.mu.Lock()
			s.got = append(s.got, string(m.b))
			s.mu.Unlock()
			switch {
			case string(m.b) == s.pong && pinged:
				pinged = false
				s.mu.Lock()
				s.answers++
				s.mu.Unlock()
			case string(m.b) == s.pong:
				end(4408) // an answer to no ping: a replayed pong
				return
			case first:
				first = false
				ack.Reset(s.ackDelay)
			case !acked:
				end(4401) // too early
				return
			default:
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"result","re":`+string(m.b)+`}`))
			}
		case <-ack.C:
			acked = true
			_ = c.Write(ctx, websocket.MessageText, []byte(s.ack))
			for _, e := range s.extra {
				_ = c.Write(ctx, websocket.MessageText, []byte(e))
			}
		case <-ping:
			if pinged {
				end(4408) // the last ping went unanswered
				return
			}
			pinged = true
			_ = c.Write(ctx, websocket.MessageText, []byte(s.ping))
		}
	}
}

// session builds a recorded session of alternating client and server
// messages: "c:" and "s:" prefixes say whose each is.
func conversation(route, subprotocol string, msgs ...string) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: route, Subprotocol: subprotocol, Start: time.Now()}}}
	for i, m := range msgs {
		dir := session.ClientToServer
		if strings.HasPrefix(m, "s:") {
			dir = session.ServerToClient
		}
		evs = append(evs, session.Event{Session: id, Seq: uint64(i + 1), Kind: session.KindFrame, Direction: dir,
			Opcode: session.Text, Offset: time.Duration(i) * time.Millisecond, Payload: []byte(m[2:])})
	}
	return append(evs, session.Event{Session: id, Seq: uint64(len(msgs) + 1), Kind: session.KindClose,
		Offset: time.Duration(len(msgs)) * time.Millisecond, Code: 1000, ClosedBy: session.SideClient})
}

// TestReplayWaitsForTheServerAsRecorded: a message recorded after the
// server's acknowledgement is sent only after this replay's
// acknowledgement has come, however slow the target is to give it.
func TestReplayWaitsForTheServerAsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &strictServer{ackDelay: 2 * time.Second, ack: `{"type":"connection_ack"}`}
		r := newReplayer(t, "ws://pod", replayer.Options{Rate: -1, HTTPClient: pipenet.Serve(t, srv)})
		evs := conversation("/graphql", "graphql-transport-ws",
			`c:{"type":"connection_init"}`, `s:{"type":"connection_ack"}`,
			`c:{"id":"1","type":"subscribe","payload":{"query":"{ tasks { id } }"}}`,
			`s:{"id":"1","type":"next","payload":{}}`, `s:{"id":"1","type":"complete"}`)
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the server has seen the close
		st := r.Stats()
		if st.SessionsCompleted != 1 || len(st.SessionsFailed) != 0 || st.OrderWaitsExpired != 1 {
			// The server answers a subscribe with one result, not the two
			// recorded: the end's wait expires, once.
			t.Fatalf("stats %+v", st)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.codes) != 1 || srv.codes[0] != 0 || len(srv.got) != 2 {
			t.Fatalf("server ended with %v after %q", srv.codes, srv.got)
		}
	})
}

// TestReplayGivesUpWaitingForAMessageThatNeverComes: a server message the
// target never sends (here the recorded server's greeting) holds the
// session up for OrderTimeout once, is counted, and the rest is sent
// without waiting.
func TestReplayGivesUpWaitingForAMessageThatNeverComes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(0)}
		r := newReplayer(t, "ws://pod", replayer.Options{Rate: -1, OrderTimeout: 3 * time.Second, HTTPClient: pipenet.Serve(t, tg)})
		evs := conversation("/sync", "",
			`s:{"type":"welcome"}`,
			`c:{"type":"connect","id":0}`, `s:{"type":"result","id":0}`,
			`c:{"type":"query","op":"tasks.list","id":1}`, `s:{"type":"result","id":1}`,
			`c:{"type":"query","op":"tasks.get","id":2}`, `s:{"type":"result","id":2}`)
		start := time.Now()
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		st := r.Stats()
		if st.SessionsCompleted != 1 || st.MessagesSent != 3 || st.Responses != 3 || st.OrderWaitsExpired != 1 {
			t.Fatalf("stats %+v", st)
		}
		if d := time.Since(start); d < 3*time.Second || d > 4*time.Second {
			t.Fatalf("the session took %v: want one wait of 3s", d)
		}
	})
}

// TestReplayDoesNotWaitForOtherClientsPushes: a server message recorded
// without an id after the answer to the message before it (an update
// another client caused) is not waited for: the target will not send it.
func TestReplayDoesNotWaitForOtherClientsPushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(0)}
		r := newReplayer(t, "ws://pod", replayer.Options{Rate: -1, HTTPClient: pipenet.Serve(t, tg)})
		evs := conversation("/sync", "",
			`c:{"type":"connect","id":0}`, `s:{"type":"result","id":0}`,
			`c:{"type":"query","op":"tasks.list","id":1}`, `s:{"type":"result","id":1}`, `s:{"type":"update","sub":1}`,
			`c:{"type":"query","op":"tasks.get","id":2}`, `s:{"type":"result","id":2}`, `s:{"type":"update","sub":2}`)
		start := time.Now()
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.SessionsCompleted != 1 || st.Responses != 3 || st.OrderWaitsExpired != 0 {
			t.Fatalf("stats %+v", st)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("the session took %v: it waited for pushes", d)
		}
	})
}

// TestReplayAnswersTheLiveServerNotTheRecording: the recorded client's
// pong is never replayed (the live server did not ping then); the live
// server's pings are answered as they come, by the profile's answer, and
// do not count as the conversation's messages.
func TestReplayAnswersTheLiveServerNotTheRecording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &strictServer{ackDelay: time.Millisecond, ack: `{"type":"connection_ack"}`,
			ping: `{"type":"ping"}`, pong: `{"type":"pong"}`, pingEvery: time.Second}
		r := newReplayer(t, "ws://pod", replayer.Options{Rate: 2, Burst: 1, NoBackoff: true, HTTPClient: pipenet.Serve(t, srv)})
		msgs := []string{`c:{"type":"connection_init"}`, `s:{"type":"connection_ack"}`, `s:{"type":"ping"}`, `c:{"type":"pong"}`}
		for i := range 8 {
			msgs = append(msgs, `c:{"id":"`+string(rune('a'+i))+`","type":"subscribe","payload":{"query":"query Q { me { id } }"}}`, `s:{"id":"x","type":"next"}`)
		}
		evs := conversation("/graphql", "graphql-transport-ws", msgs...)
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the server has seen the close
		st := r.Stats()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.codes) != 1 || srv.codes[0] != 0 {
			t.Fatalf("server ended the session with %v after %q", srv.codes, srv.got)
		}
		if st.Answered == 0 || int(st.Answered) != srv.answers || st.MessagesSkipped["reply"] != 1 || st.SessionsCompleted != 1 {
			t.Fatalf("answered %d (server counted %d), stats %+v", st.Answered, srv.answers, st)
		}
	})
}
