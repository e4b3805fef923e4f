package replayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// Source yields the sessions to replay.
type Source interface {
	// Next returns the events of the next session, its open event first.
	// It returns io.EOF when there are no more; any other error ends Run.
	Next(ctx context.Context) ([]session.Event, error)
}

// Options configures a Replayer. The zero value (or nil) is usable.
type Options struct {
	// Header is added to every handshake, replacing recorded values of the
	// same name: the warm-up credential, say. Default none.
	Header http.Header
	// RecordedHeaders names the recorded handshake headers that are sent
	// again when Header does not set them. Values the tap redacted are
	// never sent. Default User-Agent and Accept-Language.
	RecordedHeaders []string
	// Speed scales the recorded pace: 1 replays at the recorded pace, 2 at
	// twice it. Default 0: as fast as the limits allow.
	Speed float64
	// Rate bounds the client messages sent per second across all sessions.
	// Default 200; negative means no limit.
	Rate float64
	// Burst is how many messages may go at once under Rate. Default Rate/10,
	// at least 1.
	Burst int
	// Concurrency bounds the sessions replayed at once. Default 16.
	Concurrency int
	// Correlate is a dotted path to the JSON field that ties a response to
	// its request (such as "id"). A server message carrying the same value
	// as a sent client message answers it, and its latency is measured.
	// Default "": latency is the time from a client message to the next
	// server message.
	Correlate string
	// ResponseTimeout is how long a sent message waits for its response
	// before it counts as a timeout, and how long a session waits for the
	// last responses before closing. Default 10s.
	ResponseTimeout time.Duration
	// DialTimeout bounds each websocket handshake. Default 10s.
	DialTimeout time.Duration
	// SessionTimeout bounds one replayed session from dial to close.
	// Default 5m.
	SessionTimeout time.Duration
	// ReadLimit bounds one message read from the target, in bytes; a
	// larger one fails the session. Default 16 MiB.
	ReadLimit int64
	// Protocol names the protocol profile that judges every session's
	// messages (see package protocol: "graphql-transport-ws",
	// "graphql-ws", "socket.io", "json-rpc", "json"). Default "": each
	// session's profile is detected from its recorded subprotocol, route
	// and first client message.
	Protocol string
	// Safety lists the operator's rules that mark a client message as
	// mutating. They win over every other judgement. Default none.
	Safety []SafetyRule
	// Allow lists the operator's rules that mark a client message as a
	// read, where the profile found it unknown (or, with NoDefaultSafety,
	// always). A message the profile or a Safety rule marks as mutating
	// stays mutating. Default none.
	Allow []SafetyRule
	// NoDefaultSafety sets the profile's judgement of operation names
	// aside: only Safety and Allow rules decide, and an operation neither
	// matches is unknown. The profile still tells protocol control and
	// replies apart. Default false.
	NoDefaultSafety bool
	// SendUnknown sends messages whose verdict is unknown: nothing shows
	// that they only read. This is the old behaviour of sending everything
	// not marked mutating; whoever sets it accepts that an unrecognised
	// write is replayed. Default false: unknown messages are skipped and
	// counted.
	SendUnknown bool
	// SendMutating sends mutating messages as they are, for a load test
	// against a staging target whose data does not matter. Default false:
	// they are skipped and counted (or rehearsed, see Rehearse).
	SendMutating bool
	// OrderTimeout bounds how long a client message recorded after the
	// server's k-th message waits for this replay to have received k
	// server messages (heartbeats and the answers to messages not sent
	// aside), and how long a session waits at its end for the server
	// messages recorded after its last client message (a subscription's
	// last results and its completion). A wait that ends is counted
	// (Stats.OrderWaitsExpired), and the rest of that session is sent
	// without waiting. Default 5s.
	OrderTimeout time.Duration
	// Rewrite lists the rules applied to client messages, in order, before
	// the safety check.
	Rewrite []RewriteRule
	// Rehearse, when set, sends each message a safety rule marks as
	// mutating in its rehearsal form instead of skipping it: with every
	// rule's field set to its value. Whoever sets it asserts that the
	// target leaves nothing a user can see for a message carrying these
	// values: it honours a dry-run flag, or confines the write to a
	// sandbox tenant that real traffic never reads. A message that cannot
	// be put in that form beyond doubt (not a JSON object, a key on a
	// rule's path duplicated, escaped or in another case) is still skipped
	// as mutating. Why: a warm-up
	// that never takes the write path leaves it cold, and a JIT compiler
	// that compiled the dispatch around a never-taken write branch throws
	// that code away at the first real write. A sandbox tenant warms the
	// whole path; a dry-run flag leaves the final commit untaken. Default
	// none: mutating messages are never sent.
	Rehearse []RehearseRule
	// DropRedacted skips client messages that still hold the tap's
	// redaction marker after rewriting. Default false: they are sent, and
	// counted.
	DropRedacted bool
	// DryRun, when set, makes Run print each session's plan (every client
	// message it would send or skip, and why) to DryRun instead of
	// connecting to the target.
	DryRun io.Writer
	// NoBackoff turns off adaptive back-off: Rate is held whatever the
	// target's latency and errors. Default false.
	NoBackoff bool
	// BackoffLatency is the factor by which the p90 response latency of
	// the last 3 seconds may exceed the best such p90 of the last minute
	// before the rate backs off. Default 2.
	BackoffLatency float64
	// BackoffFloor is how far above the best p90 latency the recent p90
	// must also be before the rate backs off, so that noise in fast
	// responses (1ms becoming 2ms) is not taken for queueing. Default 5ms.
	BackoffFloor time.Duration
	// BackoffErrors is the fraction of failed sessions and timed-out
	// messages in the last second above which the rate backs off.
	// Default 0.05.
	BackoffErrors float64
	// MinRate is the floor adaptive back-off does not go below, in messages
	// per second. Default Rate/20.
	MinRate float64
	// StartRate is the message rate at the start, from which the rate
	// climbs by a tenth of Rate a second while nothing calls for back-off.
	// Starting low spreads the first wave of work a cold target sets off
	// (its JIT compiles every method that has just become hot at once).
	// Default Rate: no ramp. It is raised to MinRate if below it. Like
	// MaxCPUPressure, it is part of adaptive back-off: ignored with
	// NoBackoff or an unlimited Rate.
	StartRate float64
	// MaxCPUPressure backs the rate off while the node's CPU is contended:
	// when, in the last second, some runnable task waited for a CPU more
	// than this share of the time (Linux pressure stall information, the
	// "some" line of PressureFile). A warming pod's compile threads and
	// replayed work then cannot take the CPU its neighbours need. The
	// target's own compile work counts, so the rate stays low while the
	// target compiles on a busy node. Default 0: off.
	MaxCPUPressure float64
	// PressureFile is the PSI file MaxCPUPressure reads. Default
	// DefaultPressureFile, which is node-wide. If it cannot be read the
	// signal is off for the run, logged once and counted.
	PressureFile string
	// OnResponse, when set, is called with each measured response. It
	// must be quick and safe for concurrent use.
	OnResponse func(Response)
	// OnSessionEnd, when set, is called as each session taken by Run ends.
	// It must be quick and safe for concurrent use.
	OnSessionEnd func(SessionResult)
	// KindFields are JSON keys whose value names an operation, tried
	// before the profile's own (package protocol, Options.KeyFields): they
	// name a request's kind in Response.Kind and in the skip counts, and
	// they are judged like the built-in keys. Default none.
	KindFields []string
	// HTTPClient performs the handshakes. Default a client with
	// DialTimeout on each dial.
	HTTPClient *http.Client
	// Logger receives one line per failed session and per back-off change.
	// Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the replay's counters. Default a new set.
	Metrics *metrics.Set
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if len(c.RecordedHeaders) == 0 {
		c.RecordedHeaders = []string{"User-Agent", "Accept-Language"}
	}
	if c.Speed < 0 {
		return c, fmt.Errorf("speed %v: must not be negative", c.Speed)
	}
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.Rate/10))
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 5 * time.Minute
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = 16 << 20
	}
	c.Safety = append([]SafetyRule(nil), c.Safety...)
	for i := range c.Safety {
		if err := c.Safety[i].compile(); err != nil {
			return c, err
		}
	}
	c.Allow = append([]SafetyRule(nil), c.Allow...)
	for i := range c.Allow {
		if err := c.Allow[i].compile(); err != nil {
			return c, err
		}
	}
	if c.OrderTimeout <= 0 {
		c.OrderTimeout = 5 * time.Second
	}
	if len(c.Rehearse) > 0 {
		rules, err := compileRehearse(c.Rehearse)
		if err != nil {
			return c, err
		}
		c.Rehearse = rules
	}
	c.Rewrite = append([]RewriteRule(nil), c.Rewrite...)
	for i := range c.Rewrite {
		if err := c.Rewrite[i].compile(); err != nil {
			return c, fmt.Errorf("rewrite rule %s: %w", c.Rewrite[i], err)
		}
	}
	if c.BackoffLatency <= 1 {
		c.BackoffLatency = 2
	}
	if c.BackoffFloor <= 0 {
		c.BackoffFloor = 5 * time.Millisecond
	}
	if c.BackoffErrors <= 0 {
		c.BackoffErrors = 0.05
	}
	if c.MinRate <= 0 {
		c.MinRate = max(c.Rate/20, 1)
	}
	if c.StartRate <= 0 || c.StartRate > c.Rate {
		c.StartRate = c.Rate
	}
	c.StartRate = max(c.StartRate, c.MinRate)
	if c.MaxCPUPressure < 0 || c.MaxCPUPressure >= 1 {
		return c, fmt.Errorf("max CPU pressure %v: must be a share between 0 and 1", c.MaxCPUPressure)
	}
	if c.PressureFile == "" {
		c.PressureFile = DefaultPressureFile
	}
	if c.HTTPClient == nil {
		d := &net.Dialer{Timeout: c.DialTimeout}
		c.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: http.ProxyFromEnvironment}}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c, nil
}

