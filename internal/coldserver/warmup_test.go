package coldserver

import (
	"slices"
	"testing"
	"time"
)

// testScale makes a server that warms in a few seconds at a few hundred
// queries/s: thresholds of 2 and 10 invocations, compile costs a fifth.
const testScale = 0.2

// histTotals returns a histogram's sum and count from /metrics.
func histTotals(t *testing.T, s *Server, name string) (sum float64, count uint64) {
	t.Helper()
	f := scrape(t, s)[name]
	if f == nil {
		t.Fatalf("no %s", name)
	}
	h := f.GetMetric()[0].GetHistogram()
	return h.GetSampleSum(), h.GetSampleCount()
}

func TestWarmUp(t *testing.T) {
	s, url := start(t, &Options{Scale: testScale, WarmWindow: 2 * time.Second, Seed: 7})
	l := startLoad(t, url, 8, 400)

	type point struct {
		at        time.Duration
		compileMS float64
		jitterSum float64
		jitterN   uint64
	}
	var points []point
	var mid *State
	deadline := time.Now().Add(20 * time.Second)
	var warmedAt time.Time
	for {
		time.Sleep(100 * time.Millisecond)
		st := s.State()
		js, jn := histTotals(t, s, "jvm_scheduler_jitter_seconds")
		points = append(points, point{time.Since(l.start), counter(t, s, "jvm_compilation_time_ms_total"), js, jn})
		if mid == nil && st.Tiers[C2] > 0 {
			mid = &st
		}
		if warmedAt.IsZero() && !st.WarmAt.IsZero() {
			warmedAt = time.Now()
		}
		if !warmedAt.IsZero() && time.Since(warmedAt) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not warm after 20 s: %+v", st)
		}
	}
	l.stop()
	st := s.State()
	t.Logf("warm %v after the load started; tiers %v of %d paths seen; %.0f ms compiling; %d requests",
		st.WarmAt.Sub(l.start), st.Tiers, st.PathsSeen, st.CompileMillis, st.Requests)

	// At the first C2 install, the hottest path is ahead of the rarest.
	hot, rare := mid.Paths[0], PathState{Invocations: ^uint64(0)}
	for _, p := range mid.Paths {
		if p.Invocations > hot.Invocations {
			hot = p
		}
		if p.Invocations > 0 && p.Invocations < rare.Invocations {
			rare = p
		}
	}
	if hot.Tier <= rare.Tier || rare.Tier == C2 {
		t.Errorf("at the first C2 install the hottest path %+v is not ahead of the rarest %+v", hot, rare)
	}
	if st.Tiers[C2] < st.PathsSeen/2 || st.Framework.Tier != C2 {
		t.Errorf("only %v of %d paths at C2, framework %v", st.Tiers, st.PathsSeen, st.Framework.Tier)
	}

	// The hottest kind's latency falls by a large factor.
	var lats []float64
	for _, x := range l.snapshot() {
		if x.kind == "tasks.list" {
			lats = append(lats, float64(x.lat.Microseconds()))
		}
	}
	const n = 20
	if len(lats) < 4*n {
		t.Fatalf("only %d tasks.list results", len(lats))
	}
	first, last := median(lats[:n]), median(lats[len(lats)-n:])
	t.Logf("tasks.list median latency: first %d %.2f ms, last %d %.2f ms", n, first/1000, n, last/1000)
	if first < 5*last {
		t.Errorf("tasks.list latency fell only from %.2f ms to %.2f ms", first/1000, last/1000)
	}

	// Compile work comes early: its rate in the last second is a fraction
	// of its peak rate over any second.
	rate := func(i, j int) float64 {
		return (points[j].compileMS - points[i].compileMS) / (points[j].at - points[i].at).Seconds()
	}
	var peak float64
	for i := range points {
		for j := i + 1; j < len(points); j++ {
			if points[j].at-points[i].at >= time.Second {
				peak = max(peak, rate(i, j))
				break
			}
		}
	}
	lastI := len(points) - 1
	for lastI > 0 && points[len(points)-1].at-points[lastI].at < time.Second {
		lastI--
	}
	final := rate(lastI, len(points)-1)
	t.Logf("compile rate: peak %.0f ms/s, last second %.0f ms/s", peak, final)
	if points[len(points)-1].compileMS <= 0 || final > peak/3 {
		t.Errorf("compile rate did not fall: peak %.0f ms/s, last second %.0f ms/s", peak, final)
	}
	j0, j1 := points[min(9, lastI)], points[len(points)-1]
	t.Logf("jitter mean: first second %.2f ms, last second %.2f ms",
		1000*j0.jitterSum/float64(max(j0.jitterN, 1)),
		1000*(j1.jitterSum-points[lastI].jitterSum)/float64(max(j1.jitterN-points[lastI].jitterN, 1)))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
