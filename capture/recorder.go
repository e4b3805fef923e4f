package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/capture/wsframe"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

const (
	sideClient = session.SideClient
	sideServer = session.SideServer
	sideTap    = session.SideTap
)

// Policy says which sessions are recorded and how they are redacted. It can
// be replaced while the recorder runs (Recorder.SetPolicy), for instance when
// a config file is reloaded.
type Policy struct {
	// SampleRate is the fraction of sessions recorded, from 0 to 1. The
	// choice is a function of the session id, so it is the same wherever
	// it is made. The zero Policy records nothing; DefaultPolicy records
	// every session.
	SampleRate float64
	// Include lists the routes to record; empty means every route. A
	// pattern ending in "*" matches paths with that prefix; any other
	// pattern matches one path exactly.
	Include []string
	// Exclude lists routes never recorded, in the same pattern syntax. It
	// wins over Include.
	Exclude []string
	// Redactor removes credentials and secret fields before anything is
	// buffered: from the handshake's headers, route and subprotocol, from
	// messages and from close reasons. Nil means redact.New(nil): the
	// built-in credential headers, query parameters and JSON keys, every
	// name with a secret word in it (token, password, jwt and the like),
	// token shapes (JWTs, bearer tokens) anywhere, and subprotocol entries
	// that look like credentials.
	Redactor *redact.Redactor
}

// DefaultPolicy records every session with the default redaction rules.
func DefaultPolicy() Policy { return Policy{SampleRate: 1} }

// Validate reports the first problem with p.
func (p Policy) Validate() error {
	if math.IsNaN(p.SampleRate) || p.SampleRate < 0 || p.SampleRate > 1 {
		return fmt.Errorf("sample rate %v: want a fraction from 0 to 1", p.SampleRate)
	}
	for _, pat := range append(append([]string(nil), p.Include...), p.Exclude...) {
		if !strings.HasPrefix(pat, "/") {
			return fmt.Errorf("route pattern %q: want a path starting with /", pat)
		}
	}
	return nil
}

// matchRoute reports whether path matches pattern (see Policy.Include).
func matchRoute(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == path
}

// RecorderOptions configure a Recorder. The zero value is usable.
type RecorderOptions struct {
	// TapID names this tap in every recorded session. Default the host name.
	TapID string
	// MaxSessionDuration stops recording a session this long after its
	// connect; the connection is still proxied. Default 10m.
	MaxSessionDuration time.Duration
	// MaxSessionBytes stops recording a session once it has recorded this
	// many payload bytes. Default 8 MiB.
	MaxSessionBytes int
	// MaxSessionFrames stops recording a session once it has recorded this
	// many messages. Default 50,000.
	MaxSessionFrames int
	// MaxMessageBytes truncates longer messages to their first
	// MaxMessageBytes bytes, flagged as truncated. Default 256 KiB.
	MaxMessageBytes int
	// BatchBytes flushes a session's pending events once their encoding
	// reaches this size. Default 64 KiB.
	BatchBytes int
	// FlushInterval flushes a session's pending events once the oldest is
	// this old. Default 1s.
	FlushInterval time.Duration
	// BudgetBytes bounds the memory held for recorded data not yet handed
	// to the stream producer, and for the parsers' buffers of messages
	// still arriving. New sessions are admitted while less than three
	// quarters of it is in use, so that sessions already recording can go
	// on into the rest; a session that would exceed it is cut (it ends
	// with a close event from the tap). Default 64 MiB.
	BudgetBytes int64
	// Exporters is the number of goroutines that compress batches and put
	// them into the stream. A session always uses the same one, so its
	// batches keep their order. Default half of GOMAXPROCS, from 1 to 4:
	// an exporter working through a backlog holds its processor until the
	// queue is empty or the runtime preempts it (after 10 ms), and a proxy
	// loop woken by the network waits for a free one, so with two or more
	// processors compression must never hold them all. With two, two
	// exporters made the tap's p99 round trip at 2,000 msg/s about 1.4x
	// what one does (docs/benchmarks.md, session 7). One exporter
	// compresses about 380 MB/s.
	Exporters int
	// QueueLength bounds each exporter's queue of batches. Default 1024.
	QueueLength int
	// Logger receives the recorder's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the recorder's metrics. Default a new set; see
	// Recorder.Metrics.
	Metrics *metrics.Set
}

