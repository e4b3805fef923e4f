package canary

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Status is a live view of a phase.
type Status struct {
	// State is "waiting", "running" or "done".
	State string `json:"state"`
	// Elapsed is the seconds since the phase began.
	Elapsed float64 `json:"elapsed_seconds"`
	// Candidate and Reference are the targets' counts so far.
	Candidate TargetStatus `json:"candidate"`
	Reference TargetStatus `json:"reference"`
	// Result is the verdict, once done.
	Result *Result `json:"result,omitempty"`
}

// TargetStatus is one target's counts so far.
type TargetStatus struct {
	URL       string `json:"url"`
	Sessions  uint64 `json:"sessions"`
	Sent      uint64 `json:"messages_sent"`
	Responses uint64 `json:"responses"`
	Timeouts  uint64 `json:"timeouts"`
}

// Status returns the phase's state, its counts so far and its result once
// done.
func (c *Canary) Status() Status {
	c.mu.Lock()
	st := Status{State: c.state, Result: c.result}
	if !c.started.IsZero() {
		st.Elapsed = time.Since(c.started).Seconds()
	}
	c.mu.Unlock()
	for i, a := range c.arms {
		rs := a.rp.Stats()
		ts := TargetStatus{URL: a.rec.url, Sessions: rs.SessionsStarted, Sent: rs.MessagesSent, Responses: rs.Responses, Timeouts: rs.Timeouts}
		if i == 0 {
			st.Candidate = ts
		} else {
			st.Reference = ts
		}
	}
	return st
}

// phaseMetrics are the preheat_canary_* metrics besides each target's.
type phaseMetrics struct {
	running  *metrics.Gauge
	waits    *metrics.Counter
	outcome  map[string]*metrics.Gauge
	runs     map[string]*metrics.Counter
	findings *metrics.Gauge
}

func newPhaseMetrics(s *metrics.Set) *phaseMetrics {
	m := &phaseMetrics{
		running:  s.NewGauge("preheat_canary_running", nil),
		waits:    s.NewCounter("preheat_canary_busy_waits_total"),
		findings: s.NewGauge("preheat_canary_regressions", nil),
		outcome:  map[string]*metrics.Gauge{},
		runs:     map[string]*metrics.Counter{},
	}
	for _, o := range Outcomes {
		m.outcome[o] = s.NewGauge(`preheat_canary_outcome{outcome="`+o+`"}`, nil)
		m.runs[o] = s.NewCounter(`preheat_canary_runs_total{outcome="` + o + `"}`)
	}
	return m
}

func (m *phaseMetrics) done(res *Result) {
	for o, g := range m.outcome {
		v := 0.0
		if o == res.Outcome {
			v = 1
		}
		g.Set(v)
	}
	m.runs[res.Outcome].Inc()
	m.findings.Set(float64(len(res.Regressions)))
}
