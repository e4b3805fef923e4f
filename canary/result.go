package canary

import (
	"time"

	"github.com/preheatdev/preheat/paired"
)

// Outcomes of a canary phase.
const (
	// NoRegression: enough responses, and no metric of the candidate is
	// worse than the reference's by the minimum effect at the stated
	// confidence.
	NoRegression = "no_regression"
	// Regression: some metric is (Result.Finding says which, by how much).
	Regression = "regression"
	// Inconclusive: too few responses in the time allowed, a reference
	// that failed or stopped answering, or no phase at all (no time left
	// before the deadline, no sessions).
	Inconclusive = "inconclusive"
)

// Outcomes lists the outcomes, for metrics.
var Outcomes = []string{NoRegression, Regression, Inconclusive}

// Result is what a canary phase found.
type Result struct {
	// Outcome is NoRegression, Regression or Inconclusive.
	Outcome string `json:"outcome"`
	// Finding says it in a sentence: the worst regression ("candidate is
	// 14% slower at p99 on tasks.search, 95% CI +9% to +19%"), why the
	// outcome is inconclusive, or that there was no regression.
	Finding string `json:"finding"`
	// Regressions are every finding against the candidate, worst first,
	// each a sentence.
	Regressions []string `json:"regressions,omitempty"`
	// Candidate and Reference are the two targets' URLs.
	Candidate string `json:"candidate"`
	Reference string `json:"reference"`
	// Started is when the phase began; Seconds how long it ran, stop
	// included; Compared the seconds of the intervals compared.
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Compared float64   `json:"compared_seconds"`
	// Rate is the cap on the messages a second each target was sent.
	Rate float64 `json:"rate"`
	// Method describes the comparison; Confidence is its family-wise
	// level, Level each metric's; MinEffect the smallest relative change
	// that is a finding.
	Method     string  `json:"method"`
	Confidence float64 `json:"confidence"`
	Level      float64 `json:"level"`
	MinEffect  float64 `json:"min_effect"`
	// Targets are the candidate's measurements, then the reference's.
	Targets []Target `json:"targets"`
	// Overall compares every response: p50, p90, p99, mean, error_rate.
	Overall []paired.Difference `json:"overall"`
	// Kinds compares the kinds with enough responses, most frequent
	// first.
	Kinds []KindComparison `json:"kinds,omitempty"`
}

// Target is one target's measurements in the phase.
type Target struct {
	// Name is "candidate" or "reference"; URL the target's.
	Name string `json:"name"`
	URL  string `json:"url"`
	// Sessions started, completed and failed (by class: "connect",
	// "handshake_503", "closed_by_target_1011", ...).
	Sessions       uint64            `json:"sessions"`
	Completed      uint64            `json:"completed"`
	SessionsFailed map[string]uint64 `json:"sessions_failed,omitempty"`
	// Sent counts client messages sent, Responses the latencies measured,
	// Timeouts the responses that did not come in time.
	Sent      uint64 `json:"messages_sent"`
	Responses uint64 `json:"responses"`
	Timeouts  uint64 `json:"timeouts"`
	// ErrorRate is failed sessions and timeouts over sessions and
	// messages sent.
	ErrorRate float64 `json:"error_rate"`
	// MessagesPerSecond is Sent over the phase's scheduled seconds.
	MessagesPerSecond float64 `json:"messages_per_second"`
	// P50 and P99 are over the responses compared, in milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// KindComparison compares one message kind.
type KindComparison struct {
	Kind string `json:"kind"`
	// Responses are the candidate's and the reference's.
	Responses [2]int `json:"responses"`
	// Metrics are p50, p90 and p99, those with enough responses.
	Metrics []paired.Difference `json:"metrics"`
}
