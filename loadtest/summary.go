package loadtest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/counts"
)

// WriteSummary writes r's outcome for a reader, as text: the load, each
// target's sessions, messages, requests, latency, errors, throughput and
// its five most frequent message kinds, the comparison, the threshold
// verdicts and why the run was aborted. It returns the first error of w.
func WriteSummary(w io.Writer, r *Result) error {
	sw := &stickyWriter{w: w}
	w = sw
	if r.Model == "closed" {
		fmt.Fprintf(w, "preheat loadtest: closed model, %d sessions at once, for %gs", r.Concurrency, r.Duration)
	} else {
		fmt.Fprintf(w, "preheat loadtest: open model, %.4g sessions/s", r.Rate)
		if r.RecordedRate > 0 {
			fmt.Fprintf(w, " (%.3gx the recorded %.4g/s)", r.Rate/r.RecordedRate, r.RecordedRate)
		}
		fmt.Fprintf(w, " for %gs", r.Duration)
	}
	fmt.Fprintf(w, "; ran %.1fs, %d arrivals from %d corpus sessions", r.Seconds, r.Scheduled, r.Corpus)
	if r.Dropped > 0 {
		fmt.Fprintf(w, ", %d dropped at --max-active", r.Dropped)
	}
	fmt.Fprintln(w)
	if r.Lag.Count > 0 && r.Lag.P99 > 10 {
		fmt.Fprintf(w, "warning: the generator started sessions up to %.1fms late (p99): it, not the target, may be the bottleneck\n", r.Lag.P99)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "\n%s %s\n", t.Name, t.URL)
		s := t.Sessions
		fmt.Fprintf(w, "  sessions    %d started, %d completed, %d failed, %d cut at the end, peak %d at once\n", s.Started, s.Completed, s.Failed, s.Cut, s.Peak)
		rehearsed := ""
		if t.Rehearsed > 0 {
			rehearsed = fmt.Sprintf(" (%d rehearsed)", t.Rehearsed)
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  messages    %d sent%s; not sent %d %s", t.Sent, rehearsed, counts.Sum(t.Skipped), counts.Format(t.Skipped)), " "))
		cut := ""
		if t.ClosedCut > 0 {
			cut = fmt.Sprintf(" (%d by the cut at the end)", t.ClosedCut)
		}
		fmt.Fprintf(w, "  requests    %d awaited an answer: %d answered, %d timed out, %d closed while waiting%s\n", t.Requests, t.Responses, t.Timeouts, t.Closed, cut)
		if len(t.SkippedByKind) > 0 {
			fmt.Fprintf(w, "  not sent    %s\n", counts.ByKind(t.SkippedByKind, 5))
		}
		l := t.Latency
		fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", fmtLatency(l.P50), fmtLatency(l.P90), fmtLatency(l.P99), fmtLatency(l.P999), fmtLatency(l.Max))
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  errors      %.3f%% %s", 100*t.ErrorRate, counts.Format(t.Errors)), " "))
		fmt.Fprintf(w, "  throughput  %.4g sessions/s, %.4g messages/s, %.4g responses/s\n", t.SessionsPerSecond, t.MessagesPerSecond, t.ResponsesPerSecond)
		for i, k := range t.Kinds {
			if i == 5 {
				fmt.Fprintf(w, "  ... %d more kinds in the report\n", len(t.Kinds)-5)
				break
			}
			fmt.Fprintf(w, "  %-22s %7d  p50 %s  p99 %s\n", k.Kind, k.Latency.Count, fmtLatency(k.Latency.P50), fmtLatency(k.Latency.P99))
		}
	}
	if c := r.Comparison; c != nil {
		fmt.Fprintf(w, "\ncomparison: %d findings (%s)\n", c.Findings, c.Method)
		for _, m := range c.Metrics {
			mark := " "
			if m.Worse {
				mark = "!"
			}
			fmt.Fprintf(w, " %s %-10s %s\n", mark, m.Metric, m.Summary)
		}
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w, "\nthresholds:")
		for _, v := range r.Thresholds {
			verdict := "PASS"
			if !v.Pass {
				verdict = "FAIL"
			}
			actual := strconv.FormatFloat(v.Actual, 'g', 4, 64) + v.Unit
			switch v.Unit {
			case "ms":
				actual = fmtLatency(v.Actual)
			case "fraction":
				actual = fmt.Sprintf("%.3f%%", 100*v.Actual)
			}
			if v.Note != "" {
				actual = v.Note
			}
			fmt.Fprintf(w, "  %s  %-24s %-8s %s\n", verdict, v.Threshold, v.Target, actual)
		}
	}
	if r.Aborted != "" {
		fmt.Fprintf(w, "\naborted: %s\n", r.Aborted)
	}
	return sw.err
}

// stickyWriter is a writer that keeps the first error of w and writes
// nothing after it.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// fmtLatency writes a latency in milliseconds as a duration rounded to
// 10µs.
func fmtLatency(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(10 * time.Microsecond).String()
}
