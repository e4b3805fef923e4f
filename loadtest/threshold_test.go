package loadtest_test

import (
	"strings"
	"testing"

	"github.com/preheatdev/preheat/loadtest"
)

func TestParseThreshold(t *testing.T) {
	f := func(s string, want loadtest.Threshold, wantErr string) {
		t.Helper()
		got, err := loadtest.ParseThreshold(s)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseThreshold(%q) error %v, want %q", s, err, wantErr)
			}
			return
		}
		want.Text = strings.TrimSpace(s)
		if err != nil || got != want {
			t.Errorf("ParseThreshold(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	f("p99<250ms", loadtest.Threshold{Metric: "p99", Op: "<", Value: 250}, "")
	f(" p50 <= 20ms ", loadtest.Threshold{Metric: "p50", Op: "<=", Value: 20}, "")
	f("P99.9<1s", loadtest.Threshold{Metric: "p99.9", Op: "<", Value: 1000}, "")
	f("p99[tasks.list]<100ms", loadtest.Threshold{Metric: "p99", Kind: "tasks.list", Op: "<", Value: 100}, "")
	f("errors<0.1%", loadtest.Threshold{Metric: "errors", Op: "<", Value: 0.001}, "")
	f("errors<=0.02", loadtest.Threshold{Metric: "errors", Op: "<=", Value: 0.02}, "")
	f("errors[connect]<=0", loadtest.Threshold{Metric: "errors", Kind: "connect", Op: "<=", Value: 0}, "")
	f("rps>=500", loadtest.Threshold{Metric: "rps", Op: ">=", Value: 500}, "")
	f("mean>1500us", loadtest.Threshold{Metric: "mean", Op: ">", Value: 1.5}, "")
	f("p99=250ms", loadtest.Threshold{}, "want METRIC<VALUE")
	f("p99", loadtest.Threshold{}, "want METRIC<VALUE")
	f("<5ms", loadtest.Threshold{}, "want METRIC<VALUE")
	f("p99<250", loadtest.Threshold{}, "needs a duration")
	f("p98<250ms", loadtest.Threshold{}, "unknown metric")
	f("errors<5ms", loadtest.Threshold{}, "needs a rate")
	f("errors<200%", loadtest.Threshold{}, "above 100%")
	f("p99[x<1ms", loadtest.Threshold{}, "unclosed [")
	f("p99[]<1ms", loadtest.Threshold{}, "empty []")
	f("p99<", loadtest.Threshold{}, "no value")
	f("p99!1ms", loadtest.Threshold{}, "want METRIC<VALUE")
	f("rps[x]>1", loadtest.Threshold{}, "no [kind]")
}

func TestCheck(t *testing.T) {
	res := &loadtest.Result{Targets: []loadtest.TargetResult{{
		Name:       "target",
		Sessions:   loadtest.SessionCounts{Started: 100},
		Sent:       900,
		Errors:     map[string]uint64{"connect": 2},
		ErrorCount: 2, ErrorRate: 0.002,
		Latency:            loadtest.Latency{Count: 900, P50: 10, P99: 200},
		Kinds:              []loadtest.KindLatency{{Kind: "tasks.list", Latency: loadtest.Latency{Count: 10, P99: 120}}},
		ResponsesPerSecond: 90,
	}}}
	f := func(s string, pass bool) {
		t.Helper()
		th, err := loadtest.ParseThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Check([]loadtest.Threshold{th}); got != pass {
			t.Errorf("%s: pass %v, want %v (%+v)", s, got, pass, res.Thresholds)
		}
	}
	f("p99<250ms", true)
	f("p99<200ms", false)
	f("p99<=200ms", true)
	f("p50<20ms", true)
	f("errors<0.1%", false)
	f("errors<0.5%", true)
	f("errors[connect]<0.3%", true)
	f("errors[write]<=0", true)
	f("p99[tasks.list]<100ms", false)
	f("p99[tasks.list]<150ms", true)
	f("p99[user.me]<150ms", false) // never measured: fails
	f("rps>=90", true)
	f("rps>90", false)
}

func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"p99<250ms", "errors<0.1%", "p99[tasks.list]<100ms", "rps>=5", "errors[x]<=0.5", "p50 < 1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := loadtest.ParseThreshold(s)
		if err != nil {
			return
		}
		if th.Value < 0 || th.Value != th.Value || th.Op == "" || th.Metric == "" {
			t.Fatalf("ParseThreshold(%q) = %+v", s, th)
		}
		again, err := loadtest.ParseThreshold(th.String())
		if err != nil || again != th {
			t.Fatalf("reparse of %q: %+v %v", th.String(), again, err)
		}
		res := &loadtest.Result{Targets: []loadtest.TargetResult{{}}}
		res.Check([]loadtest.Threshold{th})
	})
}
