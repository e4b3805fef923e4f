package readiness

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Signal identifies one warmth signal.
type Signal int

// The warmth signals, in report order.
const (
	// Jitter is the scheduler jitter, in seconds: how late a no-op task
	// runs. It starts at hundreds of milliseconds and falls as the JVM warms.
	Jitter Signal = iota
	// Compile is the JIT compile time rate, in milliseconds per second.
	Compile
	// Latency is the replay's response latency quantile per interval, in
	// milliseconds.
	Latency

	numSignals
)

var signalInfo = [numSignals]struct {
	name, title, unit string
}{
	Jitter:  {"jitter_seconds", "Scheduler jitter", "s"},
	Compile: {"compile_ms_per_second", "JIT compile time", "ms/s"},
	Latency: {"replay_latency_ms", "Replay latency", "ms"},
}

// String returns the signal's report name, such as "jitter_seconds".
func (s Signal) String() string {
	if s < 0 || s >= numSignals {
		return fmt.Sprintf("signal(%d)", int(s))
	}
	return signalInfo[s].name
}

// Outcomes of a run, as recorded in Decision.Outcome and Report.Outcome.
const (
	OutcomeWarm           = "warm"            // every present signal flattened
	OutcomeDeadlineOpen   = "deadline_open"   // deadline hit, released anyway
	OutcomeDeadlineClosed = "deadline_closed" // deadline hit, not released
	OutcomeCanceled       = "canceled"        // the caller's context ended first
	OutcomeFailed         = "failed"          // set by callers whose release failed
	OutcomeHeld           = "held"            // set by callers: warm, but a check after it held the target back (a canary's regression)
)

// Decision is the verdict of a run. While the target is still warming the
// Outcome is empty and Reason says what is not flat yet.
type Decision struct {
	// Warm is set when the signals flattened.
	Warm bool `json:"warm"`
	// Release is set when the target should take traffic: warm, or the
	// deadline under fail-open.
	Release bool `json:"release"`
	// Outcome is one of the Outcome* constants, or empty while warming.
	Outcome string `json:"outcome"`
	// Reason says in a sentence why, naming signals and values.
	Reason string `json:"reason"`
	// At is when the decision was taken.
	At time.Time `json:"at"`
}

// SignalStatus is one signal's verdict at the latest evaluation.
type SignalStatus struct {
	Signal Signal
	// Present is set when the signal is being judged: it has been seen, and
	// for replay latency, it has been fed within the last window.
	Present bool
	// Flat is the verdict over the window ending at the evaluation.
	Flat bool
	// Value is the latest sample, NaN if none.
	Value float64
	// FlatAt is when the signal last turned flat; zero if it never did.
	FlatAt time.Time
	// Why explains the verdict in a few words.
	Why string
}

type sample struct {
	at time.Time
	v  float64
}

type signalState struct {
	samples []sample
	present bool
	flat    bool
	flatAt  time.Time
	why     string
}

// Detector decides when warmth signals have flattened. It does no I/O and
// reads no clock: it is fed timestamped samples with Add and asked for a
// verdict with Decide. It is not safe for concurrent use.
//
// A signal is flat at time t when, over the window (t-Window, t], it has been
// observed since the window's start with at least MinSamples samples, its
// 95th percentile is under its absolute limit, and it has no trend that is
// both significant (Mann-Kendall, p < Alpha) and material (Theil-Sen slope
// times Window above MaxDrift of its level, and above the signal's drift
// floor). A compile rate whose every sample in the window is under its
// limit is flat whatever its trend: it is settling, not warming. With
// SetLoadShare fed, a compile rate must also be under its limit when scaled
// to the replay's full rate (see Options.LoadShare). The target is warm when every
// present signal has been flat at every evaluation for Hold, at least one
// scraped signal (jitter or compile) is present, and MinWarm has passed.
// With Options.NoJIT no scraped signal is needed: replay latency alone can
// release, but some signal must be present.
// Once every signal is flat, and until one is not, every limit above is
// HoldTolerance times itself (Options.HoldTolerance): a signal turns flat
// under its limit and leaves flat only well over it.
//
// Absent signals are set aside: jitter never seen, no replay running (so no
// latencies), and replay latency that has had no sample for a whole window
// (the replay paused or ended). A compile metric never seen holds the
// release, and the deadline decides, unless Options.NoJIT says the target
// has no JIT: a JVM run with -Xint exposes none, and its flat, slow latency
// must not pass for warm. Under NoJIT the reason leaves out the signals
// never seen. A scraped
// signal that stops arriving (failed scrapes) is not set aside; it goes
// stale and blocks release until it returns or the deadline.
type Detector struct {
	o         Options
	start     time.Time
	sig       [numSignals]signalState
	responses uint64   // replay responses observed so far (SetResponses)
	load      []sample // shares of the full replay rate allowed, the last 2 RateWindows (SetLoadShare)
	loadAll   []sample // every share recorded, for Series
	flatSince time.Time
	final     Decision
}