// Replayer replays sessions against one target. It is safe for concurrent
// use, but one Run at a time is what it is built for.
type Replayer struct {
	target      *url.URL
	opts        Options
	correlate   path
	profiles    *protocol.Set
	fixed       protocol.Profile // Options.Protocol's, or nil: detect
	log         *slog.Logger
	limiter     *rate.Limiter
	m           replayMetrics
	stats       counters
	hist        latencyWindow
	failStreak  atomic.Int64
	active      atomic.Int64
	limitMilli  atomic.Int64 // current rate limit × 1000, for Stats
	pressureM   atomic.Int64 // last CPU stall share × 1e6; -1e6 when not read
	fixedLimits bool
	dryMu       sync.Mutex // serializes writes to Options.DryRun
	// stop is done once Stop is called: sessions send nothing more and
	// close normally.
	stop     context.Context
	stopCall context.CancelFunc
}

// New returns a Replayer of sessions against target, a ws:// or wss:// URL.
// When target has no path (or "/"), each session's recorded route is used.
func New(target string, opts *Options) (*Replayer, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse target %q: %w", target, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("target %q: scheme must be ws or wss", target)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("target %q: no host", target)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Replayer{target: u, opts: o, log: o.Logger}
	r.stop, r.stopCall = context.WithCancel(context.Background())
	r.profiles = protocol.NewSet(&protocol.Options{KeyFields: o.KindFields})
	if o.Protocol != "" {
		if r.fixed, err = r.profiles.Lookup(o.Protocol); err != nil {
			return nil, fmt.Errorf("protocol: %w", err)
		}
	}
	if o.Correlate != "" {
		if r.correlate, err = parsePath(o.Correlate); err != nil {
			return nil, fmt.Errorf("correlate: %w", err)
		}
	}
	limit := rate.Limit(o.Rate)
	if o.Rate < 0 {
		limit = rate.Inf
	}
	r.fixedLimits = o.Rate < 0 || o.NoBackoff
	start := o.Rate
	if !r.fixedLimits {
		start = o.StartRate
		limit = rate.Limit(start)
	}
	r.limiter = rate.NewLimiter(limit, o.Burst)
	r.limitMilli.Store(int64(start * 1000))
	r.pressureM.Store(-1e6)
	r.m = newReplayMetrics(o.Metrics, r)
	return r, nil
}

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
	// Responses counts latencies measured; Timeouts the sent messages that
	// had no response within ResponseTimeout.
	Responses uint64 `json:"responses"`
	Timeouts  uint64 `json:"timeouts"`
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