func (o *RecorderOptions) withDefaults() RecorderOptions {
	c := RecorderOptions{}
	if o != nil {
		c = *o
	}
	if c.TapID == "" {
		c.TapID, _ = os.Hostname()
	}
	if c.MaxSessionDuration <= 0 {
		c.MaxSessionDuration = 10 * time.Minute
	}
	if c.MaxSessionBytes <= 0 {
		c.MaxSessionBytes = 8 << 20
	}
	if c.MaxSessionFrames <= 0 {
		c.MaxSessionFrames = 50000
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 256 << 10
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 64 << 10
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.BudgetBytes <= 0 {
		c.BudgetBytes = 64 << 20
	}
	if c.Exporters <= 0 {
		c.Exporters = defaultExporters(runtime.GOMAXPROCS(0))
	}
	if c.QueueLength <= 0 {
		c.QueueLength = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// defaultExporters is RecorderOptions.Exporters' default for procs
// processors: half of them, from 1 to 4.
func defaultExporters(procs int) int { return min(max(procs/2, 1), 4) }

// Recorder turns proxied websocket connections into recorded sessions and
// exports them to a stream. The Tap and Middleware feed it; it never blocks
// them: what it cannot keep within its budget it drops, whole sessions at a
// time, and counts.
type Recorder struct {
	prod   stream.Producer
	opts   RecorderOptions
	log    *slog.Logger
	policy atomic.Pointer[Policy]
	redact atomic.Pointer[redact.Redactor]

	enabled atomic.Bool
	mu      sync.Mutex
	off     map[string]bool // route patterns switched off at run time
	active  map[*Recording]struct{}
	closing bool

	used       atomic.Int64 // bytes of pending and queued batches and parser buffers
	lastLog    atomic.Int64 // Unix nanoseconds of the last rate-limited log line
	suppressed atomic.Int64 // lines left out since
	qmu        sync.RWMutex // held for reading while sending to queues
	qclosed    bool         // queues are closed; under qmu
	queues     []chan *exportJob
	ctx        context.Context // ends exporters' puts on Close
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	stopTick   chan struct{}
	closed     chan struct{}
	once       sync.Once

	m recorderMetrics
}

type recorderMetrics struct {
	set       *metrics.Set
	recorded  *metrics.Counter
	frames    [2]*metrics.Counter
	bytes     [2]*metrics.Counter
	truncated *metrics.Counter
	exported  *metrics.Counter
	failed    *metrics.Counter
	exportLat *metrics.Histogram
	batchSize *metrics.Histogram
}

func (m *recorderMetrics) skipped(reason string) {
	m.set.GetOrCreateCounter(`preheat_tap_sessions_skipped_total{reason="` + reason + `"}`).Inc()
}

func (m *recorderMetrics) dropped(reason string) {
	m.set.GetOrCreateCounter(`preheat_tap_sessions_dropped_total{reason="` + reason + `"}`).Inc()
}

func (m *recorderMetrics) cut(reason string) {
	m.set.GetOrCreateCounter(`preheat_tap_sessions_cut_total{reason="` + reason + `"}`).Inc()
}

func (m *recorderMetrics) redacted(what string, n int) {
	if n > 0 {
		m.set.GetOrCreateCounter(`preheat_tap_redactions_total{what="` + what + `"}`).Add(n)
	}
}

// exportJob is one batch on its way to the stream.
type exportJob struct {
	key     string
	w       *session.BatchWriter
	size    int64 // bytes accounted in the budget
	flushed time.Time
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

var writerPool = sync.Pool{New: func() any { return new(session.BatchWriter) }}

// NewRecorder returns a recorder that exports to prod with policy. The
// caller keeps ownership of prod and closes it after Recorder.Close.
func NewRecorder(prod stream.Producer, policy Policy, opts *RecorderOptions) (*Recorder, error) {
	if prod == nil {
		return nil, errors.New("new recorder: nil producer")
	}
	o := opts.withDefaults()
	r := &Recorder{
		prod:     prod,
		opts:     o,
		log:      o.Logger,
		off:      make(map[string]bool),
		active:   make(map[*Recording]struct{}),
		stopTick: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	if err := r.SetPolicy(policy); err != nil {
		return nil, err
	}
	r.enabled.Store(true)
	set := o.Metrics
	r.m = recorderMetrics{
		set:       set,
		recorded:  set.NewCounter(`preheat_tap_sessions_recorded_total`),
		truncated: set.NewCounter(`preheat_tap_messages_truncated_total`),
		exported:  set.NewCounter(`preheat_tap_batches_exported_total`),
		failed:    set.NewCounter(`preheat_tap_batches_failed_total`),
		exportLat: set.NewHistogram(`preheat_tap_export_seconds`),
		batchSize: set.NewHistogram(`preheat_tap_batch_bytes`),
	}
	for i, d := range []string{"client", "server"} {
		r.m.frames[i] = set.NewCounter(`preheat_tap_frames_recorded_total{direction="` + d + `"}`)
		r.m.bytes[i] = set.NewCounter(`preheat_tap_payload_bytes_recorded_total{direction="` + d + `"}`)
	}
	set.NewGauge(`preheat_tap_buffer_bytes`, func() float64 { return float64(r.used.Load()) })
	set.NewGauge(`preheat_tap_buffer_limit_bytes`, func() float64 { return float64(o.BudgetBytes) })
	set.NewGauge(`preheat_tap_recordings_active`, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.active))
	})
	set.NewGauge(`preheat_tap_capture_enabled`, func() float64 {
		if r.enabled.Load() {
			return 1
		}
		return 0
	})

	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.queues = make([]chan *exportJob, o.Exporters)
	for i := range r.queues {
		q := make(chan *exportJob, o.QueueLength)
		r.queues[i] = q
		r.wg.Go(func() { r.export(q) })
	}
	r.wg.Go(r.tick)
	return r, nil
}

// Metrics returns the set the recorder's metrics are registered in.
func (r *Recorder) Metrics() *metrics.Set { return r.opts.Metrics }

// SetPolicy replaces the policy for sessions that start from now on.
func (r *Recorder) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("capture policy: %w", err)
	}
	if p.Redactor == nil {
		rd, err := redact.New(nil)
		if err != nil {
			return fmt.Errorf("capture policy: %w", err)
		}
		p.Redactor = rd
	}
	p.Include = append([]string(nil), p.Include...)
	p.Exclude = append([]string(nil), p.Exclude...)
	r.policy.Store(&p)
	return nil
}

