package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/preheatdev/preheat/paired"
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
// and by Student's t over the blocks' degrees of freedom for small samples
// (package paired, which the canary shares). The level is family-wise:
// with six metrics compared, each interval is at 1-(1-Confidence)/6
// (Bonferroni), so that two equal targets show no finding on any metric
// at the stated confidence.
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

// Difference is one metric's difference between the targets (package
// paired, which the canary shares).
type Difference = paired.Difference

// compareMetrics is the number of metrics a comparison tests, for the
// Bonferroni correction.
const compareMetrics = 6

func compare(a, b TargetResult, o *Options) *Comparison {
	level := paired.Level(o.Confidence, compareMetrics)
	rule := paired.Rule{Confidence: o.Confidence, Level: level, MinEffect: o.MinEffect, Resamples: o.Resamples}
	c := &Comparison{
		Baseline: a.URL, Candidate: b.URL, Confidence: o.Confidence, MinEffect: o.MinEffect,
		Method: fmt.Sprintf("paired by %v interval; geometric mean of per-interval ratios; moving-block bootstrap, %d resamples; %.0f%% family-wise (%.2f%% per metric)",
			o.Interval, o.Resamples, o.Confidence*100, level*100),
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d))
	n := min(len(a.Intervals), len(b.Intervals))
	latency := func(name string, q float64, whole func(Latency) float64, per func(Interval) float64) {
		var d []float64
		need := paired.MinResponses(q)
		for i := range n {
			x, y := a.Intervals[i], b.Intervals[i]
			if x.Responses < need || y.Responses < need || per(x) <= 0 || per(y) <= 0 {
				continue
			}
			d = append(d, math.Log(per(y)/per(x)))
		}
		diff := Difference{Metric: name, Unit: "ms", Baseline: whole(a.Latency), Candidate: whole(b.Latency)}
		rule.Relative(&diff, d, rng, "slower", "faster")
		if len(d) < paired.MinPairs {
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
	rule.Relative(&tp, d, rng, "lower", "higher")
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
	er := Difference{Metric: "error_rate", Unit: "%", Baseline: 100 * a.ErrorRate, Candidate: 100 * b.ErrorRate}
	rule.Points(&er, d, rng)
	c.Metrics = append(c.Metrics, er)
	for _, m := range c.Metrics {
		if m.Finding {
			c.Findings++
		}
	}
	return c
}

// Worse reports whether the candidate was found worse than the baseline on
// any metric. A nil Comparison found nothing.
func (c *Comparison) Worse() bool {
	if c == nil {
		return false
	}
	for _, m := range c.Metrics {
		if m.Worse {
			return true
		}
	}
	return false
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}
