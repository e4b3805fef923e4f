package loadtest

import "time"

// Result is what a load test measured. Latencies are in milliseconds.
type Result struct {
	// Started and Ended bound the run, drain included.
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// Seconds is the run's length, Ended minus Started.
	Seconds float64 `json:"seconds"`
	// Model is "open" or "closed".
	Model string `json:"model"`
	// RecordedRate is the corpus's recorded arrival rate, sessions/s
	// (0 when unknown); Rate the full rate the run aimed at (open model).
	RecordedRate float64 `json:"recorded_rate"`
	Rate         float64 `json:"rate,omitempty"`
	// Concurrency is the closed model's sessions at once.
	Concurrency int `json:"concurrency,omitempty"`
	// Duration, RampUp and RampDown are the schedule, in seconds.
	Duration float64 `json:"duration"`
	RampUp   float64 `json:"ramp_up,omitempty"`
	RampDown float64 `json:"ramp_down,omitempty"`
	// Corpus is the number of distinct sessions replayed from; Scheduled
	// the arrivals the schedule asked for; Dropped those not started
	// because MaxActive sessions were in flight.
	Corpus    int `json:"corpus_sessions"`
	Scheduled int `json:"scheduled"`
	Dropped   int `json:"dropped"`
	// Lag is how late the generator started sessions against the schedule:
	// a high value means the generator, not the target, was the bottleneck.
	Lag Latency `json:"schedule_lag"`
	// Aborted says why the run ended before its duration, if it did.
	Aborted string `json:"aborted,omitempty"`
	// Targets holds the target's measurements, then the compared
	// target's.
	Targets []TargetResult `json:"targets"`
	// Comparison is set in compare mode.
	Comparison *Comparison `json:"comparison,omitempty"`
	// Thresholds are the verdicts of Check, when called.
	Thresholds []Verdict `json:"thresholds,omitempty"`
}

// TargetResult is one target's measurements.
type TargetResult struct {
	// Name is "target" or "compare"; URL the target's.
	Name string `json:"name"`
	URL  string `json:"url"`
	// Sessions counts the sessions started and how they ended.
	Sessions SessionCounts `json:"sessions"`
	// Errors counts failed sessions by class ("connect", "handshake_503",
	// "closed_by_target_1011", "write", "session_timeout"), responses
	// that did not arrive in time ("response_timeout") and requests whose
	// connection ended while they waited ("response_closed"; not those the
	// run's cut ended).
	Errors map[string]uint64 `json:"errors"`
	// ErrorCount is the sum of Errors; ErrorRate is it per operation (a
	// session's connection or a message sent).
	ErrorCount uint64  `json:"error_count"`
	ErrorRate  float64 `json:"error_rate"`
	// Sent counts client messages sent, Rehearsed those of them sent as
	// rehearsals (replayer.Options.Rehearse); Skipped the messages the
	// filters held back, by reason ("mutating", "unknown", "reply", ...),
	// and SkippedByKind the same by reason and message kind
	// (replayer.Stats.SkippedByKind).
	Sent      uint64 `json:"messages_sent"`
	Rehearsed uint64 `json:"messages_rehearsed"`
	// Requests counts the messages of Sent that waited for an answer
	// (replayer.Stats.Requests). Each ended as exactly one of Responses
	// (answered, its latency measured), Timeouts (no answer within the
	// response timeout) or Closed (the connection ended while it waited;
	// ClosedCut of them by the run's cut at the end of the drain), so
	// Requests = Responses + Timeouts + Closed.
	Requests      uint64                       `json:"requests"`
	Responses     uint64                       `json:"responses"`
	Timeouts      uint64                       `json:"timeouts"`
	Closed        uint64                       `json:"requests_closed"`
	ClosedCut     uint64                       `json:"requests_closed_cut"`
	Skipped       map[string]uint64            `json:"messages_skipped"`
	SkippedByKind map[string]map[string]uint64 `json:"skipped_by_kind,omitempty"`
	// Throughput over the whole run, per second.
	SessionsPerSecond  float64 `json:"sessions_per_second"`
	MessagesPerSecond  float64 `json:"messages_per_second"`
	ResponsesPerSecond float64 `json:"responses_per_second"`
	// Latency is over every response; Kinds per message kind, most
	// frequent first; Percentiles the distribution for the chart.
	Latency     Latency       `json:"latency"`
	Kinds       []KindLatency `json:"kinds,omitempty"`
	Percentiles []Quantile    `json:"percentiles,omitempty"`
	// Intervals is the run over time, one entry per Options.Interval.
	Intervals []Interval `json:"intervals"`
}

// SessionCounts count sessions by how they ended.
type SessionCounts struct {
	Started   uint64 `json:"started"`
	Completed uint64 `json:"completed"`
	Failed    uint64 `json:"failed"`
	// Cut counts sessions still running when the drain ended.
	Cut uint64 `json:"cut"`
	// Unplayable counts sessions the filters left nothing to send (or no
	// connect): a property of the corpus, not of the target.
	Unplayable uint64 `json:"unplayable"`
	// Active is the number in flight when the snapshot was taken, Peak
	// the most at once.
	Active int64 `json:"active"`
	Peak   int64 `json:"peak"`
}

// Latency summarizes a latency distribution, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// KindLatency is the latency of one message kind.
type KindLatency struct {
	Kind    string  `json:"kind"`
	Latency Latency `json:"latency"`
}

// Quantile is one point of a latency distribution: Q percent of responses
// took at most MS milliseconds.
type Quantile struct {
	Q  float64 `json:"q"`
	MS float64 `json:"ms"`
}

// Interval is one slice of the run.
type Interval struct {
	// T is its start in seconds since the run started; Seconds its length.
	T       float64 `json:"t"`
	Seconds float64 `json:"seconds"`
	// Started and Failed count sessions; Sent, Responses, Timeouts and
	// Closed messages (Closed: requests whose connection ended while they
	// waited, the run's cut aside).
	Started   int `json:"started"`
	Failed    int `json:"failed"`
	Sent      int `json:"sent"`
	Responses int `json:"responses"`
	Timeouts  int `json:"timeouts"`
	Closed    int `json:"closed"`
	// Latency of the interval's responses, in milliseconds; zero when
	// there were none.
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Progress is a live snapshot of a run.
type Progress struct {
	// Elapsed is the time since the start.
	Elapsed time.Duration
	// Rate is the sessions started per second over the last second.
	Rate float64
	// Active, Started and Errors are summed over the targets.
	Active  int64
	Started uint64
	Errors  uint64
	// ErrorRate is the first target's.
	ErrorRate float64
	// P50 and P99 are the first target's latency so far; Responses its
	// count.
	P50, P99  time.Duration
	Responses int64
}
