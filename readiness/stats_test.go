package readiness

import (
	"math"
	"testing"
)

func TestTheilSen(t *testing.T) {
	f := func(name string, xs, ys []float64, want float64) {
		t.Helper()
		if got := theilSen(xs, ys); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: slope %v, want %v", name, got, want)
		}
	}
	xs := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	line := make([]float64, len(xs))
	for i, x := range xs {
		line[i] = 2*x + 1
	}
	f("line", xs, line, 2)
	outliers := append([]float64(nil), line...)
	outliers[3], outliers[7] = 100, -50
	f("line with two outliers", xs, outliers, 2)
	f("constant", xs, []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, 0)
	f("decreasing", []float64{0, 2, 4}, []float64{10, 6, 2}, -2)
	f("one point", []float64{1}, []float64{1}, 0)
	f("same x", []float64{1, 1}, []float64{1, 3}, 0)
}

func TestMannKendall(t *testing.T) {
	f := func(name string, ys []float64, wantS int, wantVar, wantP float64, significant bool) {
		t.Helper()
		r := mannKendall(ys)
		if r.S != wantS {
			t.Errorf("%s: S = %d, want %d", name, r.S, wantS)
		}
		if wantVar >= 0 && math.Abs(r.Var-wantVar) > 1e-9 {
			t.Errorf("%s: Var = %v, want %v", name, r.Var, wantVar)
		}
		if wantP >= 0 && math.Abs(r.P-wantP) > 1e-3 {
			t.Errorf("%s: P = %v, want %v", name, r.P, wantP)
		}
		if (r.P < 0.05) != significant {
			t.Errorf("%s: P = %v, significant want %v", name, r.P, significant)
		}
	}
	dec := make([]float64, 10)
	for i := range dec {
		dec[i] = float64(10 - i)
	}
	// n=10: Var = 10*9*25/18 = 125; Z = (-45+1)/sqrt(125) = -3.9354.
	f("strictly decreasing", dec, -45, 125, 8.3e-5, true)
	f("constant", []float64{3, 3, 3, 3, 3, 3, 3, 3}, 0, 0, 1, false)
	// Ties: [1 2 2 3]: S = 5, Var = (4*3*13 - 2*1*9)/18 = 7.6667,
	// Z = 4/sqrt(7.6667) = 1.4446, P = 0.1486.
	f("with ties", []float64{1, 2, 2, 3}, 5, 138.0/18, 0.1486, false)
	f("increasing with ties", []float64{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6}, 60, -1, -1, true)
	f("alternating", []float64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, 5, -1, -1, false)
	f("five increasing", []float64{1, 2, 3, 4, 5}, 10, 50.0/3, 0.0275, true)
}

func TestNearestRank(t *testing.T) {
	s := make([]float64, 20)
	for i := range s {
		s[i] = float64(i + 1)
	}
	if got := nearestRank(s, 0.95); got != 19 {
		t.Errorf("p95 of 1..20 = %v, want 19 (the largest ignored)", got)
	}
	if got := nearestRank(s[:1], 0.95); got != 1 {
		t.Errorf("p95 of one = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}
