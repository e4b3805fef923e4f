package demo

import (
	"time"

	"github.com/preheatdev/preheat/readiness"
)

// CompileSettled returns the run time, in seconds from the report's start,
// at which the report's compile rate (readiness's rate over its 10 s rate
// window, a sample a second) had first stayed at or under limit ms/s at
// every sample for span: the earliest moment anyone reading the metric
// could know the JIT had quietened. Against it the demo and the JVM tests
// weigh the release time. ok is false if the rate never settled, or the
// report has no compile signal.
func CompileSettled(rep *readiness.Report, limit float64, span time.Duration) (at float64, ok bool) {
	for _, s := range rep.Signals {
		if s.Name != readiness.Compile.String() {
			continue
		}
		from := -1
		for i, p := range s.Points {
			if p.V > limit {
				from = -1
				continue
			}
			if from < 0 {
				from = i
			}
			// Ten samples a second apart cover ten seconds, as a detector
			// window of 10s does; a quarter second allows for scrape
			// timing.
			if p.T-s.Points[from].T >= span.Seconds()-1-0.25 {
				return p.T, true
			}
		}
	}
	return 0, false
}