// Stats returns the replay's counters so far.
func (r *Replayer) Stats() Stats {
	s := r.stats.snapshot()
	s.Active = r.active.Load()
	s.LatencyP50, s.LatencyP99 = r.hist.quantiles(50, 99)
	s.RateLimit = float64(r.limitMilli.Load()) / 1000
	s.CPUPressure = float64(r.pressureM.Load()) / 1e6
	return s
}

// RateLimit returns the message rate the replay is allowed now: Rate,
// or less while adaptive back-off holds it down.
func (r *Replayer) RateLimit() float64 { return float64(r.limitMilli.Load()) / 1000 }

// Run replays sessions from src until src returns io.EOF and every started
// session has ended (it then returns nil), Stop is called and the sessions
// in flight have closed (nil), src fails (its error), or ctx ends (ctx's
// error, after the sessions in flight have stopped). Failing
// sessions are counted and replaced by the next from src.
func (r *Replayer) Run(ctx context.Context, src Source) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel has stopped the controller
	defer cancel()
	if !r.fixedLimits && r.opts.DryRun == nil {
		wg.Go(func() { r.control(ctx) })
	}
	slots := make(chan struct{}, r.opts.Concurrency)
	// next ends when ctx does or Stop is called: waits for a slot, the dial
	// back-off and the source end there.
	next, endNext := context.WithCancel(ctx)
	defer endNext()
	defer context.AfterFunc(r.stop, endNext)()
	var runErr error
	for {
		took := false
		select {
		case slots <- struct{}{}:
			took = true
		case <-next.Done():
		}
		if next.Err() != nil || r.stop.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if took {
				<-slots
			}
			break // stopped: no new session
		}
		if err := r.dialBackoff(next); err != nil {
			if ctx.Err() != nil {
				return err
			}
			<-slots
			break
		}
		evs, err := src.Next(next)
		if err != nil || r.stop.Err() != nil {
			// next learns of Stop a moment late (AfterFunc): r.stop is
			// read directly too, so nothing starts after Stop returns.
			<-slots
			if err != nil && !errors.Is(err, io.EOF) && r.stop.Err() == nil {
				runErr = fmt.Errorf("session source: %w", err)
				if ctx.Err() != nil {
					runErr = ctx.Err()
				}
			}
			break
		}
		r.stats.started.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			res := r.replay(ctx, r.stop, evs)
			if r.opts.OnSessionEnd != nil {
				r.opts.OnSessionEnd(res)
			}
		})
	}
	// Wait for the sessions in flight before reporting the source's end.
	for range r.opts.Concurrency {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return runErr
}

