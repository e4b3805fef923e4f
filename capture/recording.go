package capture

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/capture/wsframe"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// direction indexes what a Recording keeps per direction of its session.
type direction uint8

const (
	fromClient direction = iota // what the client sent, toward the server
	fromServer                  // what the server sent, toward the client
)

// bothDirections lists the directions in index order, for a loop over
// what is kept per direction.
var bothDirections = [...]direction{fromClient, fromServer}

// other is the opposite direction.
func (d direction) other() direction { return 1 - d }

// event is d as recorded events name it.
func (d direction) event() session.Direction {
	if d == fromClient {
		return session.ClientToServer
	}
	return session.ServerToClient
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Recording is one session being recorded. Client and Server are each
// called for one direction's bytes, in order and never concurrently (the
// Tap calls them from a capture worker, see handoff.go; the Middleware from
// the goroutine that reads or writes that direction); End once both are
// done.
type Recording struct {
	r       *Recorder
	id      session.ID
	key     string
	start   time.Time
	redact  *redact.Redactor
	queue   chan *exportJob
	deflate *wsframe.DeflateParams // negotiated permessage-deflate, or nil

	// parsers[fromClient] parses client bytes and is used only by Client;
	// parsers[fromServer] server bytes, only by Server. Between messages an
	// idle parser goes back to parserPool, so that an idle session holds
	// none; the next bytes take one again. parsed[dir] is set when a direction
	// is no longer parsed.
	parsers    [2]*wsframe.Parser
	parsed     [2]bool
	stopped    atomic.Bool     // no more events are recorded
	inflight   [2]atomic.Int64 // Unix nanoseconds of each direction's chunk being forwarded and parsed; 0 for none
	at         [2]time.Time    // when the bytes being parsed were forwarded, per direction
	parserHeld [2]int64        // budget bytes charged for each parser's buffers

	// stop is why recording stopped, set once by whoever stopped it first:
	// a cut's reason, or closedWhole. The Tap's hand-off sets it without
	// the lock (see abandon); the close event follows under it.
	stop atomic.Pointer[string]
	// lost is set once a batch of the session was not delivered: its
	// later batches are not sent (see Recorder.lose in export.go).
	lost atomic.Bool

	mu        sync.Mutex
	w         *session.BatchWriter // pending events; nil when there are none
	seq       uint64
	frames    int
	bytes     int
	held      int64          // budget bytes accounted for w
	oldest    time.Time      // when w's first pending event was added
	closing   *session.Event // the first close frame forwarded, not yet recorded
	closingAt time.Time      // when it was forwarded
	closedDir [2]bool        // which sides have sent a close frame
	waiting   []waiting      // events held back for the other direction
	waitDir   direction      // the direction of the events held back
	closed    bool           // a close event was recorded
	ended     bool           // the connection is over
	finished  bool           // removed from the recorder
}

// ID returns the session's id.
func (s *Recording) ID() session.ID { return s.id }

// Client records bytes the client sent, forwarded at the time at. It may
// modify b.
func (s *Recording) Client(b []byte, at time.Time) { s.feed(fromClient, b, at) }

// Server records bytes the server sent, forwarded at the time at. It may
// modify b.
func (s *Recording) Server(b []byte, at time.Time) { s.feed(fromServer, b, at) }

// mark notes that a chunk of direction dir read at the time at is being
// forwarded and will be fed next. Events of the other direction forwarded
// later wait for it, so that the session's order is the order bytes were
// forwarded in, not the order the two directions happen to be parsed in.
// It never blocks.
func (s *Recording) mark(dir direction, at time.Time) { s.inflight[dir].Store(at.UnixNano()) }

// closedWhole is Recording.stop for a session that ended without a cut.
var closedWhole = new(string)

// abandon stops recording the session from a goroutine that must not wait
// for the session's lock (the one forwarding its bytes): the cut is counted
// now, and the close event that says why is recorded by the session's next
// call under the lock (cut, End, or the recorder's flush). It returns false
// when recording had already stopped.
func (s *Recording) abandon(reason string) bool {
	if !s.stop.CompareAndSwap(nil, &reason) {
		return false
	}
	s.r.m.cut(reason)
	return true
}

// recording reports whether events are still recorded: false once
// recording has stopped or been abandoned. It never blocks.
func (s *Recording) recording() bool { return s.stop.Load() == nil }

// waiting is an event held back until the other direction's chunk in
// flight is parsed.
type waiting struct {
	ev      session.Event
	payload int
}

// maxWaiting bounds the events held back; past it they are recorded at
// once, in parse order.
const maxWaiting = 256

// commitLocked records ev, an event of direction dir forwarded at at, or
// holds it while the other direction has an earlier chunk in flight.
func (s *Recording) commitLocked(dir direction, at time.Time, ev *session.Event, payload int) bool {
	if o := s.inflight[dir.other()].Load(); o != 0 && o < at.UnixNano() && len(s.waiting) < maxWaiting {
		ev.Payload = bytes.Clone(ev.Payload)
		s.waiting = append(s.waiting, waiting{ev: *ev, payload: payload})
		s.waitDir = dir
		return true
	}
	return s.appendLocked(ev, payload)
}

// releaseLocked records the events held back.
func (s *Recording) releaseLocked() {
	for i := range s.waiting {
		w := &s.waiting[i]
		s.appendLocked(&w.ev, w.payload)
	}
	clear(s.waiting)
	s.waiting = s.waiting[:0]
}

func (s *Recording) feed(dir direction, b []byte, at time.Time) {
	if s.parsed[dir] {
		return
	}
	if s.stopped.Load() {
		s.releaseParser(dir)
		return
	}
	p := s.parser(dir)
	s.at[dir] = at
	err := p.Feed(b, func(m *wsframe.Message) { s.message(dir, m) })
	// This chunk is parsed: what the other direction held back for it goes
	// in now.
	s.mu.Lock()
	if s.inflight[dir].Load() == at.UnixNano() {
		s.inflight[dir].Store(0)
	}
	if len(s.waiting) > 0 && s.inflight[s.waitDir.other()].Load() == 0 {
		s.releaseLocked()
	}
	s.mu.Unlock()
	if err != nil {
		reason := "parse"
		var fe *wsframe.Error
		if errors.As(err, &fe) {
			reason = "parse_" + fe.Reason
		}
		s.cut(reason)
		s.releaseParser(dir)
		return
	}
	// What the parser holds of a message still arriving counts against the
	// budget like recorded events do.
	if held := int64(p.Held()); held != s.parserHeld[dir] {
		used := s.r.used.Add(held - s.parserHeld[dir])
		s.parserHeld[dir] = held
		if used > s.r.opts.BudgetBytes && held > 0 {
			s.cut("budget")
			s.releaseParser(dir)
			return
		}
	}
	if p.Idle() {
		// Between messages the parser holds nothing the next bytes need.
		s.parsers[dir] = nil
		parserPool.Put(p)
	}
}

// parserPool holds the parsers of idle sessions, for Reset.
var parserPool = sync.Pool{New: func() any { return new(wsframe.Parser) }}

// parser returns the parser of direction dir, taking one from parserPool
// when the direction has none.
func (s *Recording) parser(dir direction) *wsframe.Parser {
	if p := s.parsers[dir]; p != nil {
		return p
	}
	p := parserPool.Get().(*wsframe.Parser)
	p.Reset(&wsframe.Options{Client: dir == fromClient, Deflate: s.deflate,
		MaxMessageBytes: s.r.opts.MaxMessageBytes, MaxInflateBytes: s.r.maxInflate()})
	s.parsers[dir] = p
	return p
}

// releaseParser stops parsing a direction: it releases the direction's
// parser and gives back the budget it held. Only the feeder of that
// direction, or End, calls it.
func (s *Recording) releaseParser(dir direction) {
	s.parsed[dir] = true
	if p := s.parsers[dir]; p != nil {
		p.Release()
		s.parsers[dir] = nil
		parserPool.Put(p)
	}
	if s.parserHeld[dir] != 0 {
		s.r.used.Add(-s.parserHeld[dir])
		s.parserHeld[dir] = 0
	}
}

func (s *Recording) message(dir direction, m *wsframe.Message) {
	at := s.at[dir]
	// Bytes forwarded with the handshake's end count from the connect.
	offset := max(0, at.Sub(s.start))
	switch m.Opcode {
	case wsframe.OpText, wsframe.OpBinary:
	case wsframe.OpClose:
		// A reason is free text, which may quote a credential ("bad token
		// eyJ..."): it is redacted like a text message.
		reason, res := s.redact.CloseReason(m.CloseReason)
		s.r.m.redacted("close_reason", res.Fields+res.Tokens)
		if res.Blanked {
			s.r.m.redacted("close_reason", 1)
		}
		// The close event waits for both sides' close frames (or the end
		// of the connection): until the peer answers, it may still send
		// messages, and the tap may observe them after this close because
		// it parses each direction after forwarding it.
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || s.stopped.Load() {
			return
		}
		// The side whose close frame was forwarded first started the
		// closing handshake, whichever direction is parsed first.
		if s.closing == nil || at.Before(s.closingAt) {
			side := sideClient
			if dir == fromServer {
				side = sideServer
			}
			s.closing = &session.Event{Offset: offset, Code: m.CloseCode, Reason: reason, ClosedBy: side}
			s.closingAt = at
		}
		s.closedDir[dir] = true
		if s.closedDir[fromClient] && s.closedDir[fromServer] {
			s.closeLocked(*s.closing)
		}
		return
	default:
		return // ping and pong are not application messages
	}
	// Most messages hold no configured key and go into the batch as they
	// are; the others are redacted into a pooled buffer first (the batch
	// copies the result, so nothing is kept per session between messages).
	payload := m.Payload
	binary := m.Opcode != wsframe.OpText
	if !s.redact.Clean(payload, binary) {
		sp := scratchPool.Get().(*[]byte)
		defer func() { scratchPool.Put(sp) }()
		var res redact.Result
		if binary {
			*sp, res = s.redact.Binary((*sp)[:0], payload)
		} else {
			*sp, res = s.redact.Payload((*sp)[:0], payload, m.Truncated)
		}
		payload = *sp
		s.r.m.redacted("field", res.Fields)
		s.r.m.redacted("token", res.Tokens)
		if res.Blanked {
			s.r.m.redacted("blanked", 1)
		}
	}
	if m.Truncated {
		s.r.m.truncated.Inc()
	}
	ev := session.Event{
		Kind:      session.KindFrame,
		Direction: dir.event(),
		Opcode:    session.Opcode(m.Opcode),
		Offset:    offset,
		Payload:   payload,
		Truncated: m.Truncated,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped.Load() || s.closedDir[dir] {
		return // nothing is recorded after a side's own close frame
	}
	o := &s.r.opts
	switch {
	case offset > o.MaxSessionDuration:
		s.cutLocked("duration")
		return
	case s.frames+1 > o.MaxSessionFrames:
		s.cutLocked("frames")
		return
	case s.bytes+len(payload) > o.MaxSessionBytes:
		s.cutLocked("bytes")
		return
	}
	if !s.commitLocked(dir, at, &ev, len(payload)) {
		return
	}
	s.frames++
	s.bytes += len(payload)
	s.r.m.frames[dir].Inc()
	s.r.m.bytes[dir].Add(len(payload))
}

// appendLocked records ev with the next sequence number, within the budget
// and the stream's record size; past either it cuts the session instead and
// returns false. Open and close events are always recorded: a session was
// admitted with room for them, and they keep it whole.
func (s *Recording) appendLocked(ev *session.Event, payload int) bool {
	if s.finished {
		return false
	}
	edge := ev.Kind == session.KindOpen || ev.Kind == session.KindClose
	need := int64(payload + 32)
	if !edge {
		// A batch must fit in one stream record. When the queue has no room
		// for the pending one, the session cannot grow: cut it, keeping what
		// it has whole.
		// The smallest event encodes in more than MaxRecordBytes /
		// session.MaxBatchEvents bytes, so this bound also keeps a batch
		// under the event limit (TestRecorderCutsFloodWhileStalled).
		if s.w != nil && s.w.Len()+int(need) > maxPendingBody {
			s.flushLocked()
			if s.w != nil && s.w.Events() > 0 {
				s.cutLocked("queue_full")
				return false
			}
		}
		if s.r.used.Add(need) > s.r.opts.BudgetBytes {
			s.r.used.Add(-need)
			s.cutLocked("budget")
			return false
		}
	} else {
		s.r.used.Add(need)
	}
	if s.w == nil {
		s.w = writerPool.Get().(*session.BatchWriter)
		s.w.Reset()
	}
	ev.Session, ev.Seq = s.id, s.seq
	before := s.w.Len()
	if err := s.w.Append(ev); err != nil {
		s.r.used.Add(-need)
		s.r.logf(slog.LevelError, "encode event", "session", s.key, "err", err)
		if !edge {
			s.cutLocked("encode")
		}
		return false
	}
	s.seq++
	s.r.used.Add(int64(s.w.Len()-before) - need)
	s.held += int64(s.w.Len() - before)
	if s.w.Events() == 1 {
		s.oldest = time.Now()
	}
	if s.w.Len() >= s.r.opts.BatchBytes {
		s.flushLocked()
	}
	return true
}

// discardLocked gives back what a recording that was never published holds.
func (s *Recording) discardLocked() {
	s.r.used.Add(-s.held)
	if s.w != nil {
		writerPool.Put(s.w)
	}
	s.w, s.held, s.finished = nil, 0, true
}

// maxPendingBody bounds a pending batch's body so that, encoded, it fits in
// one stream record with room for a close event.
const maxPendingBody = stream.MaxRecordBytes - 8<<10

// cut stops recording the session: it ends with a close event from the tap
// whose reason says why, and the connection goes on unrecorded.
func (s *Recording) cut(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutLocked(reason)
}

func (s *Recording) cutLocked(reason string) {
	if s.stopped.Load() {
		return
	}
	if s.stop.CompareAndSwap(nil, &reason) {
		s.r.m.cut(reason)
	} // else abandoned, and counted then: closeLocked records that reason
	s.closeLocked(session.Event{Offset: time.Since(s.start), ClosedBy: sideTap, Reason: "preheat: " + reason})
}

// closeLocked records the session's close event and stops recording. When
// the session was abandoned (see abandon), the close event is the tap's,
// with the reason it was abandoned for, whatever ev was.
func (s *Recording) closeLocked(ev session.Event) {
	if !s.stop.CompareAndSwap(nil, closedWhole) {
		if r := s.stop.Load(); r != closedWhole && ev.Reason != "preheat: "+*r {
			ev = session.Event{Offset: time.Since(s.start), ClosedBy: sideTap, Reason: "preheat: " + *r}
		}
	}
	s.stopped.Store(true)
	s.releaseLocked()
	if !s.closed {
		s.closed = true
		ev.Kind = session.KindClose
		s.appendLocked(&ev, len(ev.Reason))
	}
	s.flushLocked()
}

// End records the end of the connection; side is who hung up first. It
// releases the parsers: call it once both directions are done.
func (s *Recording) End(side session.Side) {
	s.releaseParser(0)
	s.releaseParser(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		ev := session.Event{Offset: time.Since(s.start), ClosedBy: side}
		if s.closing != nil {
			ev = *s.closing
		}
		s.closeLocked(ev)
	}
	s.stopped.Store(true)
	s.ended = true
	s.flushLocked()
}

// flushLocked hands the pending batch to the session's exporter without
// blocking. If the queue is full the batch stays pending and the ticker
// tries again; the budget bounds how much can pile up.
func (s *Recording) flushLocked() {
	if s.finished {
		return // the recorder already flushed and let go of the session
	}
	if s.w != nil && s.w.Events() > 0 {
		job := &exportJob{rec: s, key: s.key, w: s.w, size: s.held, flushed: time.Now()}
		s.r.qmu.RLock()
		sent, gone := false, s.r.qclosed
		if !gone {
			select {
			case s.queue <- job:
				sent = true
			default:
			}
		}
		s.r.qmu.RUnlock()
		switch {
		case sent:
			s.w = nil // the exporter owns it now; an idle session holds none
			s.held = 0
		case gone:
			// The recorder has shut down: what is pending is lost, and
			// counted.
			s.r.m.failed.Inc()
			s.r.lose(s, "shutdown")
			s.r.used.Add(-s.held)
			s.held = 0
			s.w.Reset()
		default:
			return
		}
	}
	if s.ended && !s.finished {
		s.finished = true
		s.r.mu.Lock()
		delete(s.r.active, s)
		s.r.mu.Unlock()
		if s.w != nil {
			writerPool.Put(s.w)
			s.w = nil
		}
	}
}
