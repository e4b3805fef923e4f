package warmup

import (
	"fmt"
	"strconv"
	"time"

	"github.com/preheatdev/preheat/internal/counts"
	"github.com/preheatdev/preheat/internal/reportfile"
	"github.com/preheatdev/preheat/readiness"
)

// kindCounter is a source that knows how many message kinds it has served
// (replayer.CacheSource).
type kindCounter interface{ KindsCovered() int }

// currentReport is the run's report: the final one once the run has
// ended, else one built now.
func (w *Warmup) currentReport() *readiness.Report {
	w.mu.Lock()
	res := w.result
	w.mu.Unlock()
	if res != nil {
		return res.Report
	}
	return w.buildReport()
}

// buildReport is the watcher's report with the replay's facts first.
func (w *Warmup) buildReport() *readiness.Report {
	rep := w.watcher.Report()
	rep.Target = w.target
	st := w.replay.Stats()
	facts := []readiness.Fact{
		{Name: "Sessions replayed", Value: fmt.Sprintf("%d started, %d completed, %d stopped at the end, %d failed %s", st.SessionsStarted, st.SessionsCompleted, st.SessionsStopped, counts.Sum(st.SessionsFailed), counts.Format(st.SessionsFailed))},
		{Name: "Messages sent", Value: strconv.FormatUint(st.MessagesSent, 10)},
		{Name: "Messages not sent", Value: fmt.Sprintf("%d %s", counts.Sum(st.MessagesSkipped), counts.Format(st.MessagesSkipped))},
		{Name: "Messages not sent, by kind", Value: counts.ByKind(st.SkippedByKind, 8)},
		{Name: "Protocol", Value: fmt.Sprintf("%d control messages sent, %d answers to the server, %d waits for the recorded order expired", st.MessagesControl, st.Answered, st.OrderWaitsExpired)},
		{Name: "Responses measured", Value: fmt.Sprintf("%d (timeouts %d)", st.Responses, st.Timeouts)},
		{Name: "Replay latency p50 / p99", Value: fmt.Sprintf("%v / %v", st.LatencyP50.Round(10*time.Microsecond), st.LatencyP99.Round(10*time.Microsecond))},
	}
	if kc, ok := w.source.(kindCounter); ok {
		facts = append(facts, readiness.Fact{Name: "Message kinds covered", Value: strconv.Itoa(kc.KindsCovered())})
	}
	facts = append(facts,
		readiness.Fact{Name: "Replay rate limit at the end", Value: fmtRate(st.RateLimit)},
		readiness.Fact{Name: "Concurrency", Value: strconv.Itoa(w.cfg.replay.Concurrency)},
	)
	if w.cfg.facts != nil {
		facts = append(facts, w.cfg.facts(st)...)
	}
	cfacts, marks := w.canaryFacts(rep.Started)
	facts = append(facts, cfacts...)
	rep.Marks = append(rep.Marks, marks...)
	if limit := w.cfg.replay.MaxCPUPressure; limit > 0 {
		last := "unreadable"
		if st.CPUPressure >= 0 {
			last = fmt.Sprintf("%.3f", st.CPUPressure)
		}
		facts = append(facts, readiness.Fact{Name: "Node CPU pressure limit / last second", Value: fmt.Sprintf("%.3f / %s", limit, last)})
	}
	rep.Facts = append(facts, rep.Facts...)
	return rep
}

// WriteReport writes a warm report to dir as warm-report.json and
// warm-report.html, creating dir if need be, and returns their paths, JSON
// first.
func WriteReport(dir string, rep *readiness.Report) ([]string, error) {
	return reportfile.Write(dir, "warm-report", rep, readiness.WriteJSON, readiness.WriteHTML)
}
