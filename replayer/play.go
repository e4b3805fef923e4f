package replayer

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// stopDrain bounds how long a stopped session waits for the responses it
// still expects before its close handshake.
const stopDrain = time.Second

// play dials the target and sends steps, recording in res how it went.
// When stop is done it sends no more; a session that ends with drop hangs up
// without a close handshake, as it was recorded to.
func (r *Replayer) play(ctx, stop context.Context, info *session.Info, p *sessionPlan, drop bool, res *SessionResult) {
	dctx, dcancel := context.WithTimeout(ctx, r.opts.DialTimeout)
	conn, resp, err := websocket.Dial(dctx, r.url(info), r.dialOptions(info))
	dcancel()
	if err != nil {
		res.Failure, res.Err = "connect", fmt.Errorf("dial: %w", err)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			res.Failure, res.Status = "handshake", resp.StatusCode
		}
		return
	}
	r.failStreak.Store(0)
	conn.SetReadLimit(r.opts.ReadLimit)

	w := &waiter{r: r, pending: make(map[string]pendingReq)}
	arr := newArrivals()
	readDone := make(chan error, 1)
	var reader sync.WaitGroup
	defer reader.Wait() // after CloseNow has ended the read
	defer conn.CloseNow()
	live := p.profile.NewConversation() // the live server's side; the reader's alone
	reader.Go(func() { readDone <- r.read(ctx, conn, w, live, arr) })
	failed := func(reason string, err error) {
		res.Failure, res.Err = reason, err
		if code := websocket.CloseStatus(err); code != -1 {
			res.CloseCode = int(code)
		}
	}

	// closedByTarget records the target's close as the session's failure,
	// unless every message has been sent and the target closed cleanly
	// (1000, 1001, or a close frame without a status, as the graphql-ws
	// server answers a client's connection_terminate) or the recorded
	// session ended the same way, with the server closing it.
	allSent := false
	closedByTarget := func(err error) {
		if allSent && res.Failure == "" {
			switch websocket.CloseStatus(err) {
			case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
				return
			}
			if p.serverCloses {
				return
			}
		}
		failed("closed_by_target", err)
	}
	// await waits for c, unless the session ends first: it records why and
	// returns false. With stop, it also returns false when stop is done,
	// recording "stopped": the session then closes normally.
	await := func(c <-chan time.Time, stop <-chan struct{}) bool {
		select {
		case <-c:
			return true
		case <-stop:
			res.Failure = "stopped"
		case <-ctx.Done():
			failed("timeout", ctx.Err())
		case err := <-readDone:
			closedByTarget(err)
		}
		return false
	}
	// inOrder waits until n of the server messages the plan expects have
	// arrived, as await waits. A wait that outlasts OrderTimeout is
	// counted, and the rest of the session is sent without waiting: the
	// messages it waited for (a push another client caused, an answer the
	// target does not give) are not coming, and every later wait would
	// wait for them again.
	ordered := true
	inOrder := func(n int, stop <-chan struct{}) bool {
		if !ordered || arr.count() >= n {
			return true
		}
		t := time.NewTimer(r.opts.OrderTimeout)
		defer t.Stop()
		for arr.count() < n {
			select {
			case <-arr.notify:
				continue
			case <-t.C:
				ordered = false
				res.OrderWaitsExpired++
				r.stats.orderExpired.Add(1)
				r.m.orderExpired.Inc()
				return true
			case <-stop:
				res.Failure = "stopped"
			case <-ctx.Done():
				failed("timeout", ctx.Err())
			case err := <-readDone:
				closedByTarget(err)
			}
			return false
		}
		return true
	}
	// paced is ctx that also ends with stop, for the rate limiter's wait.
	paced, endPaced := context.WithCancel(ctx)
	defer endPaced()
	defer context.AfterFunc(stop, endPaced)()

	start := time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