// SetEnabled switches capture on or off for sessions that start from now
// on. Sessions already recording go on.
func (r *Recorder) SetEnabled(on bool) { r.enabled.Store(on) }

// SetRouteEnabled switches capture on or off for the routes matching
// pattern (see Policy.Include) for sessions that start from now on.
func (r *Recorder) SetRouteEnabled(pattern string, on bool) error {
	if !strings.HasPrefix(pattern, "/") {
		return fmt.Errorf("route pattern %q: want a path starting with /", pattern)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		delete(r.off, pattern)
	} else {
		r.off[pattern] = true
	}
	return nil
}

// Status is a snapshot of the recorder's state, for the admin endpoint.
type Status struct {
	Enabled     bool     `json:"enabled"`
	RoutesOff   []string `json:"routes_off"`
	SampleRate  float64  `json:"sample_rate"`
	Include     []string `json:"include,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
	Recording   int      `json:"recording"`
	BufferBytes int64    `json:"buffer_bytes"`
	BudgetBytes int64    `json:"budget_bytes"`
}

// Status returns a snapshot of the recorder's state.
func (r *Recorder) Status() Status {
	p := r.policy.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	off := make([]string, 0, len(r.off))
	for pat := range r.off {
		off = append(off, pat)
	}
	return Status{
		Enabled: r.enabled.Load(), RoutesOff: off, SampleRate: p.SampleRate,
		Include: p.Include, Exclude: p.Exclude, Recording: len(r.active),
		BufferBytes: r.used.Load(), BudgetBytes: r.opts.BudgetBytes,
	}
}

// Begin decides whether to record a websocket session that has just been
// upgraded: req is the client's handshake request and resp the upstream's
// 101 response header. It returns nil when the session is not recorded.
func (r *Recorder) Begin(req *http.Request, resp http.Header) *Recording {
	id := session.NewID()
	p := r.policy.Load()
	path := req.URL.Path
	if reason := r.admit(p, id, path); reason != "" {
		r.m.skipped(reason)
		return nil
	}
	if r.used.Load() >= r.opts.BudgetBytes/4*3 {
		r.m.dropped("budget")
		return nil
	}
	ext := resp.Get("Sec-WebSocket-Extensions")
	var deflate *wsframe.DeflateParams
	if ext != "" {
		d, err := wsframe.ParseDeflate(ext)
		if err != nil {
			r.m.skipped("extensions")
			r.log.Debug("not recording a session with extensions the tap cannot parse", "extensions", ext, "err", err)
			return nil
		}
		deflate = d
	}

	rd := p.Redactor
	header, hn := rd.Header(req.Header)
	route, qn := rd.Route(req.URL.RequestURI())
	r.m.redacted("header", hn)
	r.m.redacted("query", qn)
	rec := &Recording{
		r:       r,
		id:      id,
		key:     id.String(),
		start:   time.Now(),
		redact:  rd,
		queue:   r.queues[binary.BigEndian.Uint32(id[12:])%uint32(len(r.queues))],
		deflate: deflate,
	}
	open := session.Event{
		Session: id, Seq: 0, Kind: session.KindOpen,
		Open: &session.Info{
			Route:       route,
			Header:      header,
			Subprotocol: rd.Subprotocol(resp.Get("Sec-WebSocket-Protocol"), req.Header.Values("Sec-WebSocket-Protocol")),
			Extensions:  ext,
			TapID:       r.opts.TapID,
			Start:       rec.start,
		},
	}
	// The open event goes in before the recording is published, so that
	// nothing (a shutdown, say) can record anything before it.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.appendLocked(&open, 0)
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.used.Add(-rec.held)
		writerPool.Put(rec.w)
		rec.w, rec.held, rec.finished = nil, 0, true
		r.m.skipped("shutting_down")
		return nil
	}
	r.active[rec] = struct{}{}
	r.mu.Unlock()
	r.m.recorded.Inc()
	return rec
}

// maxInflate bounds how far one compressed message may inflate, and so how
// much of it the parser holds: 4 times MaxMessageBytes (1 MiB by default).
// A longer message stops the session's recording, not its proxying.
func (r *Recorder) maxInflate() int { return 4 * r.opts.MaxMessageBytes }

// admit returns why a session on path is not recorded, or "".
func (r *Recorder) admit(p *Policy, id session.ID, path string) string {
	if !r.enabled.Load() {
		return "off"
	}
	for _, pat := range p.Exclude {
		if matchRoute(pat, path) {
			return "excluded"
		}
	}
	if len(p.Include) > 0 {
		in := false
		for _, pat := range p.Include {
			if matchRoute(pat, path) {
				in = true
				break
			}
		}
		if !in {
			return "not_included"
		}
	}
	r.mu.Lock()
	for pat := range r.off {
		if matchRoute(pat, path) {
			r.mu.Unlock()
			return "route_off"
		}
	}
	r.mu.Unlock()
	// The id is random, so its first 8 bytes are a uniform 64-bit number.
	if p.SampleRate < 1 && float64(binary.BigEndian.Uint64(id[:8])) >= p.SampleRate*(1<<64) {
		return "sampled_out"
	}
	return ""
}

// Recording is one session being recorded. Client and Server are each
// called for one direction's bytes, in order and never concurrently (by the
// pump moving that direction's bytes, which may change goroutines between
// calls); End once both are done.
type Recording struct {
	r       *Recorder
	id      session.ID
	key     string
	start   time.Time
	redact  *redact.Redactor
	queue   chan *exportJob
	deflate *wsframe.DeflateParams // negotiated permessage-deflate, or nil

	// parsers[0] parses client bytes and is used only by Client;
	// parsers[1] server bytes, only by Server. Between messages an idle
	// parser goes back to parserPool, so that an idle session holds none;
	// the next bytes take one again. parsed[dir] is set when a direction
	// is no longer parsed.
	parsers    [2]*wsframe.Parser
	parsed     [2]bool
	stopped    atomic.Bool     // no more events are recorded
	inflight   [2]atomic.Int64 // Unix nanoseconds of each direction's chunk being forwarded and parsed; 0 for none
	at         [2]time.Time    // when the bytes being parsed were forwarded, per direction
	parserHeld [2]int64        // budget bytes charged for each parser's buffers

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
	waitDir   int            // the direction of the events held back
	closed    bool           // a close event was recorded
	ended     bool           // the connection is over
	finished  bool           // removed from the recorder
}

// ID returns the session's id.
func (s *Recording) ID() session.ID { return s.id }

// Client records bytes the client sent, forwarded at the time at. It may
// modify b.
func (s *Recording) Client(b []byte, at time.Time) { s.feed(0, b, at) }

// Server records bytes the server sent, forwarded at the time at. It may
// modify b.
func (s *Recording) Server(b []byte, at time.Time) { s.feed(1, b, at) }

// clientMark and serverMark note that a chunk read at the time at is being
// forwarded and will be fed next. Events of the other direction forwarded
// later wait for it, so that the session's order is the order bytes were
// forwarded in, not the order the two directions happen to be parsed in.
// They never block.
func (s *Recording) clientMark(at time.Time) { s.inflight[0].Store(at.UnixNano()) }
func (s *Recording) serverMark(at time.Time) { s.inflight[1].Store(at.UnixNano()) }

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
func (s *Recording) commitLocked(dir int, at time.Time, ev *session.Event, payload int) bool {
	if o := s.inflight[1-dir].Load(); o != 0 && o < at.UnixNano() && len(s.waiting) < maxWaiting {
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

func (s *Recording) feed(dir int, b []byte, at time.Time) {
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
	if len(s.waiting) > 0 && s.inflight[1-s.waitDir].Load() == 0 {
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
func (s *Recording) parser(dir int) *wsframe.Parser {
	if p := s.parsers[dir]; p != nil {
		return p
	}
	p := parserPool.Get().(*wsframe.Parser)
	p.Reset(&wsframe.Options{Client: dir == 0, Deflate: s.deflate,
		MaxMessageBytes: s.r.opts.MaxMessageBytes, MaxInflateBytes: s.r.maxInflate()})
	s.parsers[dir] = p
	return p
}

// releaseParser stops parsing a direction: it releases the direction's
// parser and gives back the budget it held. Only the feeder of that
// direction, or End, calls it.
func (s *Recording) releaseParser(dir int) {
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

func (s *Recording) message(dir int, m *wsframe.Message) {
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
			if dir == 1 {
				side = sideServer
			}
			s.closing = &session.Event{Offset: offset, Code: m.CloseCode, Reason: reason, ClosedBy: side}
			s.closingAt = at
		}
		s.closedDir[dir] = true
		if s.closedDir[0] && s.closedDir[1] {
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
		Direction: session.Direction(dir + 1),
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
	s.r.m.cut(reason)
	s.closeLocked(session.Event{Offset: time.Since(s.start), ClosedBy: sideTap, Reason: "preheat: " + reason})
}

// closeLocked records the session's close event and stops recording.
func (s *Recording) closeLocked(ev session.Event) {
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
		job := &exportJob{key: s.key, w: s.w, size: s.held, flushed: time.Now()}
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

// tick flushes batches that have waited FlushInterval and cuts sessions
// past MaxSessionDuration, until Close.
func (r *Recorder) tick() {
	t := time.NewTicker(r.opts.FlushInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-r.stopTick:
			return
		case <-t.C:
		}
		r.flushDue(false)
	}
}

// flushDue flushes every session whose batch is due, or every session with
// anything pending when all is set.
func (r *Recorder) flushDue(all bool) {
	r.mu.Lock()
	recs := make([]*Recording, 0, len(r.active))
	for s := range r.active {
		recs = append(recs, s)
	}
	r.mu.Unlock()
	now := time.Now()
	for _, s := range recs {
		s.mu.Lock()
		if !s.finished {
			if !s.stopped.Load() && now.Sub(s.start) > r.opts.MaxSessionDuration {
				s.cutLocked("duration")
			}
			pending := s.w != nil && s.w.Events() > 0
			if all || s.ended || s.stopped.Load() || (pending && now.Sub(s.oldest) >= r.opts.FlushInterval) {
				s.flushLocked()
			}
		}
		s.mu.Unlock()
	}
}

// logf logs at most one line every logEvery, so that an outage of the
// stream (which the metrics count exactly) does not flood the logs; the next
// line says how many were left out.
func (r *Recorder) logf(level slog.Level, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(logEvery) || !r.lastLog.CompareAndSwap(last, now) {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		args = append(args, "similar_suppressed", n)
	}
	r.log.Log(context.Background(), level, msg, args...)
}

const logEvery = 10 * time.Second

// flushAll cuts every session still recording, marks it ended and flushes
// it. It returns how many sessions still have batches that found no room in
// their queue.
func (r *Recorder) flushAll() (pending int) {
	r.mu.Lock()
	recs := make([]*Recording, 0, len(r.active))
	for s := range r.active {
		recs = append(recs, s)
	}
	r.mu.Unlock()
	for _, s := range recs {
		s.mu.Lock()
		if !s.finished {
			s.cutLocked("shutdown")
			s.ended = true
			s.flushLocked()
			if !s.finished {
				pending++
			}
		}
		s.mu.Unlock()
	}
	return pending
}

// export compresses the batches of one queue and puts them into the stream.
func (r *Recorder) export(q chan *exportJob) {
	buf := make([]byte, 0, 64<<10)
	for job := range q {
		var err error
		buf, err = job.w.AppendTo(buf[:0])
		if err == nil {
			r.m.batchSize.Update(float64(len(buf)))
			err = r.prod.Put(r.ctx, job.key, buf)
		}
		if err != nil {
			r.m.failed.Inc()
			r.logf(slog.LevelWarn, "export batch", "session", job.key, "events", job.w.Events(), "err", err)
		} else {
			r.m.exported.Inc()
			r.m.exportLat.UpdateDuration(job.flushed)
		}
		r.used.Add(-job.size)
		writerPool.Put(job.w)
	}
}

// Close stops admitting sessions, cuts those still recording (their close
// event says "shutdown"), and exports everything pending until ctx is done;
// what is left then is counted as failed. It does not close the producer.
// Close is safe to call more than once.
func (r *Recorder) Close(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		close(r.stopTick)

		// Cut what still records and flush everything, waiting for queue
		// space as long as ctx allows.
		for pending := r.flushAll(); pending > 0; pending = r.flushAll() {
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-ctx.Done():
				r.log.Warn("shutdown deadline reached with sessions not exported", "sessions", pending)
			}
			break
		}
		r.qmu.Lock()
		r.qclosed = true
		for _, q := range r.queues {
			close(q)
		}
		r.qmu.Unlock()
		// What still found no room is lost now: count it and give its
		// budget back.
		r.flushAll()
		stop := context.AfterFunc(ctx, r.cancel)
		r.wg.Wait()
		stop()
		r.cancel()
		close(r.closed)
		err = ctx.Err()
	})
	return err
}
