package replayer

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

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
	// before it counts as a timeout, how long a session waits for the last
	// responses before closing, and how long a write may hang (the target
	// stopped reading) before the session fails: checked every
	// ResponseTimeout, so within twice it. Default 10s.
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