// NewDetector returns a detector for a run that started at start. It uses
// the detection fields of opts (Interval, Window, Hold, HoldTolerance,
// MinWarm, NoMinWarm, MaxWarm, MinSamples, Alpha, MaxDrift, the Max*
// limits, NoJIT and FailClosed), defaulted as
// documented on Options.
func NewDetector(start time.Time, opts *Options) *Detector {
	return &Detector{o: opts.withDefaults(), start: start}
}

// SetResponses records that n replay responses have been observed so far,
// for MinResponses.
func (d *Detector) SetResponses(n uint64) { d.responses = n }

// SetLoadShare records that at at the replay was allowed share of its full
// rate (Options.LoadShare). Shares are clamped to [0.001, 1]; NaN and
// shares older than the newest are dropped.
func (d *Detector) SetLoadShare(at time.Time, share float64) {
	if math.IsNaN(share) {
		return
	}
	if n := len(d.load); n > 0 && at.Before(d.load[n-1].at) {
		return
	}
	d.load = append(d.load, sample{at, min(max(share, 0.001), 1)})
	d.loadAll = append(d.loadAll, d.load[len(d.load)-1])
	cut := sort.Search(len(d.load), func(i int) bool { return d.load[i].at.After(at.Add(-2 * d.o.RateWindow)) })
	d.load = slices.Delete(d.load, 0, cut)
}

