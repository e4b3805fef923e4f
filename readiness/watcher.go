package readiness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Watcher scrapes a target's warmth signals, takes replay latencies, and
// decides with a Detector when the target is warm or the deadline has come.
// Its methods are safe for concurrent use; Run is called once.
type Watcher struct {
	url string
	o   Options
	log *slog.Logger
	lat latencies

	scrapes    *metrics.Counter
	scrapeTime *metrics.Histogram
	latObs     *metrics.Counter
	flatGauge  [numSignals]*metrics.Gauge
	// valueGauge is each signal's latest sample, created at its first so
	// that a signal never seen exports no value.
	valueGauge [numSignals]*metrics.Gauge

	mu       sync.Mutex
	ran      bool
	det      *Detector
	started  time.Time
	ended    time.Time
	decision Decision
	marks    []Mark
	wasFlat  [numSignals]bool
	nScrapes int
	nErrors  int
}

// Status is a snapshot of a run for a live progress line.
type Status struct {
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// Signals are each signal's latest value and verdict.
	Signals []SignalStatus
	// FlatFor is how long every present signal has been flat; 0 if not.
	FlatFor time.Duration
	// Scrapes and ScrapeErrors count scrape attempts and failures.
	Scrapes, ScrapeErrors int
	// Decision is the latest decision; its Outcome is empty while warming.
	Decision Decision
}

