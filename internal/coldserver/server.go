package coldserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"
)

// Options configures a Server. The zero value, or a nil *Options, gives the
// defaults written on each field.
type Options struct {
	// Workers is the size of the worker pool shared by requests and the
	// jitter task. Default 8.
	Workers int
	// CompilerThreads is the number of background compiler goroutines.
	// Default 1.
	CompilerThreads int
	// CompileQueue bounds the compile queue, in tasks. A task that finds it
	// full is not queued; a later invocation of its path retries. Default 32.
	CompileQueue int
	// Scale multiplies the tier-up thresholds (10 and 50 invocations,
	// rounded, at least 1) and the compile costs (20 ms and 150 ms on
	// average per path). Default 1: with the default WarmWindow, 200, 300
	// and 400 queries/s of corpus traffic warm a server in about 65, 47
	// and 37 s. Tests use 0.2 with a 2 s WarmWindow, which warms in about
	// 8 s at 400 queries/s and 14 s at 200.
	Scale float64
	// Seed fixes the per-path service and compile costs. Default 0.
	Seed uint64
	// JitterInterval is the period of the jitter task. Default 10 ms.
	JitterInterval time.Duration
	// WarmWindow is the window over which State.WarmAt requires 95% of
	// invocations to have run C2 code. Default 10 s.
	WarmWindow time.Duration
	// ReadLimit is the largest client message accepted, in bytes; a larger
	// one closes the connection with status 1009. Default 1 MiB.
	ReadLimit int64
	// MaxInflight bounds the queries of one connection being served at
	// once; past it the server stops reading that connection. Default 64.
	MaxInflight int
	// QueueTimeout is how long a request waits for a worker before it is
	// answered with an "overloaded" error. Default 10 s.
	QueueTimeout time.Duration
	// WriteTimeout bounds each write to a client. Default 5 s.
	WriteTimeout time.Duration
	// UpdateInterval is how often a connection with subscriptions is
	// pushed an update. Default 5 s; negative disables updates.
	UpdateInterval time.Duration
	// Slow makes the code path of some op kinds slower: each query of
	// kind k runs Slow[k] times its service time, at every tier, as a
	// version with a performance regression on that kind would. Factors
	// of 1 or below and kinds the corpus does not know are ignored.
	// Default none.
	Slow map[string]float64
	// Warm starts the server warm: every path compiled to C2, as a pod of
	// the version in service that has taken traffic for a while. Default
	// false: every path starts interpreted.
	Warm bool
	// Metrics receives the server's metrics; it must not be shared with
	// another Server. Default: a new set.
	Metrics *metrics.Set
	// Logger logs connection errors. Default: discard.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	setDefault(&c.Workers, 8)
	setDefault(&c.CompilerThreads, 1)
	setDefault(&c.CompileQueue, 32)
	setDefault(&c.Scale, 1)
	setDefault(&c.JitterInterval, 10*time.Millisecond)
	setDefault(&c.WarmWindow, 10*time.Second)
	setDefault(&c.ReadLimit, 1<<20)
	setDefault(&c.MaxInflight, 64)
	setDefault(&c.QueueTimeout, 10*time.Second)
	setDefault(&c.WriteTimeout, 5*time.Second)
	if c.UpdateInterval == 0 {
		c.UpdateInterval = 5 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func setDefault[T int | int64 | float64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Reasons a client message is counted as bad.
const (
	reasonNoConnect   = "no_connect"
	reasonMalformed   = "malformed"
	reasonUnknownType = "unknown_type"
	reasonUnknownOp   = "unknown_op"
	reasonBadID       = "bad_id"
	reasonDupConnect  = "duplicate_connect"
	reasonBinary      = "binary"
	reasonOversize    = "oversize"
)

// Server is a simulated cold JVM sync server. Create it with New.
type Server struct {
	opts  Options
	jit   *jit
	slots chan struct{} // worker pool
	ops   map[string]int

	ctx    context.Context // ends at Close; stops the background goroutines
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[*websocket.Conn]struct{}
	handlers sync.WaitGroup

	closeOnce sync.Once

	set        *metrics.Set
	jitter     *histogram
	latency    *histogram
	mutations  *metrics.Counter
	dropped    *metrics.Counter
	requests   *metrics.Counter
	overloaded *metrics.Counter
	bad        map[string]*metrics.Counter
	sessions   atomic.Int64

	warm warmWindow
}

// New returns a server and starts its compiler and jitter goroutines; Close
// stops them.
func New(opts *Options) *Server {
	o := opts.withDefaults()
	s := &Server{
		opts:  o,
		slots: make(chan struct{}, o.Workers),
		ops:   make(map[string]int),
		conns: make(map[*websocket.Conn]struct{}),
		set:   o.Metrics,
		bad:   make(map[string]*metrics.Counter),
	}
	paths := newPaths(o.Seed, o.Scale)
	s.jit = &jit{
		paths:     paths[:len(paths)-1],
		framework: paths[len(paths)-1],
		c1:        scaledThreshold(c1Threshold, o.Scale),
		c2:        scaledThreshold(c2Threshold, o.Scale),
		queue:     make(chan compileTask, o.CompileQueue),
	}
	s.jit.onInstall = func() { s.warm.check(time.Now(), s.jit.pending.Load() == 0) }
	for i, p := range s.jit.paths {
		if i%len(variantNames) == 0 {
			s.ops[p.name[:len(p.name)-len("/plain")]] = i / len(variantNames)
		}
	}
	for op, f := range o.Slow {
		if k, ok := s.ops[op]; ok && f > 1 {
			for _, p := range s.jit.paths[k*len(variantNames) : (k+1)*len(variantNames)] {
				p.slow = f
			}
		}
	}
	if o.Warm {
		for _, p := range append(s.jit.paths, s.jit.framework) {
			p.tier.Store(int32(C2))
		}
	}
	s.warm.init(o.WarmWindow)
	s.registerMetrics()

	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range o.CompilerThreads {
		s.bg.Go(func() { s.jit.compiler(s.ctx) })
	}
	s.bg.Go(s.jitterLoop)
	return s
}

func (s *Server) registerMetrics() {
	s.jitter = newHistogram("jvm_scheduler_jitter_seconds",
		"Lateness of a periodic task that shares the request worker pool.", jitterBuckets)
	s.latency = newHistogram("sync_request_duration_seconds",
		"Query service latency including queueing for a worker.", latencyBuckets)
	s.mutations = s.set.NewCounter("coldserver_mutations_total")
	s.dropped = s.set.NewCounter("coldserver_sessions_dropped_total")
	s.requests = s.set.NewCounter("coldserver_requests_total")
	s.overloaded = s.set.NewCounter("coldserver_overloaded_total")
	for _, r := range []string{reasonNoConnect, reasonMalformed, reasonUnknownType, reasonUnknownOp,
		reasonBadID, reasonDupConnect, reasonBinary, reasonOversize} {
		s.bad[r] = s.set.NewCounter(`coldserver_bad_messages_total{reason="` + r + `"}`)
	}
	s.set.NewGauge("coldserver_sessions_active", func() float64 { return float64(s.sessions.Load()) })
	s.set.NewGauge("coldserver_compile_queue_length", func() float64 { return float64(len(s.jit.queue)) })
	s.jit.dropped = s.set.NewCounter("coldserver_compile_dropped_total")
	for t := Interpreted; t <= C2; t++ {
		s.set.NewGauge(`coldserver_paths{tier="`+t.String()+`"}`, func() float64 { return float64(s.State().Tiers[t]) })
	}
	s.set.RegisterMetricsWriter(func(w io.Writer) {
		ms := float64(s.jit.compileUS.Load()) / 1000
		fmt.Fprintf(w, "# HELP jvm_compilation_time_ms_total Time spent compiling, in milliseconds.\n"+
			"# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total %s\n",
			strconv.FormatFloat(ms, 'f', 3, 64))
		s.jitter.writeTo(w)
		s.latency.writeTo(w)
	})
}

// MetricsHandler serves the server's metrics in the Prometheus text format.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.set.WritePrometheus(w)
	})
}