// loadShare returns the mean share of its full rate the replay was allowed
// over the RateWindow ending at now, and false if none was recorded.
func (d *Detector) loadShare(now time.Time) (float64, bool) {
	var sum float64
	var n int
	for _, p := range d.load {
		if p.at.After(now.Add(-d.o.RateWindow)) && !p.at.After(now) {
			sum += p.v
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// Add records sample v of signal s taken at at. NaN and infinite values,
// samples of unknown signals and samples older than the signal's newest are
// dropped.
func (d *Detector) Add(s Signal, at time.Time, v float64) {
	if s < 0 || s >= numSignals || math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	st := &d.sig[s]
	if n := len(st.samples); n > 0 && at.Before(st.samples[n-1].at) {
		return
	}
	st.samples = append(st.samples, sample{at, v})
}

func (d *Detector) limit(s Signal) float64 {
	var l float64
	switch s {
	case Jitter:
		l = d.o.MaxJitter
	case Compile:
		l = d.o.MaxCompileRate
	case Latency:
		l = d.o.MaxLatency
	}
	return max(l, 0)
}

// judge returns whether s is present and flat at now, and why. tol
// multiplies its limits: 1, or HoldTolerance while the hold runs.
func (d *Detector) judge(s Signal, now time.Time, tol float64) (present, flat bool, why string) {
	all := d.sig[s].samples
	if len(all) == 0 {
		return false, false, "never seen"
	}
	w := d.o.Window
	newest := all[len(all)-1].at
	if s == Latency && !newest.After(now.Add(-w)) {
		return false, false, fmt.Sprintf("no replay latency for %v", now.Sub(newest).Round(time.Millisecond))
	}
	if first := all[0].at; first.After(now.Add(-w + d.o.Interval)) {
		return true, false, fmt.Sprintf("observed for %v of a %v window", max(now.Sub(first), 0).Round(time.Millisecond), w)
	}
	if stale := max(w/4, 2*d.o.Interval); newest.Before(now.Add(-stale)) {
		return true, false, fmt.Sprintf("no sample for %v", now.Sub(newest).Round(time.Millisecond))
	}
	lo := sort.Search(len(all), func(i int) bool { return all[i].at.After(now.Add(-w)) })
	hi := sort.Search(len(all), func(i int) bool { return all[i].at.After(now) })
	win := all[lo:hi]
	if len(win) < d.o.MinSamples {
		return true, false, fmt.Sprintf("%d samples in the window, %d needed", len(win), d.o.MinSamples)
	}
	xs := make([]float64, len(win))
	ys := make([]float64, len(win))
	for i, p := range win {
		xs[i] = p.at.Sub(now).Seconds()
		ys[i] = p.v
	}
	mk := mannKendall(ys)
	slope := theilSen(xs, ys)
	sorted := slices.Clone(ys)
	slices.Sort(sorted)
	med := median(sorted)
	p95 := nearestRank(sorted, 0.95)
	unit := signalInfo[s].unit
	if l := d.limit(s); l > 0 && p95 > l*tol {
		if tol > 1 {
			return true, false, fmt.Sprintf("p95 %.4g %s over limit %.4g times the hold's tolerance %.3g", p95, unit, l, tol)
		}
		return true, false, fmt.Sprintf("p95 %.4g %s over limit %.4g", p95, unit, l)
	}
	level := math.Abs(med)
	if l := d.limit(s); l > 0 {
		level = max(level, l/4)
	}
	drift := math.Abs(slope) * w.Seconds()
	material := drift > d.o.MaxDrift*level && drift > d.driftFloor(s)
	// A compile rate whose every sample in the window is under its limit
	// (times the hold's tolerance while the hold runs) is not warming any
	// more, whichever way it drifts: it is settling. A JIT's late,
	// rare-path compiles make bumps in a rate taken over RateWindow, and a
	// real JVM keeps a tail of 3 to 37 ms/s for minutes; holding the
	// release for each bump would hold it for minutes. A bump's rise over
	// a few seconds is a significant, material trend, so the exemption
	// reaches as far as the tolerance does, or the tolerance would not
	// hold.
	settling := s == Compile && d.limit(s) > 0 && sorted[len(sorted)-1] <= d.limit(s)*tol
	if mk.P < d.o.Alpha && material && !settling {
		dir := "falling"
		if slope > 0 {
			dir = "rising"
		}
		return true, false, fmt.Sprintf("%s %.4g %s over the window from %.4g (Mann-Kendall p=%.2g)", dir, drift, unit, med, mk.P)
	}
	if l := d.limit(s); s == Compile && l > 0 {
		// Judged at full load: see Options.LoadShare.
		if share, ok := d.loadShare(now); ok && share < 1 {
			last := win[len(win)-1].v
			if full := last / share; full > l*tol {
				over := fmt.Sprintf("over limit %.4g", l)
				if tol > 1 {
					over += fmt.Sprintf(" times the hold's tolerance %.3g", tol)
				}
				return true, false, fmt.Sprintf("%.4g %s with the replay held to %.0f%% of its rate: %.4g %s at full rate, %s", last, unit, 100*share, full, unit, over)
			}
		}
	}
	if l := d.limit(s); l > 0 && p95 > l {
		return true, true, fmt.Sprintf("flat at %.4g %s (p95 %.4g over limit %.4g, within the hold's tolerance %.3g; drift %.2g, p=%.2g)", med, unit, p95, l, tol, drift, mk.P)
	}
	return true, true, fmt.Sprintf("flat at %.4g %s (p95 %.4g, drift %.2g, p=%.2g)", med, unit, p95, drift, mk.P)
}

// driftFloor is the smallest drift across the window that can be material
// for s, whatever its level: below it a trend is too small to matter to a
// request, however significant.
func (d *Detector) driftFloor(s Signal) float64 {
	switch s {
	case Jitter:
		return d.o.JitterDriftFloor.Seconds()
	case Latency:
		return float64(d.o.LatencyDriftFloor) / float64(time.Millisecond)
	}
	return 0
}

// Decide evaluates every signal at now and returns the decision. Before the
// run is decided the returned Outcome is empty; once it is (warm or
// deadline), Decide keeps returning that decision. Call it with
// non-decreasing times, typically once per Interval: the Hold counts
// unbroken evaluations.
func (d *Detector) Decide(now time.Time) Decision {
	if d.final.Outcome != "" {
		return d.final
	}
	allFlat, scraped := true, false
	var flat, waiting, absent []string
	// Once every signal is flat, the hold tolerates values up to
	// HoldTolerance times a limit: see Options.HoldTolerance.
	tol := 1.0
	if t := d.o.HoldTolerance; !d.flatSince.IsZero() && t > 1 && !math.IsInf(t, 0) {
		tol = t // NewDetector does not validate: NaN, infinite or under 1 is strict
	}
	for s := range numSignals {
		st := &d.sig[s]
		present, ok, why := d.judge(s, now, tol)
		st.present, st.why = present, why
		if ok && !st.flat {
			st.flatAt = now
		}
		st.flat = ok
		line := fmt.Sprintf("%s %s", s, why)
		switch {
		case !present && d.o.NoJIT && len(st.samples) == 0:
			// Without a JIT, signals the target never exposed (no compile
			// metric, no jitter gauge, no metrics URL at all) are not part
			// of the decision, and the reason does not list them.
		case !present:
			absent = append(absent, line)
		case ok:
			flat = append(flat, line)
		default:
			allFlat = false
			waiting = append(waiting, line)
		}
		if present && s != Latency {
			scraped = true
		}
	}
	switch {
	case !d.o.NoJIT && !scraped:
		allFlat = false
		waiting = append(waiting, "no jitter or compile signal exposed")
	case d.o.NoJIT && !scraped && !d.sig[Latency].present:
		// Without a JIT the release may rest on replay latency alone, but
		// on something: with no signal at all, nothing says warm.
		allFlat = false
		waiting = append(waiting, fmt.Sprintf("no signal to judge: no replay latency within the last %v, and no jitter or compile metric exposed", d.o.Window))
	}
	if !d.o.NoJIT && !d.sig[Compile].present {
		// A JIT that exposes no compile time cannot be judged warm by the
		// other signals alone: -Xint's latency is flat and slow from the
		// start. The deadline decides, unless the target has no JIT.
		allFlat = false
		waiting = append(waiting, fmt.Sprintf("compile metric %s never seen (for a target without a JIT: --no-jit, Options.NoJIT)", d.o.CompileMetric))
	}
	if need := uint64(d.o.MinResponses); d.responses < need {
		// Flat signals mean nothing of a target that has not been warmed:
		// an idle JVM compiles nothing either.
		allFlat = false
		waiting = append(waiting, fmt.Sprintf("%d of the %d replay responses required so far (--min-responses, Options.MinResponses)", d.responses, need))
	}
	if !allFlat {
		d.flatSince = time.Time{}
	} else if d.flatSince.IsZero() {
		d.flatSince = now
	}
	elapsed := now.Sub(d.start)
	if allFlat && now.Sub(d.flatSince) >= d.o.Hold && elapsed >= d.o.MinWarm {
		d.final = Decision{Warm: true, Release: true, Outcome: OutcomeWarm, At: now,
			Reason: fmt.Sprintf("warm after %v, every signal flat for %v: %s",
				elapsed.Round(time.Millisecond), now.Sub(d.flatSince).Round(time.Millisecond), strings.Join(append(flat, absent...), "; "))}
		return d.final
	}
	if elapsed >= d.o.MaxWarm {
		why := strings.Join(waiting, "; ")
		if why == "" {
			why = fmt.Sprintf("flat for only %v", now.Sub(d.flatSince).Round(time.Millisecond))
		}
		d.final = Decision{Outcome: OutcomeDeadlineOpen, Release: true, At: now,
			Reason: fmt.Sprintf("deadline %v reached before warm (%s); released anyway (fail open)", d.o.MaxWarm, why)}
		if d.o.FailClosed {
			d.final.Outcome, d.final.Release = OutcomeDeadlineClosed, false
			d.final.Reason = fmt.Sprintf("deadline %v reached before warm (%s); not released (fail closed)", d.o.MaxWarm, why)
		}
		return d.final
	}
	reason := "warming: " + strings.Join(waiting, "; ")
	if allFlat {
		reason = fmt.Sprintf("warming: every signal flat for %v, holding for %v and until %v after start",
			now.Sub(d.flatSince).Round(time.Millisecond), d.o.Hold, d.o.MinWarm)
	}
	return Decision{At: now, Reason: reason}
}

// FlatSince returns when the current unbroken stretch of every present
// signal flat began, or zero if not every signal is flat.
func (d *Detector) FlatSince() time.Time { return d.flatSince }

// Signals returns each signal's verdict as of the latest Decide.
func (d *Detector) Signals() []SignalStatus {
	out := make([]SignalStatus, numSignals)
	for s := range numSignals {
		st := &d.sig[s]
		out[s] = SignalStatus{Signal: s, Present: st.present, Flat: st.flat, FlatAt: st.flatAt, Why: st.why, Value: math.NaN()}
		if n := len(st.samples); n > 0 {
			out[s].Value = st.samples[n-1].v
		}
	}
	return out
}

// Series returns every signal's samples and verdicts for a Report, with
// times in seconds since the run's start. A signal never seen is Missing.
func (d *Detector) Series() []Series {
	out := make([]Series, numSignals)
	for s := range numSignals {
		st := &d.sig[s]
		info := signalInfo[s]
		sr := Series{Name: info.name, Title: info.title, Unit: info.unit, Threshold: d.limit(s), FlatAt: -1,
			Missing: len(st.samples) == 0, Points: make([]Point, len(st.samples))}
		if !st.flatAt.IsZero() {
			sr.FlatAt = st.flatAt.Sub(d.start).Seconds()
		}
		for i, p := range st.samples {
			sr.Points[i] = Point{T: p.at.Sub(d.start).Seconds(), V: p.v}
		}
		out[s] = sr
	}
	if len(d.loadAll) > 0 {
		sr := Series{Name: LoadShareSeries, Title: "Share of the full replay rate allowed", Unit: "share", FlatAt: -1,
			Points: make([]Point, len(d.loadAll))}
		for i, p := range d.loadAll {
			sr.Points[i] = Point{T: p.at.Sub(d.start).Seconds(), V: p.v}
		}
		out = append(out, sr)
	}
	return out
}

// LoadShareSeries names the series Detector.Series adds, after the
// signals', when SetLoadShare was fed: the share of its full rate the
// replay was allowed at each evaluation (Options.LoadShare).
const LoadShareSeries = "replay_load_share"
