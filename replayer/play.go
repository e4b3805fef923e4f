package replayer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// stopDrain bounds how long a stopped session waits for the responses it
// still expects before its close handshake.
const stopDrain = time.Second

// play dials the target and sends steps, recording in res how it went,
// within SessionTimeout. When stop is done it sends no more; a session that
// ends with drop hangs up without a close handshake, as it was recorded to.
// Every request it sends that waits for an answer ends answered, timed out
// or closed before it returns.
func (r *Replayer) play(run, stop context.Context, info *session.Info, p *sessionPlan, drop bool, res *SessionResult) {
	ctx, cancel := context.WithTimeout(run, r.opts.SessionTimeout)
	defer cancel()
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
	// The session's end (SessionTimeout, the caller's cancel) closes the
	// connection, which ends a read or a write in progress: they take no
	// context of their own, which would cost a callback and a timer per
	// message. A write that hangs (the target stopped reading) is ended by
	// the watchdog.
	defer context.AfterFunc(ctx, func() { conn.CloseNow() })()
	wd := newWriteWatchdog(conn, r.opts.ResponseTimeout)
	defer wd.stop()

	w := newWaiter(r)
	// Last, once the reader has ended: what still waits was closed, by the
	// caller when it ended the run or stopped the replay.
	defer func() { w.close(run.Err() != nil || res.Failure == "stopped") }()
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
		if ctx.Err() != nil {
			failed("timeout", ctx.Err()) // the session's end closed it
			return
		}
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
	orderTimer := time.NewTimer(time.Hour) // one for the session's waits
	orderTimer.Stop()
	defer orderTimer.Stop()
	inOrder := func(n int, stop <-chan struct{}) bool {
		if !ordered || arr.count() >= n {
			return true
		}
		orderTimer.Reset(r.opts.OrderTimeout)
		defer orderTimer.Stop()
		for arr.count() < n {
			select {
			case <-arr.notify:
				continue
			case <-orderTimer.C:
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
	paced := ctx
	if !r.unlimited {
		var endPaced context.CancelFunc
		paced, endPaced = context.WithCancel(ctx)
		defer endPaced()
		defer context.AfterFunc(stop, endPaced)()
	}

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
		// Its recorded time first, then the server messages before it:
		// by then they have usually come, and the order costs no wait.
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
		if !inOrder(st.after, stop.Done()) {
			if res.Failure == "stopped" {
				break steps
			}
			return
		}
		if r.unlimited {
			if stop.Err() != nil {
				res.Failure = "stopped"
				break
			}
		} else if err := r.limiter.Wait(paced); err != nil || stop.Err() != nil {
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
		// A request waits from before its write: its answer may come
		// before the write returns.
		waits := st.reply && w.sent(st.payload, st.kind, st.id)
		err := wd.write(typ, st.payload)
		if err != nil {
			if waits && !w.withdraw() {
				r.requested() // answered or given up already: it was sent
			}
			if ctx.Err() != nil {
				failed("timeout", ctx.Err()) // the session's end closed it
			} else {
				failed("write", fmt.Errorf("write: %w", err))
			}
			return
		}
		if waits {
			r.requested()
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
	if res.Failure != "stopped" {
		// All that remain have waited ResponseTimeout: timed out. A
		// stopped session's are closed, without their full wait.
		w.expire(time.Now().Add(r.opts.ResponseTimeout + time.Second))
	}
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
// responses to requests. It returns nil on a normal close. A message is read
// into a buffer the session reuses: nothing keeps it past its turn (the
// protocol copies what it keeps).
func (r *Replayer) read(ctx context.Context, conn *websocket.Conn, w *waiter, live protocol.Conversation, arr *arrivals) error {
	var buf []byte
	for {
		typ, rd, err := conn.Reader(context.Background()) // the session's end closes conn
		if err == nil {
			buf, err = readMessage(rd, buf[:0])
		}
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return err
		}
		msg := buf
		if cap(buf) > maxKeptBuffer {
			buf = nil // a large message's buffer is not kept for the small ones
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
		w.received(msg, sm.ID, now)
	}
}

// maxKeptBuffer bounds the read buffer a session keeps between messages,
// in bytes.
const maxKeptBuffer = 64 << 10

// readMessage appends what rd holds to buf. The connection's read limit
// bounds it.
func readMessage(rd io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writeWatchdog writes a session's messages and closes its connection when
// a write has lasted ResponseTimeout: one timer for the session, checked
// every ResponseTimeout, instead of one per write. A hung write is ended
// within twice ResponseTimeout.
type writeWatchdog struct {
	conn    *websocket.Conn
	limit   time.Duration
	since   atomic.Int64 // when the write in progress began, ns from base; 0 when none
	base    time.Time
	timer   *time.Timer
	stopped atomic.Bool
}

func newWriteWatchdog(conn *websocket.Conn, limit time.Duration) *writeWatchdog {
	wd := &writeWatchdog{conn: conn, limit: limit, base: time.Now()}
	wd.timer = time.AfterFunc(limit, wd.check)
	return wd
}

func (wd *writeWatchdog) check() {
	if wd.stopped.Load() {
		return
	}
	if s := wd.since.Load(); s != 0 && time.Since(wd.base)-time.Duration(s) >= wd.limit {
		wd.conn.CloseNow()
		return
	}
	wd.timer.Reset(wd.limit)
}

// write writes msg, ended by the connection's close if it hangs.
func (wd *writeWatchdog) write(typ websocket.MessageType, msg []byte) error {
	wd.since.Store(max(int64(time.Since(wd.base)), 1))
	err := wd.conn.Write(context.Background(), typ, msg)
	wd.since.Store(0)
	return err
}

func (wd *writeWatchdog) stop() {
	wd.stopped.Store(true)
	wd.timer.Stop()
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

// requested counts a request sent that waits for an answer.
func (r *Replayer) requested() {
	r.stats.requests.Add(1)
	r.m.requests.Inc()
}

func (r *Replayer) observe(resp Response) {
	r.stats.responses.Add(1)
	r.m.latency.Update(resp.Latency.Seconds())
	r.hist.record(resp.Latency)
	if r.opts.OnResponse != nil {
		r.opts.OnResponse(resp)
	}
}
