package demo

import (
	"context"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	f := func(ds []time.Duration, q float64, want time.Duration) {
		t.Helper()
		if got := NearestRank(ds, q); got != want {
			t.Errorf("NearestRank(%v, %v) = %v, want %v", ds, q, got, want)
		}
	}
	f(nil, 0.99, 0)
	f(ms(5), 0.99, 5*time.Millisecond)
	f(ms(3, 1, 2), 0.5, 2*time.Millisecond)
	two := make([]time.Duration, 200)
	for i := range two {
		two[i] = time.Duration(i+1) * time.Millisecond
	}
	f(two, 0.99, 198*time.Millisecond) // the third slowest of 200
}

func TestRequestsAreReadInSendOrder(t *testing.T) {
	at := time.Unix(1763800000, 0)
	l := &Requests{}
	for i, ms := range []int{40, 10, 30, 20} { // added out of order, as clients finish
		l.Add(Request{Sent: at.Add(time.Duration(ms) * time.Millisecond), Latency: time.Duration(i+1) * time.Millisecond})
	}
	rs := l.InOrder()
	for i := 1; i < len(rs); i++ {
		if rs[i].Sent.Before(rs[i-1].Sent) {
			t.Fatalf("not in send order: %v", rs)
		}
	}
	// In send order the latencies are 2, 4, 3, 1 ms.
	if got := l.P99(0, 2); got != 4*time.Millisecond {
		t.Errorf("p99 of the first two sent: %v, want 4ms", got)
	}
	if got := l.P99(2, 100); got != 3*time.Millisecond {
		t.Errorf("p99 of the rest: %v, want 3ms", got)
	}
	if got := l.P99(4, 100); got != 0 {
		t.Errorf("p99 of none: %v", got)
	}
	if got := l.Between(at.Add(20*time.Millisecond), at.Add(40*time.Millisecond)); len(got) != 2 {
		t.Errorf("sent in [20ms, 40ms): %v, want two", got)
	}
}

// TestPaceTimesEveryRequest drives a simulated server and checks what the
// record holds; its rate is not asserted, as the machine decides it.
func TestPaceTimesEveryRequest(t *testing.T) {
	s, err := startServer("A", 0.25, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	l := Pace(ctx, s.url(), &PaceOptions{Clients: 2, Rate: 200, Queries: 10}, 1)
	rs := l.InOrder()
	if l.Errors() != 0 || len(rs) == 0 || len(rs) > 200+2 {
		t.Fatalf("%d requests (at most 202 in a second at 200/s), %d sessions failed", len(rs), l.Errors())
	}
	writes := 0
	for _, r := range rs {
		if r.Latency <= 0 {
			t.Fatalf("request without a latency: %+v", r)
		}
		if r.Write {
			writes++
		}
	}
	// Sessions of ten requests, the tenth a mutation.
	if writes > len(rs)/10 {
		t.Errorf("%d writes in %d requests, want at most one in ten", writes, len(rs))
	}
	if s.sim.Mutations() < uint64(writes) {
		t.Errorf("the server saw %d mutations, the clients timed %d", s.sim.Mutations(), writes)
	}
}
