package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass condition on a run, such as p99<250ms, errors<0.1%
// or p99[tasks.list]<100ms.
type Threshold struct {
	// Metric is a latency ("p50", "p90", "p95", "p99", "p99.9", "max",
	// "mean"), "errors" (the error rate) or "rps" (responses per second).
	Metric string
	// Kind restricts a latency to one message kind, or "errors" to one
	// error class. Default "": all.
	Kind string
	// Op is "<", "<=", ">" or ">=".
	Op string
	// Value is in milliseconds for a latency, a fraction for errors (0.001
	// for 0.1%), per second for rps.
	Value float64
	// Text is the threshold as written.
	Text string
}

var latencyMetrics = map[string]func(Latency) float64{
	"p50":   func(l Latency) float64 { return l.P50 },
	"p90":   func(l Latency) float64 { return l.P90 },
	"p95":   func(l Latency) float64 { return l.P95 },
	"p99":   func(l Latency) float64 { return l.P99 },
	"p99.9": func(l Latency) float64 { return l.P999 },
	"p999":  func(l Latency) float64 { return l.P999 },
	"max":   func(l Latency) float64 { return l.Max },
	"mean":  func(l Latency) float64 { return l.Mean },
}

// ParseThreshold parses METRIC[KIND]OP VALUE, such as "p99<250ms",
// "p99[tasks.list] < 100ms", "errors<0.1%", "errors[connect]<=0" or
// "rps>=500". Spaces around the parts are ignored.
func ParseThreshold(s string) (Threshold, error) {
	t := Threshold{Text: strings.TrimSpace(s)}
	rest := t.Text
	i := strings.IndexAny(rest, "[<>")
	if i <= 0 {
		return t, fmt.Errorf("parse threshold %q: want METRIC<VALUE such as p99<250ms", s)
	}
	t.Metric = strings.ToLower(strings.TrimSpace(rest[:i]))
	rest = rest[i:]
	if rest[0] == '[' {
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return t, fmt.Errorf("parse threshold %q: unclosed [", s)
		}
		t.Kind = strings.TrimSpace(rest[1:j])
		if t.Kind == "" {
			return t, fmt.Errorf("parse threshold %q: empty []", s)
		}
		rest = strings.TrimSpace(rest[j+1:])
	}
	for _, op := range []string{"<=", ">=", "<", ">"} {
		if v, ok := strings.CutPrefix(rest, op); ok {
			t.Op, rest = op, strings.TrimSpace(v)
			break
		}
	}
	if t.Op == "" {
		return t, fmt.Errorf("parse threshold %q: want one of < <= > >= after the metric", s)
	}
	if rest == "" {
		return t, fmt.Errorf("parse threshold %q: no value", s)
	}
	switch {
	case latencyMetrics[t.Metric] != nil:
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return t, fmt.Errorf("parse threshold %q: %s needs a duration such as 250ms", s, t.Metric)
		}
		t.Value = float64(d) / 1e6
	case t.Metric == "errors":
		pct := strings.HasSuffix(rest, "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(rest, "%")), 64)
		if err != nil || v < 0 || v != v {
			return t, fmt.Errorf("parse threshold %q: errors needs a rate such as 0.1%% or 0.001", s)
		}
		if pct {
			v /= 100
		}
		if v > 1 {
			return t, fmt.Errorf("parse threshold %q: an error rate above 100%%", s)
		}
		t.Value = v
	case t.Metric == "rps":
		if t.Kind != "" {
			return t, fmt.Errorf("parse threshold %q: rps takes no [kind]", s)
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(rest, "/s"), 64)
		if err != nil || v < 0 || v != v || v > 1e12 {
			return t, fmt.Errorf("parse threshold %q: rps needs a number of responses per second", s)
		}
		t.Value = v
	default:
		return t, fmt.Errorf("parse threshold %q: unknown metric %q: want p50, p90, p95, p99, p99.9, max, mean, errors or rps", s, t.Metric)
	}
	return t, nil
}

// String returns the threshold as written.
func (t Threshold) String() string { return t.Text }

// Verdict is a threshold judged against one target.
type Verdict struct {
	Threshold string `json:"threshold"`
	Target    string `json:"target"`
	// Actual is the measured value, in the threshold's unit (ms, a
	// fraction, per second); Unit names it.
	Actual float64 `json:"actual"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
	// Note says why a threshold could not be judged (no responses of the
	// kind, say); such a threshold fails.
	Note string `json:"note,omitempty"`
}

// Check judges each threshold against every target of the run, records
// the verdicts in r.Thresholds and reports whether all passed.
func (r *Result) Check(ths []Threshold) bool {
	r.Thresholds = r.Thresholds[:0]
	ok := true
	for _, t := range ths {
		for _, tr := range r.Targets {
			v := t.judge(&tr)
			ok = ok && v.Pass
			r.Thresholds = append(r.Thresholds, v)
		}
	}
	return ok
}

func (t Threshold) judge(tr *TargetResult) Verdict {
	v := Verdict{Threshold: t.Text, Target: tr.Name}
	switch {
	case latencyMetrics[t.Metric] != nil:
		v.Unit = "ms"
		l := tr.Latency
		if t.Kind != "" {
			l = Latency{}
			for _, k := range tr.Kinds {
				if k.Kind == t.Kind {
					l = k.Latency
				}
			}
		}
		if l.Count == 0 {
			v.Note = "no responses measured"
			if t.Kind != "" {
				v.Note = "no responses of kind " + t.Kind + " measured"
			}
			return v
		}
		v.Actual = latencyMetrics[t.Metric](l)
	case t.Metric == "errors":
		v.Unit = "fraction"
		v.Actual = tr.ErrorRate
		if t.Kind != "" {
			ops := float64(tr.Sessions.Started - tr.Sessions.Unplayable + tr.Sent)
			if ops > 0 {
				v.Actual = float64(tr.Errors[t.Kind]) / ops
			} else {
				v.Actual = 0
			}
		}
		if tr.Sessions.Started == 0 {
			v.Note = "no sessions started"
			return v
		}
	case t.Metric == "rps":
		v.Unit = "/s"
		v.Actual = tr.ResponsesPerSecond
	}
	switch t.Op {
	case "<":
		v.Pass = v.Actual < t.Value
	case "<=":
		v.Pass = v.Actual <= t.Value
	case ">":
		v.Pass = v.Actual > t.Value
	case ">=":
		v.Pass = v.Actual >= t.Value
	}
	return v
}
