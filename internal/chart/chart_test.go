package chart

import (
	"slices"
	"testing"
)

func TestScalePos(t *testing.T) {
	lin := Scale{Lo: 0, Hi: 10, P0: 100, P1: 200}
	log := Scale{Lo: 1, Hi: 1000, P0: 0, P1: 300, Log: true}
	for _, c := range []struct {
		s    Scale
		v, p float64
	}{{lin, 0, 100}, {lin, 5, 150}, {lin, 20, 200}, {lin, -1, 100}, {log, 10, 100}, {log, 100, 200}, {log, 0, 0}} {
		if got := c.s.Pos(c.v); got != c.p {
			t.Errorf("%+v.Pos(%v) = %v, want %v", c.s, c.v, got, c.p)
		}
	}
}

func TestDownsampleKeepsExtremes(t *testing.T) {
	pts := make([][2]float64, 10000)
	for i := range pts {
		pts[i] = [2]float64{float64(i), float64(i % 7)}
	}
	pts[4321][1] = 1e6
	got := Downsample(pts, 100, func(p [2]float64) float64 { return p[1] })
	if len(got) > 100 || !slices.Contains(got, pts[4321]) {
		t.Fatalf("%d points, spike kept %v", len(got), slices.Contains(got, pts[4321]))
	}
	if short := pts[:50]; len(Downsample(short, 100, func(p [2]float64) float64 { return p[1] })) != 50 {
		t.Error("a series within the bound was reduced")
	}
}

func TestValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0 ms", 1.5: "1.5 ms", 0.00012: "0.00012 ms", 12345678: "1.235e+07 ms"} {
		if got := Value(v, "ms"); got != want {
			t.Errorf("Value(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTicksAtNiceSteps(t *testing.T) {
	f := func(lo, hi float64, n int, want ...string) {
		t.Helper()
		var got []string
		for _, tk := range LinearTicks(lo, hi, n) {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, want) {
			t.Errorf("LinearTicks(%g, %g, %d) = %q, want %q", lo, hi, n, got, want)
		}
	}
	f(0, 1, 5, "0.0", "0.2", "0.4", "0.6", "0.8", "1.0")
	f(0, 58.5, 8, "0", "10", "20", "30", "40", "50")
	f(-20, 60, 8, "-20", "-10", "0", "10", "20", "30", "40", "50", "60")
	f(0, 0.013, 5, "0.000", "0.005", "0.010")
	f(0, 950, 5, "0", "200", "400", "600", "800")
	f(3, 3, 5, "3", "3")

	g := func(lo, hi float64, want ...string) {
		t.Helper()
		ticks, _, _ := LogTicks(lo, hi)
		var got []string
		for _, tk := range ticks {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, want) {
			t.Errorf("LogTicks(%g, %g) = %q, want %q", lo, hi, got, want)
		}
	}
	g(0.002, 1.5, "0.001", "0.01", "0.1", "1", "10")
	g(0.2, 30, "0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100")
	g(1e-300, 1e300, "1e-300", "1e-240", "1e-180", "1e-120", "1e-60", "1", "1e+60", "1e+120", "1e+180", "1e+240", "1e+300")
	g(1, 1e5, "1", "10", "100", "1000", "10000", "100000")
}