// Stop ends the replay the way clients leave: Run starts no new session,
// and each session in flight sends nothing more, waits up to a second
// (Options.ResponseTimeout if shorter) for the responses it still expects
// and closes with a normal close handshake. Run then returns nil.
// Cancelling Run's context instead drops every connection at once, which a
// target that has only seen sessions end with a handshake takes as a new
// path: a JIT compiler then deoptimizes the code it compiled for reading
// requests, at the moment a warmed pod is released to real traffic. To
// bound the wait, cancel Run's context after a grace period. Stop is safe
// to call more than once and from any goroutine. It is final: a later Run
// starts nothing. It does not affect sessions started by Replay.
func (r *Replayer) Stop() { r.stopCall() }

// dialBackoff waits after consecutive failed handshakes, so that a target
// that is down is not dialled in a hot loop: 100ms doubling to 5s.
func (r *Replayer) dialBackoff(ctx context.Context) error {
	n := r.failStreak.Load()
	if n == 0 {
		return nil
	}
	d := 100 * time.Millisecond << min(n-1, 6)
	d = min(d, 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Replay plays one session against the target, under the rate limit but
// outside Run's concurrency limit, and returns how it ended. Its counters go
// into Stats like Run's sessions. It is safe to call from many goroutines:
// a load generator with its own arrival schedule calls it directly.
func (r *Replayer) Replay(ctx context.Context, evs []session.Event) SessionResult {
	r.stats.started.Add(1)
	return r.replay(ctx, context.Background(), evs)
}

// replay plays one session against the target and counts how it ended.
// When stop is done the session sends no more and closes normally.
func (r *Replayer) replay(ctx, stop context.Context, evs []session.Event) SessionResult {
	res := SessionResult{CloseCode: -1, Started: time.Now()}
	defer func() { res.Duration = time.Since(res.Started) }()
	if len(evs) == 0 || evs[0].Kind != session.KindOpen || evs[0].Open == nil {
		return r.fail(ctx, res, "no_open", nil)
	}
	res.ID = evs[0].Session
	info := evs[0].Open
	var dry *bytes.Buffer
	var planOut io.Writer // nil unless dry-running
	if r.opts.DryRun != nil {
		dry = new(bytes.Buffer)
		planOut = dry
	}
	p := r.plan(info, evs, time.Now(), planOut)
	if dry != nil {
		// One session's plan at a time: sessions run concurrently.
		r.dryMu.Lock()
		_, _ = r.opts.DryRun.Write(dry.Bytes())
		r.dryMu.Unlock()
	}
	for k, n := range p.skipped {
		r.m.skipped(r.stats.skip(k, n)).Add(n)
		res.Skipped += n
	}
	if r.opts.DryRun != nil {
		r.stats.completed.Add(1)
		return res
	}
	if !slices.ContainsFunc(p.steps, func(s step) bool { return !s.control }) {
		return r.fail(ctx, res, "nothing_to_send", nil)
	}
	if p.openingSkipped {
		// The session's opening did not survive the filter: the rest is
		// meaningless.
		return r.fail(ctx, res, "connect_skipped", nil)
	}
	r.active.Add(1)
	defer r.active.Add(-1)
	sctx, cancel := context.WithTimeout(ctx, r.opts.SessionTimeout)
	defer cancel()
	r.play(sctx, stop, info, &p, droppedByClient(evs), &res)
	if res.Failure != "" {
		return r.fail(ctx, res, res.Failure, res.Err)
	}
	r.stats.completed.Add(1)
	r.m.completed.Inc()
	return res
}

func firstClient(evs []session.Event) int {
	for i := range evs {
		if evs[i].Kind == session.KindFrame && evs[i].Direction == session.ClientToServer {
			return i
		}
	}
	return -1
}

// fail records a failed session in res and counts it, unless the run (ctx)
// is ending, which is not the session's fault: that is reported as
// "timeout" and not counted.
func (r *Replayer) fail(ctx context.Context, res SessionResult, reason string, err error) SessionResult {
	res.Failure, res.Err = reason, err
	if ctx.Err() != nil {
		res.Failure = "timeout"
		return res
	}
	if reason == "stopped" {
		r.stats.stopped.Add(1) // Stop's doing, not the session's
		r.m.stopped.Inc()
		return res
	}
	first := r.stats.failed(reason)
	r.m.failed(reason).Inc()
	r.hist.errors.Add(1)
	if reason == "connect" || reason == "handshake" {
		r.failStreak.Add(1)
	}
	attrs := []any{"session", res.ID, "reason", reason, "err", err}
	if res.CloseCode >= 0 {
		attrs = append(attrs, "close_code", res.CloseCode)
	}
	if res.Status != 0 {
		attrs = append(attrs, "status", res.Status)
	}
	if first {
		// The first of each class says what is wrong; the rest are counted.
		r.log.Info("replay: a session failed (the first for this reason; later ones are counted)", attrs...)
	} else {
		r.log.Debug("replay session failed", attrs...)
	}
	return res
}

// droppedByClient reports whether the recorded session ended with the
// client hanging up without a close frame: no close code, closed by the
// client. Its replay then ends the same way, so that a warm-up exercises a
// target's handling of dropped connections as real traffic does.
func droppedByClient(evs []session.Event) bool {
	last := &evs[len(evs)-1]
	return last.Kind == session.KindClose && last.Code == 0 && last.ClosedBy == session.SideClient
}

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
	if info.Subprotocol != "" {
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

// maxPending bounds the requests one session waits on; past it the oldest
// is counted as a timeout.
const maxPending = 4096

// waiter matches one session's responses to its requests.
type waiter struct {
	r       *Replayer
	mu      sync.Mutex
	pending map[string]pendingReq // correlation value → request
	next    []pendingReq          // uncorrelated: requests awaiting the next server message
}

type pendingReq struct {
	at   time.Time
	kind string
}

// sent notes a request sent. A request is tied to its response by id, the
// protocol's id of the operation (see protocol.Judgement.ID), else by the
// Correlate field, else to the next server message.
func (w *waiter) sent(msg []byte, kind, id string) {
	p := pendingReq{at: time.Now(), kind: kind}
	w.mu.Lock()
	defer w.mu.Unlock()
	key := id
	if key == "" && w.r.correlate != nil {
		raw, ok, err := lookup(msg, w.r.correlate)
		if err != nil || !ok {
			return
		}
		key = string(raw)
	}
	if key == "" {
		if len(w.next) < maxPending {
			w.next = append(w.next, p)
		}
		return
	}
	if len(w.pending) >= maxPending {
		w.timeoutOldestLocked()
	}
	w.pending[key] = p
}

func (w *waiter) timeoutOldestLocked() {
	var oldest string
	var at time.Time
	for k, p := range w.pending {
		if at.IsZero() || p.at.Before(at) {
			oldest, at = k, p.at
		}
	}
	delete(w.pending, oldest)
	w.r.timeout()
}

// received returns the latency and kind of the request a server message
// answers, if any. id is the protocol's id of the operation the message
// belongs to (protocol.ServerMessage.ID), nil if none.
func (w *waiter) received(msg, id []byte, now time.Time) (time.Duration, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(id) == 0 && w.r.correlate != nil {
		if raw, ok, err := lookup(msg, w.r.correlate); err == nil && ok {
			id = raw
		}
	}
	if len(id) > 0 {
		if p, ok := w.pending[string(id)]; ok {
			delete(w.pending, string(id))
			return now.Sub(p.at), p.kind, true
		}
	}
	if len(w.next) == 0 {
		return 0, "", false
	}
	p := w.next[0]
	w.next = w.next[:0] // one server message answers everything before it
	return now.Sub(p.at), p.kind, true
}

// expire counts requests sent before now minus ResponseTimeout as timeouts.
func (w *waiter) expire(now time.Time) {
	cut := now.Add(-w.r.opts.ResponseTimeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, p := range w.pending {
		if p.at.Before(cut) {
			delete(w.pending, k)
			w.r.timeout()
		}
	}
	if len(w.next) > 0 && w.next[0].at.Before(cut) {
		w.next = w.next[:0]
		w.r.timeout()
	}
}

func (w *waiter) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.next)
}

func (r *Replayer) timeout() {
	r.stats.timeouts.Add(1)
	r.m.timeouts.Inc()
	r.hist.errors.Add(1)
}

// counters are the replay's totals.
type counters struct {
	started, completed, stopped, sent, rehearsed, server, responses, timeouts atomic.Uint64
	control, answered, orderExpired                                           atomic.Uint64

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
		MessagesControl:   c.control.Load(),
		Answered:          c.answered.Load(),
		OrderWaitsExpired: c.orderExpired.Load(),
		SessionsFailed:    map[string]uint64{},
		MessagesSkipped:   map[string]uint64{},
		SkippedByKind:     map[string]map[string]uint64{},
	}
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

// latencyWindow keeps the run's latency histogram and the last three
// seconds', which adaptive back-off reads.
type latencyWindow struct {
	sent, errors atomic.Uint64

	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	recent [3]*hdrhistogram.Histogram // recent[0] is the current second
	span   *hdrhistogram.Histogram    // their merge, reused
}

const (
	histMin = int64(time.Microsecond)
	histMax = int64(10 * time.Minute)
)

func (h *latencyWindow) record(d time.Duration) {
	v := min(max(int64(d), histMin), histMax)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	_ = h.all.RecordValue(v) // v is within the range
	_ = h.recent[0].RecordValue(v)
}

func (h *latencyWindow) initLocked() {
	if h.all == nil {
		h.all = hdrhistogram.New(histMin, histMax, 2)
		for i := range h.recent {
			h.recent[i] = hdrhistogram.New(histMin, histMax, 2)
		}
		h.span = hdrhistogram.New(histMin, histMax, 2)
	}
}

func (h *latencyWindow) quantiles(a, b float64) (time.Duration, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.all == nil {
		return 0, 0
	}
	return time.Duration(h.all.ValueAtQuantile(a)), time.Duration(h.all.ValueAtQuantile(b))
}

// takeRecent returns the p90 latency and the count of responses over the
// last three calls' seconds, and starts a new second.
func (h *latencyWindow) takeRecent() (time.Duration, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	span := h.span
	span.Reset()
	for _, r := range h.recent {
		span.Merge(r)
	}
	oldest := h.recent[len(h.recent)-1]
	copy(h.recent[1:], h.recent[:len(h.recent)-1])
	oldest.Reset()
	h.recent[0] = oldest
	return time.Duration(span.ValueAtQuantile(90)), span.TotalCount()
}

// replayMetrics are the replay's metrics in its set.
type replayMetrics struct {
	set                      *metrics.Set
	sent, received, timeouts *metrics.Counter
	rehearsed                *metrics.Counter
	control, answered        *metrics.Counter
	orderExpired             *metrics.Counter
	completed, stopped       *metrics.Counter
	latency                  *metrics.Histogram
}

func newReplayMetrics(s *metrics.Set, r *Replayer) replayMetrics {
	s.NewGauge("preheat_replay_sessions_active", func() float64 { return float64(r.active.Load()) })
	s.NewGauge("preheat_replay_rate_limit", func() float64 { return float64(r.limitMilli.Load()) / 1000 })
	if r.opts.MaxCPUPressure > 0 {
		s.NewGauge("preheat_replay_cpu_pressure", func() float64 { return float64(r.pressureM.Load()) / 1e6 })
	}
	return replayMetrics{
		set:          s,
		sent:         s.NewCounter("preheat_replay_messages_sent_total"),
		rehearsed:    s.NewCounter("preheat_replay_messages_rehearsed_total"),
		control:      s.NewCounter("preheat_replay_control_messages_sent_total"),
		answered:     s.NewCounter("preheat_replay_answers_sent_total"),
		orderExpired: s.NewCounter("preheat_replay_order_waits_expired_total"),
		received:     s.NewCounter("preheat_replay_server_messages_total"),
		timeouts:     s.NewCounter("preheat_replay_response_timeouts_total"),
		completed:    s.NewCounter(`preheat_replay_sessions_total{result="completed"}`),
		stopped:      s.NewCounter(`preheat_replay_sessions_total{result="stopped"}`),
		latency:      s.NewHistogram("preheat_replay_response_seconds"),
	}
}

// skipped returns the counter of messages skipped for k's reason and kind.
func (m *replayMetrics) skipped(k skipKey) *metrics.Counter {
	return m.set.GetOrCreateCounter(`preheat_replay_messages_skipped_total{reason="` + k.reason + `",kind="` + labelValue(k.kind) + `"}`)
}

// labelValue escapes s for a Prometheus label value: a kind comes from a
// recorded session, and may hold anything.
func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func (m *replayMetrics) failed(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(`preheat_replay_sessions_total{result="failed",reason="` + reason + `"}`)
}
