package readiness

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Default metric names, as exported by common JVM instrumentation.
const (
	DefaultJitterMetric  = "jvm_scheduler_jitter_seconds"
	DefaultCompileMetric = "jvm_compilation_time_ms_total"
)

// Defaults of Options that callers offer as their own (preheat warm's
// flags), so that each lives in one place. Their fields' comments say why.
const (
	DefaultInterval       = time.Second      // Options.Interval
	DefaultWindow         = 10 * time.Second // Options.Window
	DefaultHoldTolerance  = 2.0              // Options.HoldTolerance
	DefaultMinWarm        = 30 * time.Second // Options.MinWarm
	DefaultMaxWarm        = 10 * time.Minute // Options.MaxWarm
	DefaultJitterQuantile = 0.99             // Options.JitterQuantile
	DefaultMaxCompileRate = 20.0             // Options.MaxCompileRate, ms/s
)

// Options configure a Watcher and the Detector inside it. A nil *Options is
// valid and means every default; a zero field means its default.
type Options struct {
	// Interval is how often the target is scraped (if there is a metrics
	// URL) and the detector evaluated. Default 1s.
	Interval time.Duration
	// ScrapeTimeout bounds one scrape, connect to last byte. Default 5s; a
	// cold JVM can be slow to answer, and a slow scrape only delays the next.
	ScrapeTimeout time.Duration
	// MaxBodyBytes bounds a scrape's body; a larger body is a counted scrape
	// error. Default 16 MiB.
	MaxBodyBytes int64
	// Header is added to every scrape request. Default none.
	Header http.Header
	// BearerToken, if set, is sent as "Authorization: Bearer <token>" on
	// scrapes. Default none.
	BearerToken string
	// HTTPClient performs scrapes. Default a client of its own with
	// http.DefaultTransport; its Timeout is not needed (ScrapeTimeout
	// applies).
	HTTPClient *http.Client

	// JitterMetric names the scheduler jitter family, in seconds: a
	// histogram (classic le buckets, or VictoriaMetrics vmrange buckets in a
	// <name>_bucket family), a summary, or a gauge. Default
	// DefaultJitterMetric.
	JitterMetric string
	// JitterQuantile is the quantile taken from a jitter histogram over
	// each scrape interval's bucket deltas, or picked from a summary.
	// Default 0.99.
	JitterQuantile float64
	// JitterLabels, if set, keeps only the jitter series carrying all these
	// label values. Default every series: histograms are summed, gauges
	// take the maximum.
	JitterLabels map[string]string
	// CompileMetric names the JIT compile time counter, in milliseconds.
	// Its rate over RateWindow, in ms/s, is the compile signal. A family
	// that is absent is not a rate of zero: it holds the release until the
	// deadline, unless NoJIT is set. Default DefaultCompileMetric.
	CompileMetric string
	// NoJIT says the target has no JIT compiler (Node, Go, Python, or a
	// JVM run with -Xint on purpose): the decision rests on replay latency
	// and on whatever jitter the target exposes (Node's event-loop lag,
	// nodejs_eventloop_lag_seconds, named as JitterMetric, say). A missing
	// compile metric does not hold it, no scraped signal is required, and
	// replay latency alone can release; with no signal present at all it
	// never does, and the deadline decides. NewWatcher then accepts an
	// empty metrics URL and scrapes nothing. Signals never seen are left
	// out of the Report and of the decision's reason. Default false.
	NoJIT bool
	// CompileLabels, if set, keeps only the compile series carrying all
	// these label values. Default every series, summed.
	CompileLabels map[string]string
	// LatencyQuantile is the quantile of the replay latencies observed in
	// each interval that forms the latency signal. Default 0.5: the median
	// is steady enough to judge with few observations per interval.
	LatencyQuantile float64

	// RateWindow is the span the compile rate is measured over at each
	// interval, like PromQL's rate(x[10s]): the counter's increase across
	// it, divided by its length. (Jitter is measured over each interval
	// alone: smoothing it would make the trend test see trends in noise.)
	// A JIT compiles in bursts
	// (one C2 compile is tens to hundreds of milliseconds of work), so a
	// rate over one scrape interval swings between zero and far over any
	// limit; over 10 s, an occasional late compile of a rare path reads as
	// the trickle it is, while a wave still stands out. Default 10s, but
	// at most Window.
	RateWindow time.Duration
	// Window is the sliding window each signal is judged over. With
	// RateWindow and Hold it must outlast the lull between JIT compile waves
	// (C1, then C2), or a lull looks flat: the compile rate over 10 s stays
	// up for 10 s after a wave, and Window and Hold add theirs, so a lull
	// under about 30 s cannot release. Default 10s: on a real JVM (Java 17,
	// 46 resolvers; docs/benchmarks-jvm.md) the waves overlap, the rate
	// stayed under its limit once under it in 13 runs of 14 (bar a settled
	// JIT's bumps just over it: see HoldTolerance), and 30s/30s
	// released only one run of six within two minutes. The library accepts
	// any positive window, so that tests can run fast; the CLI rejects less
	// than 10s.
	Window time.Duration
	// Hold is how long every present signal must stay judged flat, at every
	// evaluation without a break, before the target is warm. Together with
	// Window it means a lull shorter than Window+Hold cannot release.
	// Default Window; negative means no hold.
	Hold time.Duration
	// HoldTolerance widens every limit (MaxJitter, MaxCompileRate,
	// MaxLatency, and the compile rate judged at full load) by this factor
	// once every signal is flat, until one is not (through the hold, and
	// any wait for MinWarm after it): a signal turns flat under its limit,
	// and the hold then breaks on a value over limit times HoldTolerance,
	// on a trend, or on a stale signal. A compile rate under the widened
	// limit is settling, whatever its trend, as under the limit itself. A
	// JIT that has settled keeps a tail of late compiles whose 10-second
	// rate hovers around the limit (3 to 37 ms/s on the JVM fixture), while
	// a wave of compiles runs at many times it (85 to 800 ms/s); with a
	// strict hold one such bump restarted the window and the hold and
	// released 1.34 to 1.92 times as late as the compile rate had settled
	// in 6 runs of 30 (docs/benchmarks-jvm.md). The release still needs a
	// whole window of every signal under its own limit first, then the
	// hold under the widened one. Default 2; 1 is a strict hold; less than
	// 1, NaN or infinite is invalid.
	HoldTolerance float64
	// MinWarm is the earliest release after the run starts. Default 30s;
	// see NoMinWarm for none.
	MinWarm time.Duration
	// NoMinWarm lets the target be released as soon as its signals allow,
	// however early: MinWarm is then 0 whatever it was set to. Default
	// false.
	NoMinWarm bool
	// MaxWarm is the deadline: the run ends then, warm or not, under the
	// FailClosed policy. Default 10m.
	MaxWarm time.Duration
	// MinResponses is how many replay responses (Watcher.ObserveLatency,
	// Detector.SetResponses) must have been observed before the target can
	// be warm; Hold counts from then. An idle target's signals are as flat
	// as a warm one's: without it, a warm-up whose source ran dry would
	// release a pod it never warmed. Default 0, no minimum, because the
	// detector sees only what its caller reports; preheat warm sets 500.
	MinResponses int
	// MinSamples is how many samples a signal needs inside the window to be
	// judged. Default half the samples the window holds at Interval, but
	// at least 5 (the fewest for which Mann-Kendall can be significant).
	MinSamples int
	// Alpha is the Mann-Kendall significance level. Default 0.01, not the
	// textbook 0.05: the test is repeated every Interval and every present
	// signal must pass it at every evaluation through Hold, so at 0.05 pure
	// noise around a constant reset the hold often enough to double the
	// median release time in the noisy-flat test; real warm-up decays are
	// far more significant than 0.01.
	Alpha float64
	// MaxDrift is the largest change across the window, estimated by the
	// Theil-Sen slope times Window, that is not a trend, as a fraction of
	// the signal's level (its median, but at least a quarter of its
	// threshold). Default 0.15.
	MaxDrift float64
	// JitterDriftFloor and LatencyDriftFloor are the smallest changes
	// across the window that count as a trend of jitter and of replay
	// latency, whatever their level: a warm JVM's latency of 0.4 ms
	// drifting by 0.09 ms is significant and 20% of its level, and matters
	// to nobody. Defaults 5ms and 0.5ms.
	JitterDriftFloor, LatencyDriftFloor time.Duration
	// MaxJitter is the limit, in seconds, that the jitter signal's 95th
	// percentile over the window must be under. Negative means no limit:
	// jitter is judged on its flatness alone. Default no limit: on a busy
	// node a warm JVM's jitter p99 sat at 30 to 90 ms with spikes of
	// seconds (docs/benchmarks-jvm.md), so any limit that a cold JVM
	// exceeds is one a warm JVM on a busy node exceeds too; the compile
	// rate is the clean signal. Set it (0.02, say) where nodes are quiet.
	MaxJitter float64
	// MaxCompileRate is the limit, in milliseconds of JIT compile time per
	// second, that the compile signal's 95th percentile over the window
	// must be under. Default 20: 2% of one core, where a cold JVM compiles
	// at hundreds to thousands of ms/s and a warm one only trickles
	// recompilations. Negative means no limit.
	MaxCompileRate float64
	// LoadShare, when set, reports the share of its full message rate that
	// the warm-up replay is allowed at the moment: 1 when nothing holds it
	// back, less while a back-off (on the target's latency or errors, or on
	// the node's CPU pressure) holds it down. (preheat warm reports 1 while
	// the replay sends well under its limit for reasons of its own.) The
	// watcher reads it at every evaluation. While the share is under 1,
	// the compile signal is judged at full load: its latest rate, divided
	// by the share's mean over RateWindow, must be under MaxCompileRate
	// (times HoldTolerance while the hold runs) too. A JIT compiles a method
	// once it has run some number of times, not after some time, so a pod
	// replayed at a twentieth of the rate compiles at about a twentieth of
	// the rate for twenty times as long, and its compile rate is under the
	// limit long before it is warm. On a real JVM (docs/benchmarks-jvm.md)
	// warm-ups held at their floor by CPU pressure were released after
	// 1,400 to 9,000 messages and left 1.1 to 3.0 s of compiles to the
	// first 15 s of real traffic, against 0.17 to 0.39 s after full-rate
	// warm-ups. A target held down for good (a node whose CPU pressure
	// never falls) is then released by MaxWarm, or never under FailClosed.
	// Default nil: the compile rate is judged as scraped.
	LoadShare func() float64
	// MaxLatency is the limit, in milliseconds, for the replay latency
	// signal. Default 0, no limit: latency depends on the application, so
	// only its flatness is judged.
	MaxLatency float64
	// FailClosed makes the deadline not release the target (outcome
	// "deadline_closed"). Default false, fail open (outcome
	// "deadline_open"): warming is an optimisation, and a target that never
	// becomes ready would stall a rolling deploy on a broken metrics
	// endpoint; a cold pod serves slowly but serves.
	FailClosed bool

	// Logger receives scrape error streaks and decisions. Default
	// slog.Default().
	Logger *slog.Logger
	// Metrics receives the preheat_readiness_* metrics. Default a private
	// set that nobody serves.
	Metrics *metrics.Set
}

