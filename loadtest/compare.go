package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Comparison is the difference between two targets driven with the same
// sessions at the same moments.
//
// Each metric is compared interval by interval: in every interval both
// targets saw the same arrivals, so the pair of values differs by the
// targets and by noise, not by load. The change is the geometric mean of
// the per-interval ratios (compare over target, minus one), or for the
// error rate the mean of the per-interval differences; its confidence
// interval comes from a moving-block bootstrap over the intervals (blocks
// of about the cube root of their number, so that intervals correlated by
// sessions spanning them are resampled together), widened by sqrt(n/(n-1))
// for small samples. The level is family-wise: with six metrics compared,
// each interval is at 1-(1-Confidence)/6 (Bonferroni), so that two equal
// targets show no finding on any metric at the stated confidence.
type Comparison struct {
	// Baseline and Candidate are the two targets' URLs: differences are
	// Candidate's relative to Baseline's.
	Baseline  string `json:"baseline"`
	Candidate string `json:"candidate"`
	// Method describes how the intervals were computed.
	Method string `json:"method"`
	// Confidence is the level of the intervals; MinEffect the smallest
	// relative change that is a finding.
	Confidence float64 `json:"confidence"`
	MinEffect  float64 `json:"min_effect"`
	// Metrics holds one Difference per metric compared.
	Metrics []Difference `json:"metrics"`
	// Findings counts the metrics whose difference is a finding.
	Findings int `json:"findings"`
}

// Difference is one metric's difference between the targets.
type Difference struct {
	// Metric is "p50", "p90", "p99", "mean", "throughput" or "error_rate".
	Metric string `json:"metric"`
	// Unit of Baseline and Candidate: "ms", "/s" or "%".
	Unit string `json:"unit"`
	// Baseline and Candidate are the whole run's values.
	Baseline  float64 `json:"baseline"`
	Candidate float64 `json:"candidate"`
	// Change is the estimated difference: relative (0.12 is 12% higher)
	// for latency and throughput, in percentage points for the error
	// rate. Low and High bound its confidence interval.
	Change float64 `json:"change"`
	Low    float64 `json:"low"`
	High   float64 `json:"high"`
	// Pairs is the number of intervals compared; too few (under 5) and
	// no interval is given.
	Pairs int `json:"pairs"`
	// Significant is set when the interval excludes no change; Finding
	// when it is also at least MinEffect (0.1 points for the error rate).
	// Worse says the candidate is worse (slower, fewer responses, more
	// errors).
	Significant bool `json:"significant"`
	Finding     bool `json:"finding"`
	Worse       bool `json:"worse"`
	// Summary says it in a sentence.
	Summary string `json:"summary"`
}

// compareMetrics is the number of metrics a comparison tests, for the
// Bonferroni correction.
const compareMetrics = 6

// minPairs is the fewest intervals a confidence interval is computed from.
const minPairs = 5

// minPairResponses is the fewest responses each target must have in an
// interval for its median or mean latency to be compared. A tail quantile
// needs more: an interval's q-quantile is compared only when at least 5
// responses lie beyond it (100 for p99, 50 for p90), or it would be the
// interval's maximum, and two equal targets' maxima differ by chance far
// more than any effect worth reporting.
const minPairResponses = 5

// minResponses returns the fewest responses an interval needs for its
// q-quantile (0 < q < 1; 0 for the mean) to be compared.
func minResponses(q float64) int {
	if q <= 0.5 {
		return minPairResponses
	}
	return max(minPairResponses, int(math.Ceil(5/(1-q))))
}

