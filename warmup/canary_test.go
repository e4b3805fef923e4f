package warmup_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// serveWarmSim starts a simulator that is warm from the start, as a pod
// of a version that has served traffic a while; slow makes some kinds'
// code paths slower. It returns its websocket and metrics URLs.
func serveWarmSim(t *testing.T, slow map[string]float64) (target, metricsURL string) {
	t.Helper()
	sim := coldserver.New(&coldserver.Options{Warm: true, Seed: 1, Slow: slow})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	addr := srv.Listener.Addr().String()
	return "ws://" + addr + "/sync", "http://" + addr + "/metrics"
}

// canaryWarmup returns a warm-up of target with a canary against
// reference: the signals flatten within seconds on a warm simulator, and
// the canary runs for phase at 200 msg/s; the deadline is maxWarm.
func canaryWarmup(t *testing.T, target, metricsURL, reference string, releaseOnRegression bool, phase, maxWarm time.Duration) *warmup.Warmup {
	t.Helper()
	src := serveCache(t, corpusSessions(8, 200, 20, 0.1))
	w, err := warmup.New(target, metricsURL, src, &warmup.Options{
		Replay:    &replayer.Options{Rate: 400, Concurrency: 8, Correlate: "id"},
		Readiness: &readiness.Options{Interval: 200 * time.Millisecond, Window: 2 * time.Second, MinWarm: time.Nanosecond, MaxWarm: maxWarm, JitterMetric: "not_exposed"},
		Canary: &warmup.Canary{Reference: reference, ReleaseOnRegression: releaseOnRegression,
			Options: &canary.Options{Rate: 200, Duration: phase, Concurrency: 16, Interval: 250 * time.Millisecond, MinResponses: 100, MinKindResponses: 30}},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// slowFactor is the tests' regression: tasks.get's code path this many
// times slower, some 100 to 280 ms more a request, large beside the noise
// of two busy cores under the race detector (canary's tests say more).
const slowFactor = 200

// TestWarmupCanaryHoldsRegression: a warm pod whose code path for one
// kind is much slower than the version in service is held until
// the deadline, unready, the kind named in the decision, /status, the
// metrics and the report.
func TestWarmupCanaryHoldsRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-time warm-up and canary phase of simulated servers: about 16 seconds")
	}
	target, metricsURL := serveWarmSim(t, map[string]float64{"tasks.get": slowFactor})
	reference, _ := serveWarmSim(t, nil)
	w := canaryWarmup(t, target, metricsURL, reference, false, 6*time.Second, 16*time.Second)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	res, err := w.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Canary == nil || res.Canary.Outcome != canary.Regression || !strings.Contains(res.Canary.Finding, " on tasks.get, ") {
		t.Fatalf("canary %+v", res.Canary)
	}
	if d := res.Decision; d.Release || d.Outcome != readiness.OutcomeHeld || !strings.Contains(d.Reason, "held until the deadline: the canary found a regression: candidate is") {
		t.Fatalf("decision %+v: want held", d)
	}
	if rep := res.Report; rep.Outcome != readiness.OutcomeHeld || rep.Released || !strings.Contains(factValue(rep, "Canary outcome"), "regression: candidate is") {
		t.Fatalf("report %s released %v facts %v", rep.Outcome, rep.Released, rep.Facts)
	}
	for _, page := range [][2]string{
		{"/readyz", `"ready":false`},
		{"/status", `"outcome": "regression"`},
		{"/status", `"outcome": "held"`},
		{"/metrics", `preheat_canary_outcome{outcome="regression"} 1`},
		{"/metrics", `preheat_canary_runs_total{outcome="regression"} 1`},
		{"/report.json", `"outcome": "held"`},
	} {
		if _, body := get(t, srv, page[0]); !strings.Contains(body, page[1]) {
			t.Errorf("GET %s: want %q in:\n%.3000s", page[0], page[1], body)
		}
	}
}

// TestWarmupCanaryReleasePolicy: under ReleaseOnRegression the same pod
// is released, the regression in the release's reason.
func TestWarmupCanaryReleasePolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-time warm-up and canary phase of simulated servers: about 11 seconds")
	}
	target, metricsURL := serveWarmSim(t, map[string]float64{"tasks.get": slowFactor})
	reference, _ := serveWarmSim(t, nil)
	res, err := canaryWarmup(t, target, metricsURL, reference, true, 6*time.Second, time.Minute).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Decision; !d.Release || d.Outcome != readiness.OutcomeWarm || !strings.Contains(d.Reason, "released despite a canary regression: candidate is") {
		t.Fatalf("decision %+v: want released with the regression said", d)
	}
}

// TestWarmupCanaryReferenceFails: a reference that closes every
// connection makes the canary inconclusive, and the warm pod is released.
func TestWarmupCanaryReferenceFails(t *testing.T) {
	target, metricsURL := serveWarmSim(t, nil)
	ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Close(websocket.StatusInternalError, "failing")
	}))
	defer ref.Close()
	res, err := canaryWarmup(t, target, metricsURL, "ws://"+ref.Listener.Addr().String()+"/sync", false, 3*time.Second, time.Minute).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Decision; !d.Release || !strings.Contains(d.Reason, "canary inconclusive: the reference failed") {
		t.Fatalf("decision %+v: want released, the canary inconclusive", d)
	}
}

// TestWarmupCanaryNotWithKeepWarming: the canary measures the pod under
// its own traffic only.
func TestWarmupCanaryNotWithKeepWarming(t *testing.T) {
	_, err := warmup.New("ws://127.0.0.1:1", "http://127.0.0.1:1/metrics", replayer.NewSliceSource(nil), &warmup.Options{
		KeepWarming: true, Canary: &warmup.Canary{Reference: "ws://127.0.0.1:2"}, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "keep warming") {
		t.Fatalf("New: %v", err)
	}
}

func factValue(rep *readiness.Report, name string) string {
	for _, f := range rep.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// TestWarmupCanarySkippedWhenNotWarm: a pod released by the deadline, not
// warm, has no canary phase: the canary is inconclusive and says why, and
// the deadline's policy decides as without one.
func TestWarmupCanarySkippedWhenNotWarm(t *testing.T) {
	_, target, metricsURL := serveCold(t)
	reference, _ := serveWarmSim(t, nil)
	w, err := warmup.New(target, metricsURL, replayer.NewSliceSource(nil), &warmup.Options{
		Readiness: &readiness.Options{Interval: 200 * time.Millisecond, Window: 2 * time.Second, MinWarm: time.Nanosecond, MaxWarm: 3 * time.Second, JitterMetric: "not_exposed"},
		Canary:    &warmup.Canary{Reference: reference},
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res, err := w.Run(t.Context())
	if err != nil || res.Decision.Outcome != readiness.OutcomeDeadlineOpen || !res.Decision.Release {
		t.Fatalf("%v, decision %+v: want released by the deadline", err, res.Decision)
	}
	if c := res.Canary; c == nil || c.Outcome != canary.Inconclusive || !strings.Contains(c.Finding, "no canary: the pod was not warm before the deadline") {
		t.Fatalf("canary %+v", c)
	}
}