// withDefaults returns a copy of o with every unset field defaulted.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, DefaultInterval)
	def(&c.ScrapeTimeout, 5*time.Second)
	def(&c.Window, DefaultWindow)
	def(&c.Hold, c.Window)
	def(&c.RateWindow, min(10*time.Second, c.Window))
	if c.NoMinWarm {
		c.MinWarm = 0
	} else {
		def(&c.MinWarm, DefaultMinWarm)
	}
	def(&c.MaxWarm, DefaultMaxWarm)
	if c.Hold < 0 {
		c.Hold = 0
	}
	if c.HoldTolerance == 0 {
		c.HoldTolerance = DefaultHoldTolerance
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.JitterMetric == "" {
		c.JitterMetric = DefaultJitterMetric
	}
	if c.JitterQuantile == 0 {
		c.JitterQuantile = DefaultJitterQuantile
	}
	if c.CompileMetric == "" {
		c.CompileMetric = DefaultCompileMetric
	}
	if c.LatencyQuantile == 0 {
		c.LatencyQuantile = 0.5
	}
	if c.MinSamples == 0 && c.Interval > 0 {
		c.MinSamples = max(5, int(c.Window/c.Interval)/2)
	}
	if c.Alpha == 0 {
		c.Alpha = 0.01
	}
	if c.MaxDrift == 0 {
		c.MaxDrift = 0.15
	}
	if c.MaxJitter == 0 {
		c.MaxJitter = -1
	}
	if c.JitterDriftFloor == 0 {
		c.JitterDriftFloor = 5 * time.Millisecond
	}
	if c.LatencyDriftFloor == 0 {
		c.LatencyDriftFloor = 500 * time.Microsecond
	}
	if c.MaxCompileRate == 0 {
		c.MaxCompileRate = DefaultMaxCompileRate
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// validate reports the first unusable setting of a defaulted copy.
func (c *Options) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", c.Interval}, {"scrape timeout", c.ScrapeTimeout}, {"window", c.Window}, {"rate window", c.RateWindow}, {"max warm", c.MaxWarm}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", d.name, d.v))
		}
	}
	if c.MinWarm < 0 {
		errs = append(errs, fmt.Errorf("min warm %v must not be negative", c.MinWarm))
	}
	if c.MinResponses < 0 {
		errs = append(errs, fmt.Errorf("min responses %d must not be negative", c.MinResponses))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d must not be negative", c.MaxBodyBytes))
	}
	for _, q := range []struct {
		name string
		v    float64
	}{{"jitter quantile", c.JitterQuantile}, {"latency quantile", c.LatencyQuantile}, {"alpha", c.Alpha}} {
		if !(q.v > 0 && q.v < 1) {
			errs = append(errs, fmt.Errorf("%s %v must be between 0 and 1", q.name, q.v))
		}
	}
	if !(c.HoldTolerance >= 1) || math.IsInf(c.HoldTolerance, 0) {
		errs = append(errs, fmt.Errorf("hold tolerance %v must be a finite factor of at least 1", c.HoldTolerance))
	}
	if c.MaxDrift < 0 {
		errs = append(errs, fmt.Errorf("max drift %v must not be negative", c.MaxDrift))
	}
	if c.MinSamples < 2 {
		errs = append(errs, fmt.Errorf("min samples %d must be at least 2", c.MinSamples))
	} else if c.Interval > 0 && int64(c.Window/c.Interval) < int64(c.MinSamples) {
		errs = append(errs, fmt.Errorf("window %v holds %d samples at interval %v, fewer than min samples %d",
			c.Window, c.Window/c.Interval, c.Interval, c.MinSamples))
	}
	return errors.Join(errs...)
}
