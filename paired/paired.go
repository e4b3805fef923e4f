package paired

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Difference is one metric's difference between two targets: the
// candidate's relative to the baseline's.
type Difference struct {
	// Metric names what was compared: "p50", "p90", "p99", "mean",
	// "throughput" or "error_rate".
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
	// Pairs is the number of intervals compared; too few (under MinPairs)
	// and no interval is given.
	Pairs int `json:"pairs"`
	// Significant is set when the interval excludes no change; Finding
	// when it is also at least the minimum effect (MinPoints for the
	// error rate). Worse says the candidate is worse (slower, fewer
	// responses, more errors).
	Significant bool `json:"significant"`
	Finding     bool `json:"finding"`
	Worse       bool `json:"worse"`
	// Summary says it in a sentence.
	Summary string `json:"summary"`
}

// MinPairs is the fewest intervals a confidence interval is computed from.
const MinPairs = 5

// MinPoints is the smallest difference in error rate, in percentage
// points, that is a finding.
const MinPoints = 0.1

// minSample is the fewest responses a median or a mean is compared on.
const minSample = 5

// MinResponses returns the fewest responses a q-quantile (0 < q < 1; 0 for
// the mean) is compared on: at least 5 must lie beyond it (100 for p99, 50
// for p90), or it would be the sample's maximum, and two equal targets'
// maxima differ by chance far more than any effect worth reporting. The
// load test applies it to each interval, a pooled comparison to the pool.
func MinResponses(q float64) int {
	if q <= 0.5 {
		return minSample
	}
	return max(minSample, int(math.Ceil(5/(1-q))))
}

// Level returns the confidence level of each of m comparisons for the
// family of them to hold at confidence (Bonferroni): with six metrics at
// 0.95, each is at 1-0.05/6, so that two equal targets show no finding on
// any metric at the stated confidence.
func Level(confidence float64, m int) float64 {
	return 1 - (1-confidence)/float64(max(m, 1))
}

// Rule is how a comparison judges and words its Differences.
type Rule struct {
	// Confidence is the family-wise level stated in the sentences; Level
	// the level of each interval (see Level).
	Confidence, Level float64
	// MinEffect is the smallest relative change that is a finding.
	MinEffect float64
	// Resamples is the number of bootstrap resamples of each interval.
	Resamples int
}

// Relative fills diff from per-interval log ratios d (candidate over
// baseline): the change is their mean, back on a ratio scale, its interval
// the bootstrap's. up and down word a rise and a fall ("slower",
// "faster").
func (r Rule) Relative(diff *Difference, d []float64, rng *rand.Rand, up, down string) {
	diff.Pairs = len(d)
	if len(d) < MinPairs {
		diff.Summary = fmt.Sprintf("too few intervals to compare %s (%d)", diff.Metric, len(d))
		return
	}
	lo, hi := Interval(Means(d, rng, r.Resamples), mean(d), len(d), r.Level)
	r.Judge(diff, mean(d), lo, hi, up, down)
}

// Judge fills diff's change, interval, verdict and sentence from a log
// ratio (candidate over baseline) and its interval's bounds.
func (r Rule) Judge(diff *Difference, logChange, logLow, logHigh float64, up, down string) {
	diff.Change = math.Expm1(logChange)
	diff.Low, diff.High = math.Expm1(logLow), math.Expm1(logHigh)
	diff.Significant = diff.Low > 0 || diff.High < 0
	diff.Finding = diff.Significant && math.Abs(diff.Change) >= r.MinEffect
	diff.Worse = diff.Finding && diff.Change > 0
	word := up
	if diff.Change < 0 {
		word = down
	}
	ci := fmt.Sprintf("(%.0f%% CI %+.1f%% to %+.1f%%)", r.Confidence*100, 100*diff.Low, 100*diff.High)
	if diff.Finding {
		diff.Summary = fmt.Sprintf("candidate is %.1f%% %s at %s %s", 100*math.Abs(diff.Change), word, diff.Metric, ci)
	} else {
		diff.Summary = fmt.Sprintf("no material difference at %s: %+.1f%% %s", diff.Metric, 100*diff.Change, ci)
	}
}

// Points fills diff from per-interval differences d in percentage points
// (the candidate's error rate minus the baseline's): the change is their
// mean; a finding is at least MinPoints.
func (r Rule) Points(diff *Difference, d []float64, rng *rand.Rand) {
	diff.Pairs = len(d)
	if len(d) < MinPairs {
		diff.Summary = fmt.Sprintf("too few intervals to compare errors (%d)", len(d))
		return
	}
	diff.Change = mean(d)
	diff.Low, diff.High = Interval(Means(d, rng, r.Resamples), diff.Change, len(d), r.Level)
	diff.Significant = diff.Low > 0 || diff.High < 0
	diff.Finding = diff.Significant && math.Abs(diff.Change) >= MinPoints
	diff.Worse = diff.Finding && diff.Change > 0
	ci := fmt.Sprintf("(%.0f%% CI %+.2f to %+.2f points)", r.Confidence*100, diff.Low, diff.High)
	switch {
	case diff.Finding && diff.Change > 0:
		diff.Summary = fmt.Sprintf("candidate has %.2f points more errors %s", diff.Change, ci)
	case diff.Finding:
		diff.Summary = fmt.Sprintf("candidate has %.2f points fewer errors %s", -diff.Change, ci)
	default:
		diff.Summary = fmt.Sprintf("no material difference in errors: %+.2f points %s", diff.Change, ci)
	}
}

func mean(d []float64) float64 {
	s := 0.0
	for _, v := range d {
		s += v
	}
	return s / float64(len(d))
}
