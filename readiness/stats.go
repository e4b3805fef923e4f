package readiness

import (
	"math"
	"slices"
)

// theilSen returns the Theil-Sen slope of ys over xs: the median of the
// slopes between every pair of points with distinct x. It is robust to up to
// about 29% of outliers, which matters for jitter (GC pauses) and latency.
// It returns 0 for fewer than two distinct xs.
func theilSen(xs, ys []float64) float64 {
	n := min(len(xs), len(ys))
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := range n {
		for j := i + 1; j < n; j++ {
			dx := xs[j] - xs[i]
			if dx == 0 {
				continue
			}
			slopes = append(slopes, (ys[j]-ys[i])/dx)
		}
	}
	if len(slopes) == 0 {
		return 0
	}
	return median(slopes)
}

// mkResult is the outcome of a Mann-Kendall trend test.
type mkResult struct {
	S   int     // sum of the signs of all later-minus-earlier differences
	Var float64 // variance of S under no trend, corrected for ties
	Z   float64 // normal score, with continuity correction
	P   float64 // two-sided p-value
}

// mannKendall runs the Mann-Kendall test for a monotonic trend on ys, taken
// to be in time order. Ties are corrected for in the variance; a series of
// all-equal values has no trend (P = 1).
func mannKendall(ys []float64) mkResult {
	n := len(ys)
	s := 0
	for i := range n {
		for j := i + 1; j < n; j++ {
			switch {
			case ys[j] > ys[i]:
				s++
			case ys[j] < ys[i]:
				s--
			}
		}
	}
	sorted := slices.Clone(ys)
	slices.Sort(sorted)
	var ties float64
	for i := 0; i < n; {
		j := i + 1
		for j < n && sorted[j] == sorted[i] {
			j++
		}
		if t := float64(j - i); t > 1 {
			ties += t * (t - 1) * (2*t + 5)
		}
		i = j
	}
	fn := float64(n)
	v := (fn*(fn-1)*(2*fn+5) - ties) / 18
	r := mkResult{S: s, Var: v, P: 1}
	if v <= 0 || s == 0 {
		return r
	}
	if s > 0 {
		r.Z = float64(s-1) / math.Sqrt(v)
	} else {
		r.Z = float64(s+1) / math.Sqrt(v)
	}
	r.P = math.Erfc(math.Abs(r.Z) / math.Sqrt2)
	return r
}

// median returns the median of vs, reordering vs. It returns NaN for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	slices.Sort(vs)
	m := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[m]
	}
	return (vs[m-1] + vs[m]) / 2
}

// nearestRank returns the q-quantile of sorted by the nearest-rank method,
// so that the 0.95-quantile of 20 values ignores only the largest one.
func nearestRank(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
