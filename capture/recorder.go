package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
	// BudgetBytes bounds the memory held for captured data that has not
	// reached the stream: the parsers' buffers of messages still arriving,
	// the Tap's queued chunks, batches pending and queued for export and,
	// with a producer that reports each record's fate (the Kinesis
	// producer), the compressed batches the producer holds until it
	// reports them delivered or given up. New sessions are admitted while
	// less than three quarters of it is in use, so that sessions already
	// recording can go on into the rest; a session that would exceed it is
	// cut (it ends with a close event from the tap). Past three quarters,
	// while the stream is stalled (nothing delivered for a second), the
	// oldest batches the producer holds are given up, whole sessions at a
	// time, down to five eighths, to make room for new sessions (counted
	// in preheat_tap_sessions_lost_total with reason "budget"). Default
	// 64 MiB.
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
	prod    stream.Producer
	tracked tracker // prod, when it reports fates; else nil
	opts    RecorderOptions
	log     *slog.Logger
	policy  atomic.Pointer[Policy]
	redact  atomic.Pointer[redact.Redactor]

	enabled atomic.Bool
	mu      sync.Mutex
	off     map[string]bool // route patterns switched off at run time
	active  map[*Recording]struct{}
	closing bool

	used       atomic.Int64 // budget bytes in use; see RecorderOptions.BudgetBytes
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
	putLocks   [64]sync.Mutex // see putLock
	shedc      chan struct{}  // cap 1: wakes shed
	stopShed   chan struct{}
	// lastDelivered is when the producer last reported a batch
	// delivered, in Unix nanoseconds.
	lastDelivered atomic.Int64

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
	discarded *metrics.Counter
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

func (m *recorderMetrics) lost(reason string) {
	m.set.GetOrCreateCounter(`preheat_tap_sessions_lost_total{reason="` + reason + `"}`).Inc()
}

func (m *recorderMetrics) redacted(what string, n int) {
	if n > 0 {
		m.set.GetOrCreateCounter(`preheat_tap_redactions_total{what="` + what + `"}`).Add(n)
	}
}

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
		shedc:    make(chan struct{}, 1),
		stopShed: make(chan struct{}),
	}
	r.tracked, _ = prod.(tracker)
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
		discarded: set.NewCounter(`preheat_tap_batches_discarded_total`),
		exportLat: set.NewHistogram(`preheat_tap_export_seconds`),
		batchSize: set.NewHistogram(`preheat_tap_batch_bytes`),
	}
	for d, name := range [...]string{fromClient: "client", fromServer: "server"} {
		r.m.frames[d] = set.NewCounter(`preheat_tap_frames_recorded_total{direction="` + name + `"}`)
		r.m.bytes[d] = set.NewCounter(`preheat_tap_payload_bytes_recorded_total{direction="` + name + `"}`)
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
	if r.tracked != nil {
		r.wg.Go(r.shed)
	}
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
	if r.used.Load() >= r.shedAbove() {
		r.m.dropped("budget")
		if r.tracked != nil {
			r.wakeShedder()
		}
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
	if !rec.appendLocked(&open, 0) {
		// A handshake no reader would accept (more than
		// session.MaxHeaderFields header fields): a session without its
		// connect event is never replayed, so none of it is recorded.
		rec.discardLocked()
		r.m.skipped("handshake")
		return nil
	}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		rec.discardLocked()
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

// Close stops admitting sessions, cuts those still recording (their close
// event says "shutdown"), and exports everything pending until ctx is done;
// what is left then is counted as failed, and its sessions as lost
// ("shutdown"). It does not close the producer: a producer that reports
// fates reports the batches it holds when they are delivered or when it is
// closed, and they leave the budget then. Close is safe to call more than
// once.
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
		close(r.stopShed)
		r.wg.Wait()
		stop()
		r.cancel()
		close(r.closed)
		err = ctx.Err()
	})
	return err
}
