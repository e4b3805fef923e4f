package replayer

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// control adjusts the message rate once a second, additive increase and
// multiplicative decrease. It backs off when the target is queueing (a
// warming pod must not starve its neighbours): the p90 response latency of
// the last 3 seconds exceeds BackoffLatency times the best such p90 of the
// last minute, by more than BackoffFloor, two seconds running. It also
// backs off when more than BackoffErrors of the last second's messages and
// sessions failed. Otherwise it climbs back toward Rate by a tenth of Rate a
// second. A cold target whose latency is falling never triggers it: its
// best p90 is its latest. The 3-second span and the two-second confirmation
// keep one slow second (a GC pause, a busy neighbour) from halving the rate.
//
// With MaxCPUPressure set it also backs off, at once, after a second in
// which the node's CPU stall share exceeded it, and holds (no climb) while
// the share is over half of it: the node's neighbours are waiting for CPU
// and the target's replayed work and compiles add to that.
func (r *Replayer) control(ctx context.Context) {
	const tick = time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	var best [60]time.Duration // 3-second p90s, a ring over the last minute
	var i, over int
	limit := r.opts.StartRate
	var psi *stallMeter
	pressureOff := func(err error) {
		r.log.Warn("replay: CPU pressure unreadable; backing off on latency and errors only", "err", err)
		r.m.set.GetOrCreateCounter(`preheat_replay_cpu_pressure_errors_total`).Inc()
		r.pressureM.Store(-1e6)
		psi = nil
	}
	if r.opts.MaxCPUPressure > 0 {
		psi = &stallMeter{file: r.opts.PressureFile}
		if _, _, err := psi.read(); err != nil {
			pressureOff(err)
		}
	}
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		stall, stallOK := 0.0, false
		if psi != nil {
			var err error
			if stall, stallOK, err = psi.read(); err != nil {
				pressureOff(err)
			} else if stallOK {
				r.pressureM.Store(int64(stall * 1e6))
			}
		}
		pressured := stallOK && stall > r.opts.MaxCPUPressure
		nearLimit := stallOK && stall > r.opts.MaxCPUPressure/2
		p90, n := r.hist.takeRecent()
		sent, errs := r.hist.sent.Swap(0), r.hist.errors.Swap(0)
		if n > 0 {
			best[i%len(best)] = p90
			i++
		}
		low := time.Duration(0)
		for _, v := range best {
			if v > 0 && (low == 0 || v < low) {
				low = v
			}
		}
		queueing := n > 0 && low > 0 && float64(p90) > r.opts.BackoffLatency*float64(low) && p90-low > r.opts.BackoffFloor
		if queueing {
			over++
		} else {
			over = 0
		}
		next := limit
		switch {
		case over >= 2:
			next = limit * 0.7
		case sent+errs > 0 && float64(errs) > r.opts.BackoffErrors*float64(sent+errs):
			next = limit * 0.5
		case pressured:
			next = limit * 0.7
		case queueing, nearLimit:
			// one slow span: hold until the next says whether it lasts;
			// a node near its pressure limit: hold rather than add to it
		default:
			next = limit + r.opts.Rate/10
		}
		next = min(max(next, r.opts.MinRate), r.opts.Rate)
		if next != limit {
			if next < limit {
				attrs := []any{"rate", next, "p90", p90, "best_p90", low, "errors", errs, "sent", sent}
				if stallOK {
					attrs = append(attrs, "cpu_pressure", stall)
				}
				r.log.Info("replay backing off", attrs...)
			}
			limit = next
			r.limiter.SetLimit(rate.Limit(limit))
			r.limitMilli.Store(int64(limit * 1000))
		}
	}
}
