package replayer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/preheatdev/preheat/session"
)

// Stats is a snapshot of a replay's counters.
type Stats struct {
	// SessionsStarted counts sessions taken from the source.
	SessionsStarted uint64 `json:"sessions_started"`
	// SessionsCompleted counts sessions that sent every planned message
	// and closed as recorded: with a close handshake, or by hanging up for a
	// session whose client hung up.
	SessionsCompleted uint64 `json:"sessions_completed"`
	// SessionsStopped counts sessions that Stop ended early.
	SessionsStopped uint64 `json:"sessions_stopped"`
	// SessionsFailed counts sessions that ended early, by reason.
	SessionsFailed map[string]uint64 `json:"sessions_failed"`
	// Active is the number of sessions being replayed now.
	Active int64 `json:"active"`
	// MessagesSent counts client messages sent to the target.
	MessagesSent uint64 `json:"messages_sent"`
	// MessagesRehearsed counts the messages of MessagesSent that were sent
	// in their rehearsal form (see Options.Rehearse).
	MessagesRehearsed uint64 `json:"messages_rehearsed"`
	// MessagesControl counts the messages of MessagesSent that were
	// protocol control (a connection_init, a Socket.IO CONNECT), not
	// operations.
	MessagesControl uint64 `json:"messages_control"`
	// MessagesSkipped counts client messages not sent, by reason:
	// "mutating" (a rule or the protocol profile marks it as a write),
	// "unknown" (nothing shows it only reads), "reply" (the recorded
	// client's answer to a server message, such as a pong: the replay
	// answers the live server itself), "truncated", "redacted".
	MessagesSkipped map[string]uint64 `json:"messages_skipped"`
	// SkippedByKind splits MessagesSkipped by reason, then by message kind
	// ("" for messages without one). At most 256 reason and kind pairs are
	// told apart; later kinds count as "other".
	SkippedByKind map[string]map[string]uint64 `json:"skipped_by_kind"`
	// Answered counts the messages the replay sent to answer the server
	// as its protocol requires (a pong to a ping).
	Answered uint64 `json:"answered"`
	// OrderWaitsExpired counts waits for the server's messages that ended
	// at Options.OrderTimeout: a client message recorded after the server's
	// k-th message was sent before k had arrived, or a session closed
	// before the server messages recorded at its end had come.
	OrderWaitsExpired uint64 `json:"order_waits_expired"`
	// ServerMessages counts messages received from the target.
	ServerMessages uint64 `json:"server_messages"`
	// Requests counts the messages of MessagesSent that wait for an
	// answer: the recording shows one, and the replay can tell it (by the
	// protocol's id, the Correlate field, or without Correlate as the next
	// server message). Each ends as exactly one of Responses (answered, its
	// latency measured), Timeouts (no answer within ResponseTimeout) or
	// Closed (the connection ended while it waited); until then it is
	// Awaiting. So Requests = Responses + Timeouts + Closed + Awaiting, and
	// Awaiting is 0 once every session has ended. Requests that reuse an
	// id are answered first in, first out.
	Requests  uint64 `json:"requests"`
	Responses uint64 `json:"responses"`
	Timeouts  uint64 `json:"timeouts"`
	Closed    uint64 `json:"requests_closed"`
	Awaiting  int64  `json:"requests_awaiting"`
	// Evicted counts the Timeouts given up before ResponseTimeout because
	// their session had 4,096 requests in its window: the bound on what a
	// session keeps.
	Evicted uint64 `json:"requests_evicted"`
	// ClosedCut counts the Closed whose session the caller ended (the
	// context of Run or Replay: a load test's cut at the end of its drain),
	// not the target.
	ClosedCut uint64 `json:"requests_closed_cut"`
	// LatencyP50 and LatencyP99 are over every response of the run.
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
	// RateLimit is the message rate allowed now, after back-off; negative
	// when unlimited.
	RateLimit float64 `json:"rate_limit"`
	// CPUPressure is the node's CPU stall share of the last second when
	// Options.MaxCPUPressure is set and the pressure file is readable;
	// else -1.
	CPUPressure float64 `json:"cpu_pressure"`
}

// Response is one measured response.
type Response struct {
	// At is when the response arrived.
	At time.Time
	// Latency is the time from its request being sent.
	Latency time.Duration
	// Kind is the request's kind (see Options.KindFields); "" if unknown.
	Kind string
}

