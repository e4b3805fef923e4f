package replayer

import (
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// replayMetrics are the replay's metrics in its set.
type replayMetrics struct {
	set                      *metrics.Set
	sent, received, timeouts *metrics.Counter
	rehearsed                *metrics.Counter
	control, answered        *metrics.Counter
	orderExpired             *metrics.Counter
	requests, closed         *metrics.Counter
	evicted                  *metrics.Counter
	completed, stopped       *metrics.Counter
	latency                  *metrics.Histogram
}

func newReplayMetrics(s *metrics.Set, r *Replayer) replayMetrics {
	s.NewGauge("preheat_replay_sessions_active", func() float64 { return float64(r.active.Load()) })
	s.NewGauge("preheat_replay_rate_limit", func() float64 { return float64(r.limitMilli.Load()) / 1000 })
	s.NewGauge("preheat_replay_requests_awaiting", func() float64 { return float64(r.stats.awaiting()) })
	if r.opts.MaxCPUPressure > 0 {
		s.NewGauge("preheat_replay_cpu_pressure", func() float64 { return float64(r.pressureM.Load()) / 1e6 })
	}
	return replayMetrics{
		set:          s,
		sent:         s.NewCounter("preheat_replay_messages_sent_total"),
		rehearsed:    s.NewCounter("preheat_replay_messages_rehearsed_total"),
		control:      s.NewCounter("preheat_replay_control_messages_sent_total"),
		answered:     s.NewCounter("preheat_replay_answers_sent_total"),
		orderExpired: s.NewCounter("preheat_replay_order_waits_expired_total"),
		received:     s.NewCounter("preheat_replay_server_messages_total"),
		timeouts:     s.NewCounter("preheat_replay_response_timeouts_total"),
		// Every request ends as a response (preheat_replay_response_seconds_count),
		// a timeout or closed: requests_total is their sum plus requests_awaiting.
		requests:  s.NewCounter("preheat_replay_requests_total"),
		closed:    s.NewCounter("preheat_replay_requests_closed_total"),
		evicted:   s.NewCounter("preheat_replay_requests_evicted_total"),
		completed: s.NewCounter(`preheat_replay_sessions_total{result="completed"}`),
		stopped:   s.NewCounter(`preheat_replay_sessions_total{result="stopped"}`),
		latency:   s.NewHistogram("preheat_replay_response_seconds"),
	}
}

// skipped returns the counter of messages skipped for k's reason and kind.
func (m *replayMetrics) skipped(k skipKey) *metrics.Counter {
	return m.set.GetOrCreateCounter(`preheat_replay_messages_skipped_total{reason="` + k.reason + `",kind="` + labelValue(k.kind) + `"}`)
}

// labelValue escapes s for a Prometheus label value: a kind comes from a
// recorded session, and may hold anything.
func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func (m *replayMetrics) failed(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(`preheat_replay_sessions_total{result="failed",reason="` + reason + `"}`)
}
