package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/preheatdev/preheat/internal/demo"
)

// TestTraceSecondLine checks a trace's line of one second: the compile
// rate over the last 10 s once there are 11 samples, the jitter p99 as the
// bound of the bucket that holds it over the second, and the latencies of
// the second; "-" for what is not known yet or not exposed.
func TestTraceSecondLine(t *testing.T) {
	fams := func(compile float64, jitter ...int) map[string]*dto.MetricFamily {
		t.Helper()
		var b strings.Builder
		if compile >= 0 {
			b.WriteString("# TYPE jvm_compilation_time_ms_total counter\n")
			b.WriteString("jvm_compilation_time_ms_total " + formatFloat(compile) + "\n")
		}
		if len(jitter) > 0 {
			b.WriteString("# TYPE jvm_scheduler_jitter_seconds histogram\n")
			for i, le := range []string{"0.001", "0.01", "0.1", "+Inf"} {
				b.WriteString(`jvm_scheduler_jitter_seconds_bucket{le="` + le + `"} ` + formatFloat(float64(jitter[i])) + "\n")
			}
			b.WriteString("jvm_scheduler_jitter_seconds_sum 0\njvm_scheduler_jitter_seconds_count " + formatFloat(float64(jitter[3])) + "\n")
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		f, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var tr signalTrace
	line := tr.second(1, fams(100, 0, 0, 0, 0), nil)
	if want := "t=  1s compile     100 ms, rate over 10s      - ms/s; jitter p99        -;    0 requests p50   0.00ms p99   0.00ms"; line != want {
		t.Errorf("first second:\n%s\nwant\n%s", line, want)
	}
	for sec := 2; sec <= 10; sec++ {
		tr.second(sec, fams(100+float64(sec-1)*50, 0, 0, 0, 0), nil)
	}
	// Of 100 ticks in the second, 98 were at most 10ms late, one 100ms:
	// the 99th percentile is in the 0.1 bucket.
	lats := []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}
	line = tr.second(11, fams(650, 50, 98, 99, 100), lats)
	for _, want := range []string{"t= 11s", "compile     650 ms", "rate over 10s   55.0 ms/s", "jitter p99   <=0.1s", "3 requests p50   2.00ms p99   3.00ms"} {
		if !strings.Contains(line, want) {
			t.Errorf("second 11: %q lacks %q", line, want)
		}
	}
	// -Xint exposes no compile metric.
	var xint signalTrace
	if line := xint.second(1, fams(-1), nil); !strings.Contains(line, "compile      -1 ms") || !strings.Contains(line, "jitter p99        -") {
		t.Errorf("no metrics: %q", line)
	}
}

// TestTraceAnsweredCountsByAnswerTime: a request belongs to the second it
// was answered in, not the one it was sent in.
func TestTraceAnsweredCountsByAnswerTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := &demo.Requests{}
	l.Add(demo.Request{Sent: t0.Add(-100 * time.Millisecond), Latency: 200 * time.Millisecond}) // answered at 0.1s
	l.Add(demo.Request{Sent: t0.Add(500 * time.Millisecond), Latency: 600 * time.Millisecond})  // answered at 1.1s
	l.Add(demo.Request{Sent: t0.Add(900 * time.Millisecond), Latency: 50 * time.Millisecond})   // answered at 0.95s
	got := answered(l, t0, t0.Add(time.Second))
	if len(got) != 2 || got[0] != 200*time.Millisecond || got[1] != 50*time.Millisecond {
		t.Errorf("answered in [0, 1s): %v, want [200ms 50ms]", got)
	}
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
