package paired

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Resample draws resamples circular moving-block bootstrap resamples of n
// intervals, blocks of about n^(1/3) consecutive intervals, and calls f
// with each resample's interval indices. The slice is reused from call to
// call.
func Resample(n int, rng *rand.Rand, resamples int, f func(idx []int)) {
	block := blockLen(n)
	idx := make([]int, 0, n)
	for range resamples {
		idx = idx[:0]
		for len(idx) < n {
			start := rng.IntN(n)
			for j := 0; j < block && len(idx) < n; j++ {
				idx = append(idx, (start+j)%n)
			}
		}
		f(idx)
	}
}

// Means returns the means of d over resamples bootstrap resamples of its
// intervals.
func Means(d []float64, rng *rand.Rand, resamples int) []float64 {
	means := make([]float64, 0, resamples)
	Resample(len(d), rng, resamples, func(idx []int) {
		s := 0.0
		for _, i := range idx {
			s += d[i]
		}
		means = append(means, s/float64(len(d)))
	})
	return means
}

// Interval returns the level confidence interval of a statistic from its
// bootstrap replicates (sorted in place) and its value on the whole sample
// of n intervals: the replicates' percentiles, widened around point by
// sqrt(n/(n-1)) and by the ratio of Student's t quantile to the normal's
// at the blocks' degrees of freedom (see blockWidening).
func Interval(replicates []float64, point float64, n int, level float64) (lo, hi float64) {
	slices.Sort(replicates)
	alpha := (1 - level) / 2
	widen := math.Sqrt(float64(n)/float64(n-1)) * blockWidening(n, level)
	at := func(q float64) float64 {
		i := int(math.Floor(q * float64(len(replicates)-1)))
		return point + (replicates[min(max(i, 0), len(replicates)-1)]-point)*widen
	}
	return at(alpha), at(1 - alpha)
}

// PooledLogRatios compares statistics of two targets' responses pooled
// over intervals: base[i] and cand[i] are the values (latencies) of
// interval i. For each q of qs, a quantile (0 < q < 1) or, for 0, the
// mean, it returns the log ratio of the candidate's statistic over the
// baseline's on every interval pooled, and the level interval of that log
// ratio from resamples moving-block resamples of the intervals, each
// resample pooling the same intervals of both targets. A resample in which
// a target has no value is drawn again, up to resamples more times; ok is
// false when a target has no value at all, or no positive statistic.
func PooledLogRatios(base, cand [][]float64, qs []float64, rng *rand.Rand, resamples int, level float64) (point, lo, hi []float64, ok bool) {
	n := min(len(base), len(cand))
	pa, pb := newPool(base[:n]), newPool(cand[:n])
	if pa.total == 0 || pb.total == 0 {
		return nil, nil, nil, false
	}
	weights := make([]int, n)
	sa, sb := make([]float64, len(qs)), make([]float64, len(qs))
	stats := func(out []float64) bool {
		if !pa.stats(weights, qs, sa) || !pb.stats(weights, qs, sb) {
			return false
		}
		for k := range qs {
			if sa[k] <= 0 || sb[k] <= 0 {
				return false
			}
			out[k] = math.Log(sb[k] / sa[k])
		}
		return true
	}
	for i := range weights {
		weights[i] = 1
	}
	point = make([]float64, len(qs))
	if !stats(point) {
		return nil, nil, nil, false
	}
	reps := make([][]float64, len(qs))
	for k := range reps {
		reps[k] = make([]float64, 0, resamples)
	}
	out := make([]float64, len(qs))
	tries := 0
	for len(reps[0]) < resamples && tries < 2*resamples {
		Resample(n, rng, resamples-len(reps[0]), func(idx []int) {
			tries++
			clear(weights)
			for _, i := range idx {
				weights[i]++
			}
			if stats(out) {
				for k := range qs {
					reps[k] = append(reps[k], out[k])
				}
			}
		})
	}
	if len(reps[0]) < resamples/2 {
		return nil, nil, nil, false
	}
	lo, hi = make([]float64, len(qs)), make([]float64, len(qs))
	for k := range qs {
		lo[k], hi[k] = Interval(reps[k], point[k], n, level)
	}
	return point, lo, hi, true
}

// pool is one target's values, sorted once, so that a statistic of any
// weighting of its intervals is a scan, not a sort: the bootstrap's
// resamples differ only in how many times each interval is drawn.
type pool struct {
	sorted   []float64 // every value
	interval []int32   // the interval of sorted[j]
	sums     []float64 // the sum of each interval's values
	counts   []int     // the number of each interval's values
	total    int
}

func newPool(per [][]float64) *pool {
	p := &pool{sums: make([]float64, len(per)), counts: make([]int, len(per))}
	type v struct {
		x  float64
		iv int32
	}
	var all []v
	for i, vals := range per {
		for _, x := range vals {
			all = append(all, v{x, int32(i)})
			p.sums[i] += x
		}
		p.counts[i] = len(vals)
	}
	slices.SortFunc(all, func(a, b v) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	p.sorted, p.interval, p.total = make([]float64, len(all)), make([]int32, len(all)), len(all)
	for j, a := range all {
		p.sorted[j], p.interval[j] = a.x, a.iv
	}
	return p
}

// stats fills out with the statistics qs (quantiles by nearest rank, 0 for
// the mean) of the values of interval i counted weights[i] times; it
// reports false when no value is counted.
func (p *pool) stats(weights []int, qs []float64, out []float64) bool {
	n, sum := 0, 0.0
	for i, w := range weights {
		n += w * p.counts[i]
		sum += float64(w) * p.sums[i]
	}
	if n == 0 {
		return false
	}
	for k, q := range qs {
		if q <= 0 {
			out[k] = sum / float64(n)
			continue
		}
		rank := max(int(math.Ceil(q*float64(n))), 1) // of the value, from the smallest
		out[k] = p.sorted[len(p.sorted)-1]
		if q <= 0.5 {
			seen := 0
			for j, iv := range p.interval {
				if seen += weights[iv]; seen >= rank {
					out[k] = p.sorted[j]
					break
				}
			}
			continue
		}
		// A tail quantile is nearer the top: count down to it.
		above := 0
		for j := len(p.interval) - 1; j >= 0; j-- {
			if above += weights[p.interval[j]]; above > n-rank {
				out[k] = p.sorted[j]
				break
			}
		}
	}
	return true
}

// Statistic returns the q-quantile of sorted s (nearest rank), or its
// mean for q 0. s must not be empty.
func Statistic(s []float64, q float64) float64 {
	if q <= 0 {
		return mean(s)
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
