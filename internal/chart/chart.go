// Package chart holds the primitives of the inline SVG charts in preheat's
// HTML reports: scales that map data onto pixels (linear or logarithmic),
// nice tick values and their labels, number formatting, and downsampling
// that keeps spikes. It draws nothing and does no I/O: the reports lay out
// their own SVG in html/template, which escapes every label.
package chart

import (
	"math"
	"strconv"
	"strings"
)

// Scale maps a data interval [Lo, Hi] onto the pixel interval from P0 to
// P1, linearly or, when Log is set, by decimal logarithm.
type Scale struct {
	Lo, Hi float64
	P0, P1 float64
	Log    bool
}

// Pos returns the pixel position of v, clamped to the scale's pixel range
// and rounded to a tenth. Values a log scale cannot show (zero and below)
// land on its floor.
func (s Scale) Pos(v float64) float64 {
	var f float64
	if s.Log {
		if v <= 0 {
			return Round(s.P0)
		}
		f = (math.Log10(v) - math.Log10(s.Lo)) / (math.Log10(s.Hi) - math.Log10(s.Lo))
	} else {
		// Halving first keeps hi-lo finite for spans near the float64 limit.
		f = (v/2 - s.Lo/2) / (s.Hi/2 - s.Lo/2)
	}
	if !Finite(f) {
		f = 0
	}
	f = min(max(f, 0), 1)
	return Round(s.P0 + f*(s.P1-s.P0))
}

// Round rounds a pixel position to a tenth.
func Round(v float64) float64 { return math.Round(v*10) / 10 }

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Tick is a labelled position on an axis, in data units.
type Tick struct {
	Pos   float64
	Label string
}

// NiceStep returns the smallest of 1, 2, 5 or 10 times a power of ten
// that is at least raw.
func NiceStep(raw float64) float64 {
	exp := math.Floor(math.Log10(raw))
	pow := math.Pow(10, exp)
	switch f := raw / pow; {
	case f <= 1:
		return pow
	case f <= 2:
		return 2 * pow
	case f <= 5:
		return 5 * pow
	}
	return 10 * pow
}

// LinearTicks returns about n ticks at multiples of a nice step within
// [lo, hi]. When the span cannot be divided (it is zero, or so small next to
// the values that the steps vanish in rounding), it returns lo and hi.
func LinearTicks(lo, hi float64, n int) []Tick {
	span := hi/2 - lo/2
	step := NiceStep(span * 2 / float64(n))
	if !Finite(step) || step <= 0 || lo+step == lo || hi-step == hi {
		return []Tick{{Pos: lo, Label: Number(lo, 0)}, {Pos: hi, Label: Number(hi, 0)}}
	}
	var ticks []Tick
	for i := math.Ceil(lo / step); i*step <= hi+step*1e-9 && len(ticks) <= 2*n+2; i++ {
		v := i * step
		if v == 0 {
			v = 0 // no "-0"
		}
		ticks = append(ticks, Tick{Pos: v, Label: Number(v, step)})
	}
	if len(ticks) < 2 {
		return []Tick{{Pos: lo, Label: Number(lo, 0)}, {Pos: hi, Label: Number(hi, 0)}}
	}
	return ticks
}

// LogTicks returns ticks at each power of ten covering [lo, hi] (at 2 and 5
// times each as well when there are few decades, and at every k-th decade
// when there are many), and the widened domain they cover. lo must be
// positive.
func LogTicks(lo, hi float64) (ticks []Tick, dlo, dhi float64) {
	klo := int(math.Floor(math.Log10(lo)))
	khi := int(math.Ceil(math.Log10(hi)))
	if khi == klo {
		khi++
	}
	every := max(1, (khi-klo+9)/10)
	for k := klo; k <= khi; k++ {
		if (k-klo)%every != 0 && k != khi {
			continue
		}
		v := math.Pow(10, float64(k))
		ticks = append(ticks, Tick{Pos: v, Label: logLabel(v, k)})
		if khi-klo <= 3 && k < khi {
			for _, m := range []float64{2, 5} {
				ticks = append(ticks, Tick{Pos: m * v, Label: logLabel(m*v, k)})
			}
		}
	}
	return ticks, math.Pow(10, float64(klo)), math.Pow(10, float64(khi))
}

func logLabel(v float64, k int) string {
	if k >= -4 && k <= 6 {
		return strconv.FormatFloat(v, 'f', max(0, -k), 64)
	}
	return strconv.FormatFloat(v, 'g', 1, 64)
}

// Number formats a tick value with as many decimals as the step needs; a
// zero step means the value stands alone and gets four significant digits.
func Number(v, step float64) string {
	a := math.Abs(v)
	if step <= 0 || a >= 1e7 || (step < 1e-4 && a != 0) {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	dec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// Value formats a sample value with its unit, to four significant digits
// and without trailing zeros.
func Value(v float64, unit string) string {
	var s string
	a := math.Abs(v)
	if a == 0 || (a >= 1e-3 && a < 1e6) {
		dec := 0
		if a != 0 {
			dec = max(0, 3-int(math.Floor(math.Log10(a))))
		}
		s = strconv.FormatFloat(v, 'f', dec, 64)
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
	} else {
		s = strconv.FormatFloat(v, 'g', 4, 64)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// Downsample reduces pts, in time order, to at most n points by cutting
// them into n/2 buckets of consecutive samples and keeping the lowest and
// the highest sample (by value) of each, in time order, so spikes and dips
// survive.
func Downsample[P any](pts []P, n int, value func(P) float64) []P {
	if len(pts) <= n || n < 2 {
		return pts
	}
	buckets := n / 2
	out := make([]P, 0, 2*buckets)
	for b := range buckets {
		i0, i1 := b*len(pts)/buckets, (b+1)*len(pts)/buckets
		lo, hi := i0, i0
		for i := i0 + 1; i < i1; i++ {
			if value(pts[i]) < value(pts[lo]) {
				lo = i
			}
			if value(pts[i]) > value(pts[hi]) {
				hi = i
			}
		}
		switch {
		case lo == hi:
			out = append(out, pts[lo])
		case lo < hi:
			out = append(out, pts[lo], pts[hi])
		default:
			out = append(out, pts[hi], pts[lo])
		}
	}
	return out
}
