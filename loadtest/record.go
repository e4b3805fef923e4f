package loadtest

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replayer"
)

// Latencies are recorded from 1µs to 10 minutes; values outside are
// clamped to the range.
const (
	histMin = int64(time.Microsecond)
	histMax = int64(10 * time.Minute)
)

// newHist returns a histogram of latencies in nanoseconds, to sig
// significant digits.
func newHist(sig int) *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, sig) }

func recordHist(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(int64(d), histMin), histMax)) // within the range
}

// otherKind collects the kinds past Options.MaxKinds.
const otherKind = "(other)"

// recorder collects one target's measurements. It is safe for concurrent
// use: responses arrive from the replayer's read goroutines, session ends
// from the runner's.
type recorder struct {
	name, url string
	start     time.Time
	interval  time.Duration
	maxKinds  int
	rp        *replayer.Replayer
	prepared  []*replayer.Prepared // the corpus's sessions, planned for rp
	m         *armMetrics

	active atomic.Int64
	peak   atomic.Int64

	mu        sync.Mutex
	all       *hdrhistogram.Histogram
	kinds     map[string]*hdrhistogram.Histogram
	cur       *hdrhistogram.Histogram // the open interval's latencies
	curIdx    int
	curCount  intervalCounts
	early     []int // sessions started for the intervals after the open one
	intervals []Interval
	lastStats replayer.Stats // at the last interval's close, for deltas

	sessions  SessionCounts
	errors    map[string]uint64
	connected time.Time // when a session last got past its handshake
	failingAt time.Time // first connect failure since then
}

// intervalCounts are the open interval's session counts.
type intervalCounts struct {
	started, failed int
}

func newRecorder(name, url string, start time.Time, interval time.Duration, maxKinds int, set *metrics.Set) *recorder {
	return &recorder{
		name: name, url: url, start: start, interval: interval, maxKinds: maxKinds,
		all: newHist(3), kinds: map[string]*hdrhistogram.Histogram{}, cur: newHist(2),
		errors: map[string]uint64{}, connected: start,
		m: newArmMetrics(set, name),
	}
}

// observe records one response; it is the replayer's OnResponse.
func (r *recorder) observe(resp replayer.Response) {
	r.m.latency.Update(resp.Latency.Seconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	recordHist(r.all, resp.Latency)
	recordHist(r.cur, resp.Latency)
	kind := resp.Kind
	if kind == "" {
		kind = "(none)"
	}
	h := r.kinds[kind]
	if h == nil {
		if len(r.kinds) >= r.maxKinds {
			kind = otherKind
			h = r.kinds[kind]
		}
		if h == nil {
			h = newHist(3)
			r.kinds[kind] = h
		}
	}
	recordHist(h, resp.Latency)
}

// started counts a session about to be replayed, in the interval of its
// scheduled start (or the open one, if that has closed).
func (r *recorder) started(due time.Time) {
	n := r.active.Add(1)
	for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}
	r.m.started.Inc()
	idx := int(due.Sub(r.start) / r.interval)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions.Started++
	if idx <= r.curIdx {
		r.curCount.started++
		return
	}
	for len(r.early) < idx-r.curIdx {
		r.early = append(r.early, 0)
	}
	r.early[idx-r.curIdx-1]++
}

// ended counts how a session ended. cut says the run ended it.
func (r *recorder) ended(res replayer.SessionResult, cut bool, now time.Time) {
	r.active.Add(-1)
	class, outcome := classify(res, cut)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch outcome {
	case outcomeCompleted:
		r.sessions.Completed++
	case outcomeCut:
		r.sessions.Cut++
	case outcomeSkipped:
		r.sessions.Unplayable++
	case outcomeFailed:
		r.sessions.Failed++
		r.curCount.failed++
		r.errors[class]++
		r.m.failed(class).Inc()
	}
	if res.Failure == "connect" || res.Failure == "handshake" {
		if r.failingAt.IsZero() || r.failingAt.Before(r.connected) {
			r.failingAt = now
		}
	} else if outcome != outcomeSkipped {
		r.connected = now
	}
}

// downFor returns how long sessions have failed to connect with none
// connecting since, or 0.
func (r *recorder) downFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failingAt.IsZero() || r.failingAt.Before(r.connected) {
		return 0
	}
	return now.Sub(r.failingAt)
}

type outcome int

const (
	outcomeCompleted outcome = iota
	outcomeFailed
	outcomeCut
	outcomeSkipped
)

// classify names the error class of a session's end.
func classify(res replayer.SessionResult, cut bool) (string, outcome) {
	switch res.Failure {
	case "":
		return "", outcomeCompleted
	case "no_open", "nothing_to_send", "connect_skipped":
		return res.Failure, outcomeSkipped
	case "handshake":
		return fmt.Sprintf("handshake_%d", res.Status), outcomeFailed
	case "closed_by_target":
		if res.CloseCode >= 0 {
			return fmt.Sprintf("closed_by_target_%d", res.CloseCode), outcomeFailed
		}
		return "closed_by_target", outcomeFailed
	case "timeout":
		if cut {
			return "", outcomeCut
		}
		return "session_timeout", outcomeFailed
	}
	if cut && res.Failure == "connect" {
		return "", outcomeCut // a dial the end of the run interrupted
	}
	return res.Failure, outcomeFailed
}

