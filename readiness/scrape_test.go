package readiness

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// classicJitter renders a classic jitter histogram with cumulative counts
// for le = 0.01, 0.1, 1, +Inf.
func classicJitter(labels string, c01, c1, c10, inf float64) string {
	var b strings.Builder
	b.WriteString("# HELP jvm_scheduler_jitter_seconds Lateness of a no-op task.\n# TYPE jvm_scheduler_jitter_seconds histogram\n")
	for _, bk := range []struct {
		le string
		c  float64
	}{{"0.01", c01}, {"0.1", c1}, {"1", c10}, {"+Inf", inf}} {
		fmt.Fprintf(&b, "jvm_scheduler_jitter_seconds_bucket{%sle=%q} %g\n", labels, bk.le, bk.c)
	}
	fmt.Fprintf(&b, "jvm_scheduler_jitter_seconds_sum{%s} 1\njvm_scheduler_jitter_seconds_count{%s} %g\n",
		strings.TrimSuffix(labels, ","), strings.TrimSuffix(labels, ","), inf)
	return b.String()
}

func mustParse(t *testing.T, body string, o *Options) exposition {
	t.Helper()
	c := o.withDefaults()
	e, err := parseExposition([]byte(body), &c)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return e
}

func TestHistogramDeltaQuantile(t *testing.T) {
	// Since start: 1000 cold observations in (0.1, 1]. In the interval: 100
	// more, 90 in (0, 0.01] and 10 in (0.01, 0.1]. The interval's p99 is
	// 0.01 + 0.09*(99-90)/10 = 0.091; since start it would be near 1.
	prev := mustParse(t, classicJitter("", 0, 0, 1000, 1000), nil)
	cur := mustParse(t, classicJitter("", 90, 100, 1100, 1100), nil)
	j, ok, _, _ := signals(&prev, t0, &cur, t0.Add(time.Second), 0.99)
	if !ok || math.Abs(j-0.091) > 1e-9 {
		t.Errorf("p99 over the interval = %v, %v; want 0.091", j, ok)
	}
	j, _, _, _ = signals(&prev, t0, &cur, t0.Add(time.Second), 0.5)
	if math.Abs(j-0.01*50/90) > 1e-9 {
		t.Errorf("p50 = %v, want %v", j, 0.01*50/90)
	}
	if _, ok, _, _ := signals(nil, time.Time{}, &cur, t0, 0.99); ok {
		t.Error("first scrape of a histogram gave a jitter value")
	}
	// Reset: counts fell, so the current counts are the interval's.
	reset := mustParse(t, classicJitter("", 10, 10, 10, 10), nil)
	if j, ok, _, _ := signals(&cur, t0, &reset, t0.Add(time.Second), 0.99); !ok || math.Abs(j-0.01*9.9/10) > 1e-9 {
		t.Errorf("after a reset p99 = %v, %v", j, ok)
	}
	// No observations in the interval: no value.
	if _, ok, _, _ := signals(&cur, t0, &cur, t0.Add(time.Second), 0.99); ok {
		t.Error("an idle interval gave a jitter value")
	}
	// Rank in the +Inf bucket: the highest finite bound.
	over := mustParse(t, classicJitter("", 90, 100, 1100, 1200), nil)
	if j, _, _, _ := signals(&cur, t0, &over, t0.Add(time.Second), 0.99); j != 1 {
		t.Errorf("p99 in +Inf = %v, want 1", j)
	}
	// Two label sets are summed; a label filter keeps one.
	two := classicJitter(`pool="a",`, 0, 0, 0, 0) + strings.SplitN(classicJitter(`pool="b",`, 0, 0, 0, 0), "\n", 3)[2]
	two2 := classicJitter(`pool="a",`, 100, 100, 100, 100) + strings.SplitN(classicJitter(`pool="b",`, 0, 0, 100, 100), "\n", 3)[2]
	p, c := mustParse(t, two, nil), mustParse(t, two2, nil)
	if j, _, _, _ := signals(&p, t0, &c, t0.Add(time.Second), 0.5); j != 0.01 {
		t.Errorf("p50 of both pools = %v, want 0.01", j)
	}
	o := &Options{JitterLabels: map[string]string{"pool": "b"}}
	p, c = mustParse(t, two, o), mustParse(t, two2, o)
	if j, _, _, _ := signals(&p, t0, &c, t0.Add(time.Second), 0.5); j != 0.55 {
		t.Errorf("p50 of pool b = %v, want 0.55", j)
	}
}

func TestVMRangeHistogram(t *testing.T) {
	body := func(n1, n2 int) string {
		return fmt.Sprintf("jvm_scheduler_jitter_seconds_bucket{vmrange=\"1.000e-03...1.136e-03\"} %d\n"+
			"jvm_scheduler_jitter_seconds_bucket{vmrange=\"8.799e-01...1.000e+00\"} %d\n"+
			"jvm_scheduler_jitter_seconds_sum 5\njvm_scheduler_jitter_seconds_count %d\n", n1, n2, n1+n2)
	}
	prev, cur := mustParse(t, body(0, 500), nil), mustParse(t, body(100, 500), nil)
	j, ok, _, _ := signals(&prev, t0, &cur, t0.Add(time.Second), 0.5)
	if want := 1e-3 + 0.136e-3*0.5; !ok || math.Abs(j-want) > 1e-12 {
		t.Errorf("vmrange p50 = %v, %v; want %v", j, ok, want)
	}
}