func compare(a, b TargetResult, o *Options) *Comparison {
	level := 1 - (1-o.Confidence)/compareMetrics
	c := &Comparison{
		Baseline: a.URL, Candidate: b.URL, Confidence: o.Confidence, MinEffect: o.MinEffect,
		Method: fmt.Sprintf("paired by %v interval; geometric mean of per-interval ratios; moving-block bootstrap, %d resamples; %.0f%% family-wise (%.2f%% per metric)",
			o.Interval, o.Resamples, o.Confidence*100, level*100),
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d))
	n := min(len(a.Intervals), len(b.Intervals))
	latency := func(name string, q float64, whole func(Latency) float64, per func(Interval) float64) {
		var d []float64
		need := minResponses(q)
		for i := range n {
			x, y := a.Intervals[i], b.Intervals[i]
			if x.Responses < need || y.Responses < need || per(x) <= 0 || per(y) <= 0 {
				continue
			}
			d = append(d, math.Log(per(y)/per(x)))
		}
		diff := Difference{Metric: name, Unit: "ms", Baseline: whole(a.Latency), Candidate: whole(b.Latency)}
		relative(&diff, d, rng, o, level, "slower", "faster")
		if len(d) < minPairs {
			diff.Summary = fmt.Sprintf("too few intervals to compare %s: %d with the %d responses each it needs (a longer --interval or more load gives more)", name, len(d), need)
		}
		c.Metrics = append(c.Metrics, diff)
	}
	latency("p50", 0.5, func(l Latency) float64 { return l.P50 }, func(i Interval) float64 { return i.P50 })
	latency("p90", 0.9, func(l Latency) float64 { return l.P90 }, func(i Interval) float64 { return i.P90 })
	latency("p99", 0.99, func(l Latency) float64 { return l.P99 }, func(i Interval) float64 { return i.P99 })
	latency("mean", 0, func(l Latency) float64 { return l.Mean }, func(i Interval) float64 { return i.Mean })

	// Throughput: responses per interval, over intervals where either
	// target answered.
	var d []float64
	for i := range n {
		x, y := a.Intervals[i], b.Intervals[i]
		if x.Responses > 0 && y.Responses > 0 {
			d = append(d, math.Log(float64(y.Responses)/float64(x.Responses)))
		}
	}
	tp := Difference{Metric: "throughput", Unit: "/s", Baseline: a.ResponsesPerSecond, Candidate: b.ResponsesPerSecond}
	relative(&tp, d, rng, o, level, "lower", "higher")
	tp.Worse = tp.Finding && tp.Change < 0
	c.Metrics = append(c.Metrics, tp)

	// Error rate: per-interval differences in percentage points.
	d = d[:0]
	for i := range n {
		x, y := a.Intervals[i], b.Intervals[i]
		ox, oy := x.Started+x.Sent, y.Started+y.Sent
		if ox == 0 && oy == 0 {
			continue
		}
		d = append(d, 100*(rate(y.Failed+y.Timeouts+y.Closed, oy)-rate(x.Failed+x.Timeouts+x.Closed, ox)))
	}
	er := Difference{Metric: "error_rate", Unit: "%", Baseline: 100 * a.ErrorRate, Candidate: 100 * b.ErrorRate, Pairs: len(d)}
	if len(d) >= minPairs {
		er.Change = mean(d)
		er.Low, er.High = bootstrap(d, rng, o.Resamples, level)
		er.Significant = er.Low > 0 || er.High < 0
		er.Finding = er.Significant && math.Abs(er.Change) >= 0.1
		er.Worse = er.Finding && er.Change > 0
		ci := fmt.Sprintf("(%.0f%% CI %+.2f to %+.2f points)", o.Confidence*100, er.Low, er.High)
		switch {
		case er.Finding && er.Change > 0:
			er.Summary = fmt.Sprintf("candidate has %.2f points more errors %s", er.Change, ci)
		case er.Finding:
			er.Summary = fmt.Sprintf("candidate has %.2f points fewer errors %s", -er.Change, ci)
		default:
			er.Summary = fmt.Sprintf("no material difference in errors: %+.2f points %s", er.Change, ci)
		}
	} else {
		er.Summary = fmt.Sprintf("too few intervals to compare errors (%d)", len(d))
	}
	c.Metrics = append(c.Metrics, er)
	for _, m := range c.Metrics {
		if m.Finding {
			c.Findings++
		}
	}
	return c
}

// relative fills diff from per-interval log ratios d: the change is their
// mean, back on a ratio scale.
func relative(diff *Difference, d []float64, rng *rand.Rand, o *Options, level float64, up, down string) {
	diff.Pairs = len(d)
	if len(d) < minPairs {
		diff.Summary = fmt.Sprintf("too few intervals to compare %s (%d)", diff.Metric, len(d))
		return
	}
	lo, hi := bootstrap(d, rng, o.Resamples, level)
	diff.Change = math.Expm1(mean(d))
	diff.Low, diff.High = math.Expm1(lo), math.Expm1(hi)
	diff.Significant = diff.Low > 0 || diff.High < 0
	diff.Finding = diff.Significant && math.Abs(diff.Change) >= o.MinEffect
	diff.Worse = diff.Finding && diff.Change > 0
	word := up
	if diff.Change < 0 {
		word = down
	}
	ci := fmt.Sprintf("(%.0f%% CI %+.1f%% to %+.1f%%)", o.Confidence*100, 100*diff.Low, 100*diff.High)
	if diff.Finding {
		diff.Summary = fmt.Sprintf("candidate is %.1f%% %s at %s %s", 100*math.Abs(diff.Change), word, diff.Metric, ci)
	} else {
		diff.Summary = fmt.Sprintf("no material difference at %s: %+.1f%% %s", diff.Metric, 100*diff.Change, ci)
	}
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func mean(d []float64) float64 {
	s := 0.0
	for _, v := range d {
		s += v
	}
	return s / float64(len(d))
}

// bootstrap returns the level confidence interval of the mean of d by a
// circular moving-block bootstrap with blocks of about len(d)^(1/3), its
// percentiles widened around the mean by sqrt(n/(n-1)).
func bootstrap(d []float64, rng *rand.Rand, resamples int, level float64) (lo, hi float64) {
	n := len(d)
	block := max(1, int(math.Round(math.Cbrt(float64(n)))))
	means := make([]float64, resamples)
	for r := range means {
		s, k := 0.0, 0
		for k < n {
			start := rng.IntN(n)
			for j := 0; j < block && k < n; j++ {
				s += d[(start+j)%n]
				k++
			}
		}
		means[r] = s / float64(n)
	}
	slices.Sort(means)
	alpha := (1 - level) / 2
	m := mean(d)
	widen := math.Sqrt(float64(n) / float64(n-1))
	at := func(q float64) float64 {
		i := int(math.Floor(q * float64(len(means)-1)))
		return m + (means[min(max(i, 0), len(means)-1)]-m)*widen
	}
	return at(alpha), at(1 - alpha)
}
