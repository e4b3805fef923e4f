package loadtest

import (
	"math"
	"time"
)

// profile is an arrival-rate shape over a run: a linear ramp from zero to
// the full rate over up, the full rate, then a linear ramp back to zero over
// down, ending at total. The rate is in sessions per second.
type profile struct {
	rate     float64
	up, down float64 // seconds
	total    float64 // seconds
}

func newProfile(rate float64, total, up, down time.Duration) profile {
	return profile{rate: rate, up: up.Seconds(), down: down.Seconds(), total: total.Seconds()}
}

// arrival returns the time, in seconds from the start, of the k-th arrival
// (k from 0): the moment the expected number of arrivals, the integral of
// the rate, reaches k+1/2, so that arrivals sit in the middle of their
// share of the schedule and a ramp down mirrors the ramp up. ok is false
// when the k-th arrival falls at or after the end of the run.
func (p profile) arrival(k int) (t float64, ok bool) {
	if p.rate <= 0 || p.total <= 0 {
		return 0, false
	}
	n := float64(k) + 0.5
	r := p.rate
	up, down := p.up, p.down
	if up+down > p.total { // the ramps meet: scale both to fit
		f := p.total / (up + down)
		up, down = up*f, down*f
	}
	flat := p.total - up - down
	nUp := r * up / 2
	nFlat := r * flat
	switch {
	case n < nUp:
		t = math.Sqrt(2 * up * n / r)
	case n < nUp+nFlat:
		t = up + (n-nUp)/r
	default:
		m := n - nUp - nFlat // arrivals into the ramp down
		if down <= 0 {
			return 0, false
		}
		disc := 1 - 2*m/(r*down)
		if disc <= 0 {
			return 0, false
		}
		t = up + flat + down*(1-math.Sqrt(disc))
	}
	if t >= p.total {
		return 0, false
	}
	return t, true
}

// workerWindow returns when closed-model worker i of n starts and stops
// taking sessions, in seconds: the workers join one by one over the ramp up
// and leave one by one over the ramp down, worker 0 first in and last out.
func workerWindow(i, n int, total, up, down time.Duration) (start, stop time.Duration) {
	start = time.Duration(float64(up) * float64(i) / float64(n))
	stop = total - time.Duration(float64(down)*float64(i)/float64(n))
	return start, stop
}
