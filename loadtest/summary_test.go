package loadtest_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/preheatdev/preheat/loadtest"
)

// summaryResults are an open-model run with every part of a summary (two
// targets, more kinds than shown, a comparison, thresholds of each unit,
// an abort) and a closed-model run with the least.
func summaryResults() []*loadtest.Result {
	lat := func(p50, p99 float64) loadtest.Latency {
		return loadtest.Latency{Count: 1200, P50: p50, P90: p50 * 2, P99: p99, P999: p99 * 1.5, Max: p99 * 3}
	}
	target := loadtest.TargetResult{
		Name: "target", URL: "ws://staging:8080",
		Sessions:      loadtest.SessionCounts{Started: 120, Completed: 110, Failed: 4, Cut: 6, Peak: 17},
		Sent:          900,
		Rehearsed:     12,
		Skipped:       map[string]uint64{"mutating": 30, "reply": 5},
		SkippedByKind: map[string]map[string]uint64{"mutating": {"tasks.update": 30}},
		Requests:      880, Responses: 860, Timeouts: 12, Closed: 8, ClosedCut: 3,
		Latency:           lat(4.2, 37.123456),
		Errors:            map[string]uint64{"connect": 4, "response_timeout": 12},
		ErrorRate:         0.01532,
		SessionsPerSecond: 2, MessagesPerSecond: 15, ResponsesPerSecond: 14.33333,
	}
	for i, k := range []string{"tasks.list", "user.me", "tasks.search", "projects.get", "comments.list", "labels.list", "search"} {
		target.Kinds = append(target.Kinds, loadtest.KindLatency{Kind: k, Latency: loadtest.Latency{Count: int64(400 - 50*i), P50: float64(i + 1), P99: float64(10 * (i + 1))}})
	}
	quiet := loadtest.TargetResult{Name: "compare", URL: "ws://candidate:8080", Skipped: map[string]uint64{}, Errors: map[string]uint64{},
		Sessions: loadtest.SessionCounts{Started: 120, Completed: 120, Peak: 9}, Sent: 900, Requests: 860, Responses: 860, Latency: lat(5, 41)}
	open := &loadtest.Result{
		Model: "open", Rate: 15, RecordedRate: 5, Duration: 60, Seconds: 70.04, Scheduled: 900, Corpus: 37, Dropped: 3,
		Lag:     loadtest.Latency{Count: 900, P99: 12.5},
		Targets: []loadtest.TargetResult{target, quiet},
		Comparison: &loadtest.Comparison{Findings: 1, Method: "paired block bootstrap", Metrics: []loadtest.Difference{
			{Metric: "p99", Worse: true, Summary: "candidate is 10% slower at p99"},
			{Metric: "throughput", Summary: "no significant change"},
		}},
		Thresholds: []loadtest.Verdict{
			{Threshold: "p99<250ms", Target: "target", Actual: 37.123456, Unit: "ms", Pass: true},
			{Threshold: "errors<0.1%", Target: "target", Actual: 0.01532, Unit: "fraction"},
			{Threshold: "rps>=500", Target: "compare", Actual: 14.33333, Unit: "/s"},
			{Threshold: "p99[nope]<1s", Target: "target", Note: "no responses of the kind"},
		},
		Aborted: "target took no connection for 15s",
	}
	closed := &loadtest.Result{Model: "closed", Concurrency: 8, Duration: 30, Seconds: 31.25, Scheduled: 240, Corpus: 12,
		Lag: loadtest.Latency{Count: 240, P99: 10}, Targets: []loadtest.TargetResult{quiet}}
	return []*loadtest.Result{open, closed}
}

// TestWriteSummaryText checks the summary a reader gets, line for line.
func TestWriteSummaryText(t *testing.T) {
	want := []string{
		`preheat loadtest: open model, 15 sessions/s (3x the recorded 5/s) for 60s; ran 70.0s, 900 arrivals from 37 corpus sessions, 3 dropped at --max-active
warning: the generator started sessions up to 12.5ms late (p99): it, not the target, may be the bottleneck

target ws://staging:8080
  sessions    120 started, 110 completed, 4 failed, 6 cut at the end, peak 17 at once
  messages    900 sent (12 rehearsed); not sent 35 (mutating 30, reply 5)
  requests    880 awaited an answer: 860 answered, 12 timed out, 8 closed while waiting (3 by the cut at the end)
  not sent    mutating: "tasks.update" 30
  latency     p50 4.2ms  p90 8.4ms  p99 37.12ms  p99.9 55.69ms  max 111.37ms
  errors      1.532% (connect 4, response_timeout 12)
  throughput  2 sessions/s, 15 messages/s, 14.33 responses/s
  tasks.list                 400  p50 1ms  p99 10ms
  user.me                    350  p50 2ms  p99 20ms
  tasks.search               300  p50 3ms  p99 30ms
  projects.get               250  p50 4ms  p99 40ms
  comments.list              200  p50 5ms  p99 50ms
  ... 2 more kinds in the report

compare ws://candidate:8080
  sessions    120 started, 120 completed, 0 failed, 0 cut at the end, peak 9 at once
  messages    900 sent; not sent 0
  requests    860 awaited an answer: 860 answered, 0 timed out, 0 closed while waiting
  latency     p50 5ms  p90 10ms  p99 41ms  p99.9 61.5ms  max 123ms
  errors      0.000%
  throughput  0 sessions/s, 0 messages/s, 0 responses/s

comparison: 1 findings (paired block bootstrap)
 ! p99        candidate is 10% slower at p99
   throughput no significant change

thresholds:
  PASS  p99<250ms                target   37.12ms
  FAIL  errors<0.1%              target   1.532%
  FAIL  rps>=500                 compare  14.33/s
  FAIL  p99[nope]<1s             target   no responses of the kind

aborted: target took no connection for 15s
`,
		`preheat loadtest: closed model, 8 sessions at once, for 30s; ran 31.2s, 240 arrivals from 12 corpus sessions

compare ws://candidate:8080
  sessions    120 started, 120 completed, 0 failed, 0 cut at the end, peak 9 at once
  messages    900 sent; not sent 0
  requests    860 awaited an answer: 860 answered, 0 timed out, 0 closed while waiting
  latency     p50 5ms  p90 10ms  p99 41ms  p99.9 61.5ms  max 123ms
  errors      0.000%
  throughput  0 sessions/s, 0 messages/s, 0 responses/s
`,
	}
	for i, r := range summaryResults() {
		var b bytes.Buffer
		if err := loadtest.WriteSummary(&b, r); err != nil {
			t.Fatal(err)
		}
		if b.String() != want[i] {
			t.Errorf("summary of the %s model:\n%s\nwant:\n%s", r.Model, b.String(), want[i])
		}
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

var errFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errFull
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteSummaryReturnsTheWritersError(t *testing.T) {
	if err := loadtest.WriteSummary(&failingWriter{n: 100}, summaryResults()[0]); !errors.Is(err, errFull) {
		t.Errorf("WriteSummary to a writer that fails: %v, want %v", err, errFull)
	}
}