steps:
	for _, st := range p.steps {
		if stop.Err() != nil {
			res.Failure = "stopped"
			break
		}
		if !inOrder(st.after, stop.Done()) {
			if res.Failure == "stopped" {
				break steps
			}
			return
		}
		if r.opts.Speed > 0 {
			if d := time.Until(start.Add(time.Duration(float64(st.offset) / r.opts.Speed))); d > 0 {
				timer.Reset(d)
				if !await(timer.C, stop.Done()) {
					if res.Failure == "stopped" {
						break steps
					}
					return
				}
			}
		}
		if err := r.limiter.Wait(paced); err != nil || stop.Err() != nil {
			// paced learns of stop a moment late: stop is read directly
			// too, so nothing is sent after it.
			if ctx.Err() == nil && stop.Err() != nil {
				res.Failure = "stopped"
				break
			}
			failed("timeout", err)
			return
		}
		typ := websocket.MessageText
		if st.binary {
			typ = websocket.MessageBinary
		}
		if st.reply {
			w.sent(st.payload, st.kind, st.id)
		}
		wctx, wcancel := context.WithTimeout(ctx, r.opts.ResponseTimeout)
		err := conn.Write(wctx, typ, st.payload)
		wcancel()
		if err != nil {
			failed("write", fmt.Errorf("write: %w", err))
			return
		}
		res.Sent++
		r.stats.sent.Add(1)
		r.m.sent.Inc()
		if st.control {
			r.stats.control.Add(1)
			r.m.control.Inc()
		}
		if st.rehearsed {
			r.stats.rehearsed.Add(1)
			r.m.rehearsed.Inc()
		}
		r.hist.sent.Add(1)
		w.expire(time.Now())
	}
	allSent = true
	// Wait for the last responses, then close.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(r.opts.ResponseTimeout)
	if res.Failure == "stopped" {
		deadline = time.Now().Add(min(r.opts.ResponseTimeout, stopDrain))
	}
	for w.outstanding() > 0 && time.Now().Before(deadline) {
		if !await(tick.C, nil) {
			return
		}
	}
	w.expire(time.Now().Add(r.opts.ResponseTimeout + time.Second)) // all that remain timed out
	// The server messages recorded after the last client message (a
	// subscription's last results and its completion) come before the
	// close, as they did when recorded.
	if res.Failure == "" && !inOrder(p.serverTotal, nil) {
		return
	}
	if drop && res.Failure == "" {
		conn.CloseNow() // as recorded: the client hung up
		<-readDone
		return
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	closed := make(chan error, 1)
	go func() { closed <- conn.Close(websocket.StatusNormalClosure, "replay done") }()
	select {
	case <-closed:
	case <-cctx.Done():
		conn.CloseNow()
		<-closed
	}
	<-readDone
}

func (r *Replayer) url(info *session.Info) string {
	u := *r.target
	if (u.Path == "" || u.Path == "/") && u.RawQuery == "" && info.Route != "" {
		if ru, err := url.Parse(info.Route); err == nil {
			u.Path, u.RawPath, u.RawQuery = ru.Path, ru.RawPath, ru.RawQuery
		}
	}
	return u.String()
}

func (r *Replayer) dialOptions(info *session.Info) *websocket.DialOptions {
	h := http.Header{}
	for _, name := range r.opts.RecordedHeaders {
		for _, v := range info.Header.Values(name) {
			if !strings.Contains(v, redact.Marker) {
				h.Add(name, v)
			}
		}
	}
	for name, vs := range r.opts.Header {
		h[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
	}
	o := &websocket.DialOptions{HTTPClient: r.opts.HTTPClient, HTTPHeader: h, CompressionMode: websocket.CompressionDisabled}
	// A subprotocol the tap redacted (a token a browser sent as one) is
	// not offered: the target would refuse the marker, and a credential
	// for the warm-up goes in Options.Header.
	if info.Subprotocol != "" && !strings.Contains(info.Subprotocol, redact.Marker) {
		o.Subprotocols = []string{info.Subprotocol}
	}
	if strings.Contains(info.Extensions, "permessage-deflate") {
		o.CompressionMode = websocket.CompressionNoContextTakeover
	}
	return o
}

// read receives the target's messages until the connection ends, matching
// responses to requests. It returns nil on a normal close.
func (r *Replayer) read(ctx context.Context, conn *websocket.Conn, w *waiter, live protocol.Conversation, arr *arrivals) error {
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return err
		}
		now := time.Now()
		r.stats.server.Add(1)
		r.m.received.Inc()
		sm := live.Server(msg, typ == websocket.MessageBinary)
		if sm.Answer != nil {
			// The protocol wants an answer now (a pong): the recorded one
			// was not replayed.
			if err := r.answer(ctx, conn, sm); err != nil {
				return err
			}
		}
		if sm.Heartbeat {
			continue // not part of the conversation: no response, no order
		}
		arr.add()
		if d, kind, ok := w.received(msg, sm.ID, now); ok {
			r.observe(Response{At: now, Latency: d, Kind: kind})
		}
	}
}

// answer sends the message the protocol wants in answer to a server message.
func (r *Replayer) answer(ctx context.Context, conn *websocket.Conn, sm protocol.ServerMessage) error {
	typ := websocket.MessageText
	if sm.AnswerBinary {
		typ = websocket.MessageBinary
	}
	wctx, cancel := context.WithTimeout(ctx, r.opts.ResponseTimeout)
	defer cancel()
	if err := conn.Write(wctx, typ, sm.Answer); err != nil {
		return fmt.Errorf("answer the server: %w", err)
	}
	r.stats.answered.Add(1)
	r.m.answered.Inc()
	return nil
}

func (r *Replayer) observe(resp Response) {
	r.stats.responses.Add(1)
	r.m.latency.Update(resp.Latency.Seconds())
	r.hist.record(resp.Latency)
	if r.opts.OnResponse != nil {
		r.opts.OnResponse(resp)
	}
}
