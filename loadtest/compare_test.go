package loadtest_test

import (
	"testing"

	"github.com/preheatdev/preheat/loadtest"
)

func TestComparisonWorseOnAnyMetric(t *testing.T) {
	f := func(c *loadtest.Comparison, want bool) {
		t.Helper()
		if got := c.Worse(); got != want {
			t.Errorf("Worse() of %+v = %v, want %v", c, got, want)
		}
	}
	f(nil, false)
	f(&loadtest.Comparison{}, false)
	f(&loadtest.Comparison{Metrics: []loadtest.Difference{{Metric: "p50", Finding: true}, {Metric: "p99"}}}, false)
	f(&loadtest.Comparison{Metrics: []loadtest.Difference{{Metric: "p50"}, {Metric: "error_rate", Worse: true}}}, true)
}