// rotate closes every interval that ended by now.
func (r *recorder) rotate(now time.Time, final bool) {
	idx := int(now.Sub(r.start) / r.interval)
	st := r.rp.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.curIdx < idx || (final && r.curIdx == idx) {
		iv := Interval{
			T:         (time.Duration(r.curIdx) * r.interval).Seconds(),
			Seconds:   r.interval.Seconds(),
			Started:   r.curCount.started,
			Failed:    r.curCount.failed,
			Responses: int(r.cur.TotalCount()),
		}
		// The replayer's counters are read once per call: the first
		// interval closed gets the deltas since the last call.
		iv.Sent = int(st.MessagesSent - r.lastStats.MessagesSent)
		iv.Timeouts = int(st.Timeouts - r.lastStats.Timeouts)
		iv.Closed = int(closedErrors(st) - closedErrors(r.lastStats))
		r.lastStats = st
		if iv.Responses > 0 {
			iv.P50 = ms(r.cur.ValueAtQuantile(50))
			iv.P90 = ms(r.cur.ValueAtQuantile(90))
			iv.P99 = ms(r.cur.ValueAtQuantile(99))
			iv.Max = ms(r.cur.Max())
			iv.Mean = r.cur.Mean() / 1e6
		}
		if final && now.Sub(r.start) < time.Duration(r.curIdx+1)*r.interval {
			iv.Seconds = (now.Sub(r.start) - time.Duration(r.curIdx)*r.interval).Seconds()
		}
		r.intervals = append(r.intervals, iv)
		r.cur.Reset()
		r.curCount = intervalCounts{}
		if len(r.early) > 0 {
			r.curCount.started = r.early[0]
			r.early = r.early[1:]
		}
		r.curIdx++
	}
}

// snapshot returns the measurements so far.
func (r *recorder) snapshot(elapsed time.Duration) TargetResult {
	st := r.rp.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	tr := TargetResult{
		Name: r.name, URL: r.url,
		Sessions:      r.sessions,
		Errors:        make(map[string]uint64, len(r.errors)+1),
		Sent:          st.MessagesSent,
		Rehearsed:     st.MessagesRehearsed,
		Requests:      st.Requests,
		Responses:     uint64(r.all.TotalCount()),
		Timeouts:      st.Timeouts,
		Closed:        st.Closed,
		ClosedCut:     st.ClosedCut,
		Skipped:       st.MessagesSkipped,
		SkippedByKind: st.SkippedByKind,
		Latency:       summarize(r.all),
		Intervals:     append([]Interval(nil), r.intervals...),
	}
	tr.Sessions.Active = r.active.Load()
	tr.Sessions.Peak = r.peak.Load()
	for k, v := range r.errors {
		tr.Errors[k] = v
	}
	if st.Timeouts > 0 {
		tr.Errors["response_timeout"] = st.Timeouts
	}
	if n := closedErrors(st); n > 0 {
		tr.Errors["response_closed"] = n
	}
	tr.ErrorCount = tr.Sessions.Failed + st.Timeouts + closedErrors(st)
	if ops := tr.Sessions.Started - tr.Sessions.Unplayable + st.MessagesSent; ops > 0 {
		tr.ErrorRate = float64(tr.ErrorCount) / float64(ops)
	}
	if s := elapsed.Seconds(); s > 0 {
		tr.SessionsPerSecond = float64(tr.Sessions.Started) / s
		tr.MessagesPerSecond = float64(st.MessagesSent) / s
		tr.ResponsesPerSecond = float64(tr.Responses) / s
	}
	names := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		tr.Kinds = append(tr.Kinds, KindLatency{Kind: k, Latency: summarize(r.kinds[k])})
	}
	sort.SliceStable(tr.Kinds, func(i, j int) bool { return tr.Kinds[i].Latency.Count > tr.Kinds[j].Latency.Count })
	for _, q := range percentileQuantiles {
		if r.all.TotalCount() > 0 {
			tr.Percentiles = append(tr.Percentiles, Quantile{Q: q, MS: ms(r.all.ValueAtQuantile(q))})
		}
	}
	return tr
}

// closedErrors counts the requests whose connection ended while they
// waited, but for those the run's cut ended: the target's doing.
func closedErrors(st replayer.Stats) uint64 { return st.Closed - st.ClosedCut }

// percentileQuantiles are the points of the percentile distribution in
// a report.
var percentileQuantiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func summarize(h *hdrhistogram.Histogram) Latency {
	n := h.TotalCount()
	if n == 0 {
		return Latency{}
	}
	return Latency{
		Count: n, Mean: h.Mean() / 1e6, Min: ms(h.Min()),
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// quantile returns the q-th percentile so far, for progress.
func (r *recorder) quantiles() (p50, p99 time.Duration, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Duration(r.all.ValueAtQuantile(50)), time.Duration(r.all.ValueAtQuantile(99)), r.all.TotalCount()
}

// armMetrics are one target's metrics in the load test's set.
type armMetrics struct {
	set     *metrics.Set
	target  string
	started *metrics.Counter
	latency *metrics.Histogram
}

func newArmMetrics(s *metrics.Set, target string) *armMetrics {
	return &armMetrics{
		set: s, target: target,
		started: s.GetOrCreateCounter(`preheat_loadtest_sessions_started_total{target="` + target + `"}`),
		latency: s.GetOrCreateHistogram(`preheat_loadtest_response_seconds{target="` + target + `"}`),
	}
}

func (m *armMetrics) failed(class string) *metrics.Counter {
	return m.set.GetOrCreateCounter(`preheat_loadtest_sessions_failed_total{target="` + m.target + `",class="` + class + `"}`)
}