// NewWatcher returns a watcher that scrapes metricsURL, an http or https
// Prometheus endpoint. opts may be nil.
//
// metricsURL may be empty only for a target without a JIT (opts.NoJIT):
// the watcher then scrapes nothing (no request is made, and no scrape or
// scrape error is counted or logged), and the decision rests on the replay
// latencies fed to ObserveLatency. Without NoJIT an empty metricsURL is an
// error: a JIT's compile time is what says a JIT target is warm.
func NewWatcher(metricsURL string, opts *Options) (*Watcher, error) {
	o := opts.withDefaults()
	if metricsURL == "" {
		if !o.NoJIT {
			return nil, errors.New("new watcher: a metrics URL is required unless the target has no JIT (Options.NoJIT)")
		}
	} else {
		u, err := url.Parse(metricsURL)
		if err != nil {
			return nil, fmt.Errorf("new watcher: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("new watcher: metrics url %q: want http(s)://host/path", metricsURL)
		}
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("new watcher: %w", err)
	}
	log := o.Logger.With("component", "readiness")
	if metricsURL != "" {
		log = log.With("metrics_url", metricsURL)
	}
	w := &Watcher{url: metricsURL, o: o, log: log}
	w.scrapes = o.Metrics.GetOrCreateCounter("preheat_readiness_scrapes_total")
	w.scrapeTime = o.Metrics.GetOrCreateHistogram("preheat_readiness_scrape_duration_seconds")
	w.latObs = o.Metrics.GetOrCreateCounter("preheat_readiness_latency_observations_total")
	limits := NewDetector(time.Time{}, &o)
	for s := range numSignals {
		w.flatGauge[s] = o.Metrics.GetOrCreateGauge(fmt.Sprintf("preheat_readiness_signal_flat{signal=%q}", s), nil)
		// The limit a signal's p95 must be under, in the signal's unit, for
		// each signal that has one and can be seen: without a metrics URL
		// only replay latency is. (While the hold runs, the detector
		// allows HoldTolerance times it.)
		if l := limits.limit(s); l > 0 && (s == Latency || metricsURL != "") {
			o.Metrics.GetOrCreateGauge(fmt.Sprintf("preheat_readiness_signal_limit{signal=%q}", s), nil).Set(l)
		}
	}
	return w, nil
}

// ObserveLatency records one replayed response's latency d, received at at.
// It is cheap and safe to call from many goroutines. Observations before
// Run starts, or stamped before it started, are dropped. Each interval's
// observations form one latency sample (their LatencyQuantile); intervals
// without observations form none, and with none at all the latency signal is
// absent and the decision rests on the scraped signals.
func (w *Watcher) ObserveLatency(at time.Time, d time.Duration) {
	w.lat.observe(at, d)
}

// Run scrapes (unless there is no metrics URL) and evaluates every Interval
// and returns when the target is warm, the deadline (MaxWarm) passes, or
// ctx ends. Scrape failures are counted and logged, never fatal. The error
// is non-nil only when ctx ended first; the decision then has Outcome
// "canceled".
func (w *Watcher) Run(ctx context.Context) (Decision, error) {
	w.mu.Lock()
	if w.ran {
		w.mu.Unlock()
		return Decision{}, errors.New("watch: Run called twice")
	}
	w.ran = true
	start := time.Now()
	w.started = start
	w.det = NewDetector(start, &w.o)
	w.mu.Unlock()
	w.lat.begin(start)

	deadline := start.Add(w.o.MaxWarm)
	tick := time.NewTicker(w.o.Interval)
	defer tick.Stop()
	dl := time.NewTimer(w.o.MaxWarm)
	defer dl.Stop()
	sc := scrapeState{}
	for {
		if d := w.step(ctx, &sc, deadline); d.Outcome != "" {
			return d, nil
		}
		select {
		case <-ctx.Done():
			now := time.Now()
			d := Decision{Outcome: OutcomeCanceled, At: now,
				Reason: fmt.Sprintf("canceled after %v before warm: %v", now.Sub(start).Round(time.Millisecond), context.Cause(ctx))}
			w.finish(d)
			if w.url == "" {
				return d, fmt.Errorf("watch: %w", ctx.Err())
			}
			return d, fmt.Errorf("watch %s: %w", w.url, ctx.Err())
		case <-tick.C:
		case <-dl.C:
		}
	}
}

// scrapeState is Run's memory between scrapes.
type scrapeState struct {
	// hist holds the successful scrapes of the last RateWindow, oldest
	// first, plus the newest one older than that (the base of the rates).
	hist   []scraped
	streak int // consecutive failures
}

type scraped struct {
	e  *exposition
	at time.Time
}

// last returns the previous successful scrape, or nil.
func (sc *scrapeState) last() *exposition {
	if len(sc.hist) == 0 {
		return nil
	}
	return sc.hist[len(sc.hist)-1].e
}

// add records a scrape and returns the base to measure it against: the
// newest scrape at least RateWindow older, or the oldest kept while the run
// is younger than RateWindow.
func (sc *scrapeState) add(e *exposition, at time.Time, window time.Duration) (base *exposition, baseAt time.Time) {
	cut := at.Add(-window)
	i := 0
	for i+1 < len(sc.hist) && !sc.hist[i+1].at.After(cut) {
		i++ // hist[i+1] is old enough to be the base: hist[i] is not needed
	}
	sc.hist = append(sc.hist[i:], scraped{e, at})
	if len(sc.hist) < 2 {
		return nil, time.Time{}
	}
	return sc.hist[0].e, sc.hist[0].at
}

// step scrapes once (unless there is no metrics URL), feeds the detector
// and returns its decision.
func (w *Watcher) step(ctx context.Context, sc *scrapeState, deadline time.Time) Decision {
	at := time.Now()
	scrape := w.url != "" && at.Before(deadline)
	var e exposition
	var err error
	switch {
	case w.url == "":
		// Nothing to scrape: the decision rests on replay latency.
	case scrape:
		end := at.Add(w.o.ScrapeTimeout)
		if deadline.Before(end) {
			end = deadline
		}
		sctx, cancel := context.WithDeadline(ctx, end)
		e, err = fetch(sctx, w.url, &w.o)
		cancel()
		w.scrapes.Inc()
		w.scrapeTime.UpdateDuration(at)
	default:
		err = errors.New("deadline reached")
	}
	now := time.Now()
	if ctx.Err() != nil {
		return Decision{}
	}
	share := math.NaN()
	if w.o.LoadShare != nil {
		share = w.o.LoadShare() // outside w.mu: it may take the replayer's locks
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if scrape {
		w.nScrapes++
	}
	switch {
	case w.url == "":
	case err != nil && scrape:
		w.nErrors++
		reason := errorReason(err)
		w.o.Metrics.GetOrCreateCounter(fmt.Sprintf("preheat_readiness_scrape_errors_total{reason=%q}", reason)).Inc()
		if sc.streak == 0 {
			w.log.Warn("scrape failed; retrying every interval until the deadline", "err", err, "reason", reason)
		}
		sc.streak++
	case err == nil:
		if sc.streak > 0 {
			w.log.Info("scrapes recovered", "failed", sc.streak)
			sc.streak = 0
		}
		prev := sc.last()
		base, baseAt := sc.add(&e, at, w.o.RateWindow)
		jit, okJ, _, _ := signals(prev, time.Time{}, &e, at, w.o.JitterQuantile)
		_, _, comp, okC := signals(base, baseAt, &e, at, w.o.JitterQuantile)
		if okJ {
			w.det.Add(Jitter, at, jit)
		}
		if okC {
			w.det.Add(Compile, at, comp)
		}
	}
	if ms, ok := w.lat.take(w.o.LatencyQuantile); ok {
		w.det.Add(Latency, now, ms)
	}
	w.latObs.Set(w.lat.observed())
	w.det.SetResponses(w.lat.observed())
	w.det.SetLoadShare(now, share)

	d := w.det.Decide(now)
	t := now.Sub(w.started).Seconds()
	for _, s := range w.det.Signals() {
		if s.Flat && !w.wasFlat[s.Signal] {
			w.marks = append(w.marks, Mark{T: t, Label: "flat: " + s.Signal.String()})
		}
		w.wasFlat[s.Signal] = s.Flat
		w.flatGauge[s.Signal].Set(b2f(s.Flat))
		if !math.IsNaN(s.Value) {
			if w.valueGauge[s.Signal] == nil {
				w.valueGauge[s.Signal] = w.o.Metrics.GetOrCreateGauge(fmt.Sprintf("preheat_readiness_signal_value{signal=%q}", s.Signal), nil)
			}
			w.valueGauge[s.Signal].Set(s.Value)
		}
	}
	w.decision = d
	if d.Outcome != "" {
		w.finishLocked(d)
	}
	return d
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (w *Watcher) finish(d Decision) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finishLocked(d)
}

func (w *Watcher) finishLocked(d Decision) {
	w.decision = d
	w.ended = d.At
	label := "deadline"
	switch d.Outcome {
	case OutcomeWarm:
		label = "released"
	case OutcomeCanceled:
		label = "canceled"
	}
	w.marks = append(w.marks, Mark{T: d.At.Sub(w.started).Seconds(), Label: label})
	w.o.Metrics.GetOrCreateCounter(fmt.Sprintf("preheat_readiness_outcomes_total{outcome=%q}", d.Outcome)).Inc()
	if d.Release {
		w.o.Metrics.GetOrCreateCounter(fmt.Sprintf("preheat_readiness_releases_total{outcome=%q}", d.Outcome)).Inc()
		// Seconds from the start of the run to its release, warm or at
		// the deadline: what the dashboard compares across pods.
		w.o.Metrics.GetOrCreateGauge("preheat_readiness_release_seconds", nil).Set(d.At.Sub(w.started).Seconds())
	}
	lvl := slog.LevelInfo
	if d.Outcome != OutcomeWarm {
		lvl = slog.LevelWarn
	}
	w.log.Log(context.Background(), lvl, "warm run ended", "outcome", d.Outcome, "release", d.Release,
		"elapsed", d.At.Sub(w.started).Round(time.Millisecond), "reason", d.Reason)
}

// Status returns a snapshot of the run so far.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Status{Scrapes: w.nScrapes, ScrapeErrors: w.nErrors, Decision: w.decision}
	if w.det == nil {
		return st
	}
	now := time.Now()
	if !w.ended.IsZero() {
		now = w.ended
	}
	st.Elapsed = now.Sub(w.started)
	st.Signals = w.det.Signals()
	if w.url == "" {
		for i := range st.Signals {
			if st.Signals[i].Signal != Latency {
				st.Signals[i].Why = "not scraped: no metrics URL"
			}
		}
	}
	if fs := w.det.FlatSince(); !fs.IsZero() {
		st.FlatFor = now.Sub(fs)
	}
	return st
}

// Report returns the record of the run so far: the decision, every signal's
// curve and the marks. Target is left for the caller to fill.
func (w *Watcher) Report() *Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := &Report{MetricsURL: w.url, Started: w.started, Ended: w.ended,
		Outcome: w.decision.Outcome, Reason: w.decision.Reason, Released: w.decision.Release && w.decision.Outcome != ""}
	if r.Released {
		r.ReleasedAt = w.decision.At
	}
	if w.det != nil {
		r.Signals = w.det.Series()
	} else {
		r.Signals = NewDetector(time.Time{}, &w.o).Series()
	}
	if w.o.NoJIT {
		// Without a JIT a signal the target never exposed took no part in
		// the decision and is left out, not drawn as an empty chart. (With
		// a JIT a missing compile metric is what held the release, and its
		// Missing series says so.)
		r.Signals = slices.DeleteFunc(r.Signals, func(s Series) bool { return s.Missing })
	}
	r.Marks = append([]Mark(nil), w.marks...)
	policy := "open"
	if w.o.FailClosed {
		policy = "closed"
	}
	r.Facts = []Fact{
		{"Window", w.o.Window.String()},
		{"Hold", w.o.Hold.String()},
		{"Hold tolerance", strconv.FormatFloat(w.o.HoldTolerance, 'g', -1, 64) + "x the limits"},
		{"Min warm", w.o.MinWarm.String()},
		{"Deadline", w.o.MaxWarm.String()},
		{"On deadline", policy},
	}
	if w.url == "" {
		r.Facts = append(r.Facts,
			Fact{"Evaluation interval", w.o.Interval.String()},
			Fact{"Metrics", "none scraped (no JIT): decided on replay latency"},
			Fact{"Replay latencies observed", strconv.FormatUint(w.lat.observed(), 10)})
		return r
	}
	r.Facts = append(r.Facts,
		Fact{"Scrape interval", w.o.Interval.String()},
		Fact{"Scrapes", strconv.Itoa(w.nScrapes)},
		Fact{"Scrape errors", strconv.Itoa(w.nErrors)},
		Fact{"Replay latencies observed", strconv.FormatUint(w.lat.observed(), 10)})
	if !w.o.NoJIT || w.seen(Jitter) {
		r.Facts = append(r.Facts, Fact{"Jitter metric", w.o.JitterMetric})
	}
	if !w.o.NoJIT || w.seen(Compile) {
		r.Facts = append(r.Facts, Fact{"Compile metric", w.o.CompileMetric})
	}
	return r
}

// seen reports whether signal s has had a sample in this run. w.mu is held.
func (w *Watcher) seen(s Signal) bool {
	return w.det != nil && len(w.det.sig[s].samples) > 0
}
