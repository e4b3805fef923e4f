package canary

import (
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/counts"
	"github.com/preheatdev/preheat/replayer"
)

// otherKind collects the kinds past Options.MaxKinds; noKind is the kind of
// a response whose request had none.
const (
	otherKind = "(other)"
	noKind    = "(none)"
)

// kindTable numbers message kinds for both targets alike. It is bounded:
// kinds come from recorded sessions, so any client can make up new ones.
type kindTable struct {
	max   int
	mu    sync.Mutex
	index map[string]int
	names []string
}

func newKindTable(max int) *kindTable { return &kindTable{max: max, index: map[string]int{}} }

// id returns kind's number, or "(other)"'s once max kinds are known.
func (t *kindTable) id(kind string) int {
	if kind == "" {
		kind = noKind
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[kind]; ok {
		return i
	}
	if len(t.names) >= t.max {
		kind = otherKind
		if i, ok := t.index[kind]; ok {
			return i
		}
	}
	t.index[kind] = len(t.names)
	t.names = append(t.names, kind)
	return len(t.names) - 1
}

func (t *kindTable) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.names...)
}

// response is one measured response: its interval, kind and latency.
type response struct {
	iv   int32
	kind int32
	ms   float64
}

// slot is one interval's counts of a target.
type slot struct {
	started, failed, sent, timeouts int
}

// recorder collects one target's measurements. It is safe for concurrent
// use: responses arrive from the replayer's read goroutines, session ends
// from its session goroutines, interval closes from the canary's loop.
type recorder struct {
	name, url string
	kinds     *kindTable
	start     time.Time
	interval  time.Duration
	max       int

	mResponses, mStarted *metrics.Counter
	set                  *metrics.Set

	mu           sync.Mutex
	resp         []response
	overflow     uint64 // responses past max, counted only
	slots        []slot // by interval; the last one collects everything later
	started      uint64
	completed    uint64
	failed       map[string]uint64
	inflight     int // sessions handed to the replayer and not ended
	lastResponse time.Time
	lastHanded   time.Time
	lastStats    replayer.Stats
}

func newRecorder(name, url string, kinds *kindTable, max int, set *metrics.Set) *recorder {
	return &recorder{
		name: name, url: url, kinds: kinds, max: max, set: set, failed: map[string]uint64{},
		mResponses: set.NewCounter(`preheat_canary_responses_total{target="` + name + `"}`),
		mStarted:   set.NewCounter(`preheat_canary_sessions_started_total{target="` + name + `"}`),
	}
}

// begin readies the recorder for a phase starting at start of n intervals
// (the last collecting whatever comes after).
func (r *recorder) begin(start time.Time, interval time.Duration, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start, r.interval, r.slots, r.lastResponse = start, interval, make([]slot, n), start
}

// at returns the interval of t; the caller holds mu.
func (r *recorder) at(t time.Time) int {
	i := int(t.Sub(r.start) / r.interval)
	return min(max(i, 0), len(r.slots)-1)
}

// observe records one response; it is the replayer's OnResponse.
func (r *recorder) observe(resp replayer.Response) {
	kind := r.kinds.id(resp.Kind)
	r.mResponses.Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.slots) == 0 {
		return // before begin: nothing is sent then
	}
	r.lastResponse = resp.At
	if len(r.resp) >= r.max {
		r.overflow++
		return
	}
	r.resp = append(r.resp, response{iv: int32(r.at(resp.At)), kind: int32(kind), ms: float64(resp.Latency) / 1e6})
}

// handed counts a session given to the replayer at now.
func (r *recorder) handed(now time.Time) {
	r.mStarted.Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
	r.inflight++
	r.lastHanded = now
	r.slots[r.at(now)].started++
}

// ended counts how a session ended; it is the replayer's OnSessionEnd.
// Sessions the filters left nothing to send are not the target's doing;
// nor are those the canary's end stopped or cut.
func (r *recorder) ended(res replayer.SessionResult) {
	now := res.Started.Add(res.Duration)
	if res.Started.IsZero() {
		now = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	switch res.Failure {
	case "":
		r.completed++
	case "stopped", "timeout", "no_open", "nothing_to_send", "connect_skipped":
	default:
		class := res.Failure
		if res.Failure == "handshake" {
			class = fmt.Sprintf("handshake_%d", res.Status)
		} else if res.Failure == "closed_by_target" && res.CloseCode >= 0 {
			class = fmt.Sprintf("closed_by_target_%d", res.CloseCode)
		}
		r.failed[class]++
		r.set.GetOrCreateCounter(`preheat_canary_sessions_failed_total{target="` + r.name + `",class="` + class + `"}`).Inc()
		if len(r.slots) > 0 {
			r.slots[r.at(now)].failed++
		}
	}
}

// busy reports whether the replayer has no free slot for a session.
func (r *recorder) busy(concurrency int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight >= concurrency
}

// handedSince reports whether a session was handed to the target at t or
// later.
func (r *recorder) handedSince(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.lastHanded.Before(t)
}

// failures says how the target failed so far, given its response
// timeouts.
func (r *recorder) failures(timeouts uint64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return failureText(r.failed, timeouts)
}

// failureText formats sessions failed by class and response timeouts.
func failureText(failed map[string]uint64, timeouts uint64) string {
	s := "no session failed"
	if len(failed) > 0 {
		s = "sessions failed " + counts.Format(failed)
	}
	return fmt.Sprintf("%s, %d response timeouts", s, timeouts)
}

// close adds the replayer's message counts since the last call to the
// interval that ended at now.
func (r *recorder) close(now time.Time, st replayer.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[r.at(now.Add(-r.interval/2))]
	s.sent += int(st.MessagesSent - r.lastStats.MessagesSent)
	s.timeouts += int(st.Timeouts - r.lastStats.Timeouts)
	r.lastStats = st
}

// silentFor returns how long the target has answered nothing at now.
func (r *recorder) silentFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Sub(r.lastResponse)
}