func TestGaugeAndCounter(t *testing.T) {
	f := func(name, prevBody, curBody string, o *Options, wantJ float64, okJ bool, wantC float64, okC bool) {
		t.Helper()
		prev, cur := mustParse(t, prevBody, o), mustParse(t, curBody, o)
		j, gotOkJ, c, gotOkC := signals(&prev, t0, &cur, t0.Add(2*time.Second), 0.99)
		if gotOkJ != okJ || (okJ && math.Abs(j-wantJ) > 1e-9) || gotOkC != okC || (okC && math.Abs(c-wantC) > 1e-9) {
			t.Errorf("%s: jitter %v,%v compile %v,%v; want %v,%v %v,%v", name, j, gotOkJ, c, gotOkC, wantJ, okJ, wantC, okC)
		}
	}
	gauge := "# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds{t=\"a\"} 0.003\njvm_scheduler_jitter_seconds{t=\"b\"} 0.005\n"
	counter := func(v float64) string {
		return fmt.Sprintf("# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total{compiler=\"c1\"} %g\njvm_compilation_time_ms_total{compiler=\"c2\"} 0\n", v)
	}
	f("gauge max", gauge, gauge, nil, 0.005, true, 0, false)
	f("gauge label", gauge, gauge, &Options{JitterLabels: map[string]string{"t": "a"}}, 0.003, true, 0, false)
	f("gauge label absent", gauge, gauge, &Options{JitterLabels: map[string]string{"t": "z"}}, 0, false, 0, false)
	f("untyped", "jvm_scheduler_jitter_seconds 0.2\n", "jvm_scheduler_jitter_seconds 0.1\n", nil, 0.1, true, 0, false)
	f("summary", "", "jvm_scheduler_jitter_seconds{quantile=\"0.5\"} 0.001\njvm_scheduler_jitter_seconds{quantile=\"0.99\"} 0.04\njvm_scheduler_jitter_seconds_count 3\njvm_scheduler_jitter_seconds_sum 1\n# TYPE x gauge\n", nil, 0.04, true, 0, false)
	f("counter rate", counter(1000), counter(1100), nil, 0, false, 50, true)
	f("counter reset", counter(1000), counter(30), nil, 0, false, 15, true)
	f("counter without _total", "jvm_compilation_time_ms 10\n", "jvm_compilation_time_ms 30\n", nil, 0, false, 10, true)
	f("missing compile", gauge, gauge, nil, 0.005, true, 0, false)
	f("renamed", "my_jit 1\n", "my_jit 5\n", &Options{CompileMetric: "my_jit"}, 0, false, 2, true)
}

func TestParseErrors(t *testing.T) {
	o := (&Options{}).withDefaults()
	for _, body := range []string{
		"jvm_scheduler_jitter_seconds{ 0.1\n",
		"# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds abc\n",
		"\x00\x01\x02",
		"jvm_compilation_time_ms_total 1 2 3 4\n",
	} {
		if _, err := parseExposition([]byte(body), &o); err == nil {
			t.Errorf("parse %q: no error", body)
		}
	}
}

func FuzzParseExposition(f *testing.F) {
	f.Add([]byte(classicJitter("", 1, 2, 3, 4)))
	f.Add([]byte(classicJitter(`a="b",`, 1, 0, 3, 2)))
	f.Add([]byte("jvm_scheduler_jitter_seconds_bucket{vmrange=\"1.000e-03...1.136e-03\"} 5\njvm_scheduler_jitter_seconds_bucket{vmrange=\"x...y\"} 1\n"))
	f.Add([]byte("# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total NaN\njvm_scheduler_jitter_seconds +Inf\n"))
	f.Add([]byte("jvm_scheduler_jitter_seconds{quantile=\"0.99\"} 0.04\njvm_scheduler_jitter_seconds_count 3\n"))
	f.Add([]byte("# TYPE jvm_scheduler_jitter_seconds histogram\njvm_scheduler_jitter_seconds_bucket{le=\"NaN\"} 1\njvm_scheduler_jitter_seconds_bucket{le=\"-1\"} 1e308\n"))
	o := (&Options{}).withDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := parseExposition(body, &o)
		if err != nil {
			return
		}
		empty := exposition{}
		for _, q := range []float64{0.01, 0.5, 0.99} {
			signals(&empty, t0, &e, t0.Add(time.Second), q)
			signals(&e, t0, &e, t0.Add(time.Second), q)
			signals(nil, time.Time{}, &e, t0, q)
		}
		if e.jitterHist != nil {
			if v, ok := histQuantile(e.jitterHist, 0.99); ok && math.IsNaN(v) {
				t.Errorf("quantile NaN from %q", body)
			}
		}
	})
}
