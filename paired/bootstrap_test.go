package paired

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPoolStats: a statistic of weighted intervals from the sorted pool is
// the statistic of the values pooled by hand and sorted.
func TestPoolStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	per := make([][]float64, 30)
	for i := range per {
		for range rng.IntN(20) {
			per[i] = append(per[i], math.Round(rng.ExpFloat64()*100)/10) // ties too
		}
	}
	p := newPool(per)
	qs := []float64{0.5, 0.9, 0.99, 0, 0.01}
	for range 200 {
		weights := make([]int, len(per))
		var pooled []float64
		for range len(per) {
			i := rng.IntN(len(per))
			weights[i]++
			pooled = append(pooled, per[i]...)
		}
		out := make([]float64, len(qs))
		if ok := p.stats(weights, qs, out); ok != (len(pooled) > 0) {
			t.Fatalf("stats ok %v with %d values", ok, len(pooled))
		}
		if len(pooled) == 0 {
			continue
		}
		slices.Sort(pooled)
		for k, q := range qs {
			if want := Statistic(pooled, q); math.Abs(out[k]-want) > 1e-9 {
				t.Fatalf("q %v: %v, want %v", q, out[k], want)
			}
		}
	}
}

// TestPooledLogRatios: a candidate 30% slower throughout is found so at
// every statistic; the same values are not told apart.
func TestPooledLogRatios(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base, slow, same := make([][]float64, 60), make([][]float64, 60), make([][]float64, 60)
	for i := range base {
		for range 50 {
			base[i] = append(base[i], math.Exp(rng.NormFloat64()*0.5))
			x := math.Exp(rng.NormFloat64() * 0.5)
			slow[i] = append(slow[i], 1.3*x)
			same[i] = append(same[i], x)
		}
	}
	qs := []float64{0.5, 0.9, 0.99, 0}
	point, lo, hi, ok := PooledLogRatios(base, slow, qs, rng, 1000, 0.99)
	if !ok {
		t.Fatal("not ok")
	}
	for k, q := range qs {
		if lo[k] <= 0 || hi[k] <= lo[k] || math.Abs(point[k]-math.Log(1.3)) > 0.15 {
			t.Errorf("q %v 30%% slower: %.3f [%.3f, %.3f], want about %.3f", q, point[k], lo[k], hi[k], math.Log(1.3))
		}
	}
	point, lo, hi, _ = PooledLogRatios(base, same, qs, rng, 1000, 0.99)
	for k, q := range qs {
		if lo[k] > 0 || hi[k] < 0 {
			t.Errorf("q %v equal: %.3f [%.3f, %.3f]", q, point[k], lo[k], hi[k])
		}
	}
	if _, _, _, ok := PooledLogRatios(base, make([][]float64, 60), qs, rng, 100, 0.99); ok {
		t.Error("ok with a target that has no value")
	}
}