// ServeHTTP serves metrics on GET /metrics and a sync websocket on every
// other path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		s.MetricsHandler().ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"sync.v3"},
		InsecureSkipVerify: true, // a simulator for tests and demos
		CompressionMode:    websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		s.opts.Logger.Debug("coldserver: accept", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(s.opts.ReadLimit)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	s.serveConn(r.Context(), c)
}

// Close closes every connection with status 1001, stops the compiler and
// jitter goroutines and waits for them and every handler. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*websocket.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.cancel()

		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { c.Close(websocket.StatusGoingAway, "server shutting down") })
		}
		wg.Wait()
		s.handlers.Wait()
		s.bg.Wait()
	})
	return nil
}

// Mutations returns how many mutating messages (mutate, write, delete) the
// server has applied.
func (s *Server) Mutations() uint64 { return s.mutations.Get() }

// Dropped returns how many sessions the client ended without a close
// handshake: the connection went away with no close frame.
func (s *Server) Dropped() uint64 { return s.dropped.Get() }

// PathState is the compilation state of one code path.
type PathState struct {
	// Name is the op kind and variant, like "tasks.list/filter+sub", or
	// "framework".
	Name        string
	Invocations uint64
	Tier        Tier
}

// State is a snapshot of the simulator's ground truth.
type State struct {
	// PathsSeen counts query paths invoked at least once.
	PathsSeen int
	// Tiers counts the seen query paths at each tier.
	Tiers [3]int
	// Paths lists every query path, seen or not, in a fixed order.
	Paths []PathState
	// Framework is the shared path every request runs.
	Framework PathState
	// CompileQueue is the number of compile tasks waiting.
	CompileQueue int
	// CompileMillis is the CPU time spent compiling so far.
	CompileMillis float64
	// Requests counts queries answered.
	Requests uint64
	// WarmAt is the first moment the compile queue was empty and at least
	// 95% of the invocations in the last WarmWindow ran C2 code; zero if
	// that has not happened yet.
	WarmAt time.Time
}

