package loadtest

import (
	"testing"
	"time"
)

func TestProfileArrivals(t *testing.T) {
	f := func(rate float64, total, up, down time.Duration, want int) {
		t.Helper()
		p := newProfile(rate, total, up, down)
		prev := -1.0
		n := 0
		for k := 0; ; k++ {
			at, ok := p.arrival(k)
			if !ok {
				break
			}
			if at < prev || at >= p.total {
				t.Fatalf("arrival %d at %v after %v (total %v)", k, at, prev, p.total)
			}
			// The rate in force never exceeds the full rate: the gap
			// to the next arrival is at least 1/rate in the flat part.
			prev = at
			n++
		}
		if n != want {
			t.Errorf("rate %v over %v (ramps %v, %v): %d arrivals, want %d", rate, total, up, down, n, want)
		}
	}
	f(10, 10*time.Second, 0, 0, 100)
	f(10, 10*time.Second, 2*time.Second, 0, 90)
	f(20, 5*time.Second, 0, 0, 100)
	f(10, 10*time.Second, 2*time.Second, 2*time.Second, 80)
	f(0.5, 10*time.Second, 0, 0, 5)
	f(10, 2*time.Second, 2*time.Second, 2*time.Second, 10) // ramps scaled to meet in the middle
	f(0, 10*time.Second, 0, 0, 0)

}

func TestWorkerWindow(t *testing.T) {
	for i, want := range [][2]time.Duration{{0, 10 * time.Second}, {time.Second, 9 * time.Second}, {2 * time.Second, 8 * time.Second}} {
		from, until := workerWindow(i, 4, 10*time.Second, 4*time.Second, 4*time.Second)
		if from != want[0] || until != want[1] {
			t.Errorf("worker %d: %v to %v, want %v to %v", i, from, until, want[0], want[1])
		}
	}
}
