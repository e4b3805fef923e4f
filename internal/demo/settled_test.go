package demo

import (
	"testing"
	"time"

	"github.com/preheatdev/preheat/readiness"
)

func TestCompileSettledNeedsEverySampleAtOrUnderTheLimitForTheSpan(t *testing.T) {
	f := func(vs []float64, wantAt float64, wantOK bool) {
		t.Helper()
		s := readiness.Series{Name: readiness.Compile.String()}
		for i, v := range vs {
			s.Points = append(s.Points, readiness.Point{T: float64(i + 1), V: v})
		}
		rep := &readiness.Report{Signals: []readiness.Series{{Name: readiness.Jitter.String()}, s}}
		if at, ok := CompileSettled(rep, 20, 5*time.Second); at != wantAt || ok != wantOK {
			t.Errorf("%v: settled at %v, %v; want %v, %v", vs, at, ok, wantAt, wantOK)
		}
	}
	f([]float64{300, 90, 20, 5, 0, 0, 0}, 7, true)                  // five samples at or under 20 from t=3
	f([]float64{300, 10, 10, 10, 21, 10, 10, 10, 10, 10}, 10, true) // a bump over the limit starts the span again
	f([]float64{300, 10, 10, 10}, 0, false)                         // too short
	f(nil, 0, false)
	if _, ok := CompileSettled(&readiness.Report{}, 20, 5*time.Second); ok {
		t.Error("a report without a compile signal settled")
	}
}
