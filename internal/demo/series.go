package demo

import "github.com/preheatdev/preheat/readiness"

// ReportSeries returns the series of rep named name, such as
// readiness.Compile.String() ("compile_ms_per_second"), or nil if rep has
// none of that name.
func ReportSeries(rep *readiness.Report, name string) *readiness.Series {
	for i := range rep.Signals {
		if rep.Signals[i].Name == name {
			return &rep.Signals[i]
		}
	}
	return nil
}
