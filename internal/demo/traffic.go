package demo

import (
	"context"
	"fmt"
	"time"
)

// measure sends FirstTraffic of real clients to s, reporting every five
// seconds, and returns their latencies.
func (r *run) measure(ctx context.Context, s *server, what string) *Latency {
	r.say("%s: %v of real clients to server %s", what, r.o.FirstTraffic, s.name)
	fleet := r.fleet(s.url() + "?client=web")
	ctx, cancel := context.WithTimeout(ctx, r.o.FirstTraffic)
	defer cancel()
	done := make(chan *Latency, 1)
	go func() { done <- fleet.Run(ctx, 1000) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case lat := <-done:
			return lat
		case <-tick.C:
			st := s.sim.State()
			p50, p99 := fleet.Latency().Window()
			r.say("  server %s: %d requests, last 5s p50 %s p99 %s, compile %.0f ms so far", s.name, fleet.Latency().Count(), FormatLatency(p50), FormatLatency(p99), st.CompileMillis)
		}
	}
}

// firstTraffic is the latency of the same real traffic to each server.
type firstTraffic struct {
	warmed, unwarmed, steady *Latency
}

// summarize prints the first traffic side by side and what the warm-up did;
// it fails if a mutating message reached server B during the warm-up.
func (r *run) summarize(w *warmed, ft firstTraffic) error {
	r.printf("\nFirst %v of traffic (%d clients, client-measured request latency):\n\n", r.o.FirstTraffic, r.o.Clients)
	r.printf("  %-28s %9s %9s %9s %14s\n", "", "requests", "p50", "p99", "p99 vs steady")
	sp99 := ft.steady.Quantile(99)
	for _, row := range []struct {
		name string
		l    *Latency
	}{{"server B, warmed by preheat", ft.warmed}, {"server C, not warmed", ft.unwarmed}, {"server B, steady state", ft.steady}} {
		r.printf("  %-28s %9d %9s %9s %13.2fx\n", row.name, row.l.Count(), FormatLatency(row.l.Quantile(50)), FormatLatency(row.l.Quantile(99)),
			float64(row.l.Quantile(99))/float64(max(sp99, 1)))
	}
	r.printf("\n")
	r.printf("Server B was released after %v (%s).\n", w.after.Round(100*time.Millisecond), w.res.Decision.Outcome)
	if !w.state.WarmAt.IsZero() {
		r.printf("  95%% of its calls ran fully compiled (C2) code from %v on, by the simulator's own count.\n", w.state.WarmAt.Sub(w.start).Round(100*time.Millisecond))
	}
	if settled, ok := CompileSettled(w.res.Report, 20, 10*time.Second); ok {
		r.printf("  Its compile rate had stayed at or under 20 ms/s for 10s at %.0fs: release / that = %.2f.\n", settled, w.after.Seconds()/settled)
	}
	if w.mutations > 0 {
		return fmt.Errorf("server B received %d mutating messages during warm-up", w.mutations)
	}
	r.printf("No mutating message reached server B (%d were in the captured sessions and skipped).\n", w.res.Stats.MessagesSkipped["mutating"])
	if len(w.reportPaths) == 2 {
		r.printf("\nWarm report: %s\n             %s\n", w.reportPaths[1], w.reportPaths[0])
	}
	return nil
}
