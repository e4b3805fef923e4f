package main

import (
	"testing"
	"time"

	"github.com/preheatdev/preheat/readiness"
)

// TestWhatIfReplaysLoadShare: whatIf feeds a report's recorded load share
// to the detector, so that replaying a held-back run's signals does not
// release it where the run itself could not.
func TestWhatIfReplaysLoadShare(t *testing.T) {
	rep := &readiness.Report{Started: time.Unix(1763800000, 0)}
	var compile, jitter, share []readiness.Point
	for i := range 90 {
		compile = append(compile, readiness.Point{T: float64(i), V: 5})
		jitter = append(jitter, readiness.Point{T: float64(i), V: 0.002})
		share = append(share, readiness.Point{T: float64(i), V: 0.05})
	}
	rep.Signals = []readiness.Series{
		{Name: readiness.Jitter.String(), Points: jitter},
		{Name: readiness.Compile.String(), Points: compile},
	}
	opts := &readiness.Options{Hold: 10 * time.Second, MinWarm: 10 * time.Second}
	if at, outcome := whatIf(rep, opts, 0, false); outcome != readiness.OutcomeWarm || at > 25 {
		t.Fatalf("without a load share: %s at %vs, want warm by 25s", outcome, at)
	}
	rep.Signals = append(rep.Signals, readiness.Series{Name: readiness.LoadShareSeries, Points: share})
	if at, outcome := whatIf(rep, opts, 0, false); outcome == readiness.OutcomeWarm {
		t.Fatalf("held to 5%% of its rate: warm at %vs, want no release", at)
	}
}
