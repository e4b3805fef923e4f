package paired

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestTQuantile: the expansion is within 1% of Student's t from 5 degrees
// of freedom (values from a table).
func TestTQuantile(t *testing.T) {
	for _, c := range []struct{ p, df, want float64 }{
		{0.975, 5, 2.5706}, {0.995, 5, 4.0321}, {0.9995, 10, 4.5869}, {0.995, 14, 2.9768},
		{0.975, 30, 2.0423}, {0.99975, 19, 4.1869}, {0.975, 1e9, 1.9600},
	} {
		if got := tQuantile(c.p, c.df); math.Abs(got/c.want-1) > 0.01 {
			t.Errorf("t(%v, %v df) = %.4f, want %.4f", c.p, c.df, got, c.want)
		}
	}
}

// TestIntervalCoverage: for two equal targets, intervals exclude no change
// about as often as their level says, not more: over 60 intervals and
// over 20, at 95% and at 99%. (Before the t widening 60 intervals gave
// 7% and 2.5%.)
func TestIntervalCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{20, 60} {
		const runs = 1000
		var excluded [2]int
		for range runs {
			d := make([]float64, n)
			for i := range d {
				d[i] = rng.NormFloat64()
			}
			means := Means(d, rng, 1000)
			for k, level := range []float64{0.95, 0.99} {
				if lo, hi := Interval(means, mean(d), n, level); lo > 0 || hi < 0 {
					excluded[k]++
				}
			}
		}
		// Binomial noise on 1000 runs: 50±14 and 10±6 at three sigma.
		if excluded[0] > 64 || excluded[1] > 16 {
			t.Errorf("%d intervals: no change excluded in %d (95%%) and %d (99%%) of %d runs, want about 50 and 10", n, excluded[0], excluded[1], runs)
		}
	}
}