// SessionResult says how one replayed session ended.
type SessionResult struct {
	// ID is the recorded session's id.
	ID session.ID
	// Failure is "" when the session completed: every planned message was
	// sent and the session closed as recorded. Otherwise it names why not:
	// "connect" (no connection: refused, unreachable, timed out),
	// "handshake" (the target answered the upgrade with an error status),
	// "write", "closed_by_target" (see CloseCode), "timeout" (the session
	// outlived SessionTimeout or the run ended), "stopped" (Stop was called:
	// it sent no more, then closed), "no_open",
	// "nothing_to_send" or "connect_skipped" (the filters left no connect).
	Failure string
	// Err is the error behind Failure.
	Err error
	// Status is the HTTP status of a failed handshake.
	Status int
	// CloseCode is the close status the target sent when it closed the
	// session early; -1 when it sent none or did not close.
	CloseCode int
	// Sent counts the messages sent; Skipped those the filters held back.
	Sent, Skipped int
	// OrderWaitsExpired counts the session's waits for server messages
	// that ended at Options.OrderTimeout.
	OrderWaitsExpired int
	// Started is when the session began (its dial); Duration how long it
	// ran.
	Started  time.Time
	Duration time.Duration
}

// counters are the replay's totals.
type counters struct {
	started, completed, stopped, sent, rehearsed, server, responses, timeouts atomic.Uint64
	control, answered, orderExpired                                           atomic.Uint64
	requests, closed, closedCut, evicted                                      atomic.Uint64

	mu      sync.Mutex
	failure map[string]uint64
	skipped map[string]uint64
	byKind  map[skipKey]uint64 // at most maxSkipKinds keys
}

// maxSkipKinds bounds the (reason, kind) pairs the skip counts tell apart;
// past it, kinds count as "other". Kinds come from recorded sessions, so
// any client can make up new ones.
const maxSkipKinds = 256

// failed counts a failed session and reports whether it is the first of
// its reason.
func (c *counters) failed(reason string) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failure == nil {
		c.failure = map[string]uint64{}
	}
	c.failure[reason]++
	return c.failure[reason] == 1
}

// skip counts n messages not sent, and returns the key they were counted
// under by kind: k, or k with kind "other" once maxSkipKinds are known.
func (c *counters) skip(k skipKey, n int) skipKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.skipped == nil {
		c.skipped = map[string]uint64{}
		c.byKind = map[skipKey]uint64{}
	}
	c.skipped[k.reason] += uint64(n)
	if _, ok := c.byKind[k]; !ok && len(c.byKind) >= maxSkipKinds {
		k.kind = "other"
	}
	c.byKind[k] += uint64(n)
	return k
}

// awaiting returns the requests sent that have not yet ended. A request
// is counted once written, and may be answered a moment before: the
// difference is held at 0.
func (c *counters) awaiting() int64 {
	ended := c.responses.Load() + c.timeouts.Load() + c.closed.Load()
	return max(int64(c.requests.Load())-int64(ended), 0)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		SessionsStarted:   c.started.Load(),
		SessionsCompleted: c.completed.Load(),
		SessionsStopped:   c.stopped.Load(),
		MessagesSent:      c.sent.Load(),
		MessagesRehearsed: c.rehearsed.Load(),
		ServerMessages:    c.server.Load(),
		Responses:         c.responses.Load(),
		Timeouts:          c.timeouts.Load(),
		Requests:          c.requests.Load(),
		Closed:            c.closed.Load(),
		Evicted:           c.evicted.Load(),
		ClosedCut:         c.closedCut.Load(),
		MessagesControl:   c.control.Load(),
		Answered:          c.answered.Load(),
		OrderWaitsExpired: c.orderExpired.Load(),
		SessionsFailed:    map[string]uint64{},
		MessagesSkipped:   map[string]uint64{},
		SkippedByKind:     map[string]map[string]uint64{},
	}
	s.Awaiting = c.awaiting()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.failure {
		s.SessionsFailed[k] = v
	}
	for k, v := range c.skipped {
		s.MessagesSkipped[k] = v
	}
	for k, v := range c.byKind {
		m := s.SkippedByKind[k.reason]
		if m == nil {
			m = map[string]uint64{}
			s.SkippedByKind[k.reason] = m
		}
		m[k.kind] = v
	}
	return s
}
