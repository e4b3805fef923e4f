package warmup

import "time"

// loadMeter tells readiness how much of its full rate the back-off lets
// the replay send (readiness.Options.LoadShare). Its share is the rate
// limit over the full rate while the limit is what paces the replay, and 1
// while the replay sends well under its limit for reasons of its own (few
// or slow sessions, a slow pod at the concurrency limit): lowering the
// limit then takes no load off the pod.
type loadMeter struct {
	sent uint64
	at   time.Time
}

// share is called once per readiness interval with the messages sent so
// far, the current rate limit and the full rate.
func (m *loadMeter) share(now time.Time, sent uint64, limit, rate float64) float64 {
	prevSent, prevAt := m.sent, m.at
	m.sent, m.at = sent, now
	if limit >= rate || prevAt.IsZero() || !now.After(prevAt) || sent < prevSent {
		return 1
	}
	if sending := float64(sent-prevSent) / now.Sub(prevAt).Seconds(); sending < 0.8*limit {
		return 1 // the limit does not bind
	}
	return limit / rate
}