// State returns a snapshot of the server's compilation state.
func (s *Server) State() State {
	pstate := func(p *path) PathState {
		return PathState{Name: p.name, Invocations: p.calls.Load(), Tier: Tier(p.tier.Load())}
	}
	st := State{
		Paths:         make([]PathState, len(s.jit.paths)),
		Framework:     pstate(s.jit.framework),
		CompileQueue:  len(s.jit.queue),
		CompileMillis: float64(s.jit.compileUS.Load()) / 1000,
		Requests:      s.requests.Get(),
		WarmAt:        s.warm.at(),
	}
	for i, p := range s.jit.paths {
		ps := pstate(p)
		st.Paths[i] = ps
		if ps.Invocations > 0 {
			st.PathsSeen++
			st.Tiers[ps.Tier]++
		}
	}
	return st
}

// jitterLoop runs a no-op task every JitterInterval on a worker slot under
// the safepoint lock and records how late it started.
func (s *Server) jitterLoop() {
	t := time.NewTimer(s.opts.JitterInterval)
	defer t.Stop()
	for {
		due := time.Now().Add(s.opts.JitterInterval)
		t.Reset(s.opts.JitterInterval)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		s.jit.safepoint.RLock()
		late := time.Since(due)
		s.jit.safepoint.RUnlock()
		<-s.slots
		s.jitter.observe(max(late, 0).Seconds())
	}
}

// warmWindow counts invocations, and those that ran C2 code, in a ring of
// buckets spanning the warm window, and latches the first warm moment.
type warmWindow struct {
	mu     sync.Mutex
	start  time.Time
	bucket time.Duration
	ids    [10]int64
	total  [10]uint64
	top    [10]uint64
	warmAt time.Time
}

func (w *warmWindow) init(window time.Duration) {
	w.start = time.Now()
	w.bucket = max(window/time.Duration(len(w.ids)), time.Millisecond)
	for i := range w.ids {
		w.ids[i] = -1
	}
}

// record counts one invocation at now; queueEmpty says whether no compile
// task is pending.
func (w *warmWindow) record(now time.Time, top, queueEmpty bool) {
	id := int64(now.Sub(w.start) / w.bucket)
	i := id % int64(len(w.ids))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ids[i] != id {
		w.ids[i], w.total[i], w.top[i] = id, 0, 0
	}
	w.total[i]++
	if top {
		w.top[i]++
	}
	w.checkLocked(id, queueEmpty, now)
}

func (w *warmWindow) check(now time.Time, queueEmpty bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkLocked(int64(now.Sub(w.start)/w.bucket), queueEmpty, now)
}

func (w *warmWindow) checkLocked(id int64, queueEmpty bool, now time.Time) {
	if !w.warmAt.IsZero() || !queueEmpty {
		return
	}
	var total, top uint64
	for i, bid := range w.ids {
		if bid > id-int64(len(w.ids)) && bid <= id {
			total += w.total[i]
			top += w.top[i]
		}
	}
	if total > 0 && top*100 >= total*95 {
		w.warmAt = now
	}
}

func (w *warmWindow) at() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.warmAt
}
