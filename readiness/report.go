package readiness

import "time"

// Report is the record of one warm run: what was decided, when and why, and
// the time series of every signal the decision looked at. It is written as
// JSON (the machine-readable summary) and as a self-contained HTML page with
// the curves (see WriteHTML).
type Report struct {
	// Target is the websocket URL that was warmed.
	Target string `json:"target"`
	// MetricsURL is the Prometheus endpoint that was scraped; empty when
	// none was (a target without a JIT, decided on replay latency).
	MetricsURL string `json:"metrics_url"`
	// Started is when the run began; every Point.T counts seconds from it.
	Started time.Time `json:"started"`
	// Ended is when the run ended (release, deadline or cancellation).
	Ended time.Time `json:"ended"`
	// Outcome is how the run ended: "warm" (signals flattened),
	// "deadline_open" (deadline hit, released anyway), "deadline_closed"
	// (deadline hit, not released), "held" (warm, but a canary found a
	// regression and held it), "canceled" or "failed".
	Outcome string `json:"outcome"`
	// Released is set when the pod was released to traffic.
	Released bool `json:"released"`
	// ReleasedAt is when it was released; zero if it was not.
	ReleasedAt time.Time `json:"released_at,omitzero"`
	// Reason says in a sentence why the run ended as it did, naming the
	// signals and the values that decided it.
	Reason string `json:"reason"`
	// Signals holds the time series of each signal, in display order, then,
	// with Options.LoadShare, the share of its full rate the replay was
	// allowed (LoadShareSeries). With Options.NoJIT a signal never seen is
	// left out; otherwise it is kept, Missing.
	Signals []Series `json:"signals"`
	// Marks are moments worth drawing on every chart (first session
	// replayed, a signal turning flat, release).
	Marks []Mark `json:"marks,omitempty"`
	// Facts are labelled figures for a summary table (sessions replayed,
	// messages skipped as mutating, settings), in display order.
	Facts []Fact `json:"facts,omitempty"`
}

// Series is one signal over time.
type Series struct {
	// Name identifies the signal, such as "jitter_p99_seconds",
	// "compile_ms_per_second" or "replay_latency_p50_ms".
	Name string `json:"name"`
	// Title is a human label for the chart, such as "Scheduler jitter p99".
	Title string `json:"title"`
	// Unit is the unit of V, such as "s", "ms/s" or "ms".
	Unit string `json:"unit"`
	// Threshold is the absolute limit the signal had to stay under; 0 when
	// none applies.
	Threshold float64 `json:"threshold,omitempty"`
	// FlatAt is seconds from Started at which the signal was last judged
	// flat, or -1 if it never was.
	FlatAt float64 `json:"flat_at"`
	// Missing is set when the target never exposed the signal (no JIT
	// compile metric, say); Points is then empty. A Watcher under
	// Options.NoJIT leaves such a series out of its Report instead.
	Missing bool `json:"missing,omitempty"`
	// Points are the samples, oldest first.
	Points []Point `json:"points"`
}

// Point is one sample: T seconds after Report.Started, value V.
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// Mark is a labelled moment, T seconds after Report.Started.
type Mark struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// Fact is one labelled figure for the report's summary table.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
