package warmup_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// get fetches a page of srv and returns its status and body.
func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestWarmupReleasesWarmPod runs a warm-up against a simulated cold JVM,
// over a real cache, websocket and scrapes: it is released once warm by the
// simulator's own count, through /readyz, the ready file and the webhook,
// with no mutation sent and no session dropped at the replay's stop.
func TestWarmupReleasesWarmPod(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-time warm-up of a simulated JVM: about 40 seconds")
	}
	src := serveCache(t, corpusSessions(5, 300, 20, 0.1))
	sim, target, metricsURL := serveCold(t)
	hooks := make(chan http.Header, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case hooks <- r.Header.Clone():
		default:
		}
	}))
	defer hook.Close()
	file := filepath.Join(t.TempDir(), "released.json")
	w, err := warmup.New(target, metricsURL, src, &warmup.Options{
		Replay: &replayer.Options{Rate: 400, Concurrency: 8, Correlate: "id"},
		// Under -race on two busy cores scheduler jitter is the machine's
		// more than the simulator's: decide on the compile rate and the
		// replay latency (package readiness tests jitter).
		Readiness: &readiness.Options{Window: 10 * time.Second, MinWarm: 5 * time.Second, MaxWarm: 2 * time.Minute, JitterMetric: "not_exposed"},
		Release:   &readiness.GateOptions{File: file, Webhook: hook.URL},
		Facts: func(st replayer.Stats) []readiness.Fact {
			return []readiness.Fact{{Name: "Set by the caller", Value: "yes"}}
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the run: %d %s, want 503", code, body)
	}

	res, err := w.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != readiness.OutcomeWarm || !res.Decision.Release {
		t.Fatalf("decision %+v, want warm and released", res.Decision)
	}
	if sim.State().WarmAt.IsZero() {
		t.Fatalf("released before the simulator was warm by its own count: %+v", sim.State().Tiers)
	}
	if n := sim.Mutations(); n != 0 {
		t.Fatalf("the warm-up sent %d mutating messages", n)
	}
	if n := sim.Dropped(); n != 0 {
		t.Fatalf("the replay's stop dropped %d sessions without a close handshake", n)
	}
	if res.Stats.MessagesSent < warmup.DefaultMinResponses || res.Stats.MessagesSkipped["mutating"] == 0 {
		t.Fatalf("stats %+v: want at least %d messages sent and mutations skipped", res.Stats, warmup.DefaultMinResponses)
	}
	select {
	case h := <-hooks:
		if h.Get("X-Preheat-Target") != target || h.Get("X-Preheat-Host") == "" {
			t.Fatalf("webhook headers %v: want the target and the host", h)
		}
	default:
		t.Fatal("the webhook was not called on release")
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("ready file: %v", err)
	}
	facts := map[string]string{}
	names := []string{}
	for _, f := range res.Report.Facts {
		facts[f.Name] = f.Value
		names = append(names, f.Name)
	}
	if facts["Concurrency"] != "8" || facts["Set by the caller"] != "yes" || facts["Message kinds covered"] == "" ||
		slices.Index(names, "Set by the caller") != slices.Index(names, "Concurrency")+1 {
		t.Fatalf("report facts %v", res.Report.Facts)
	}

	for _, page := range [][2]string{
		{"/readyz", `"ready":true`},
		{"/status", `"ready": true`},
		{"/report", "<svg"},
		{"/report.json", `"outcome": "warm"`},
		{"/metrics", "preheat_replay_messages_sent_total"},
		{"/metrics", "preheat_readiness_gate_releases_total 1"},
		{"/healthz", "ok"},
	} {
		if code, body := get(t, srv, page[0]); code != http.StatusOK || !strings.Contains(body, page[1]) {
			t.Fatalf("GET %s: %d, want %q in:\n%.2000s", page[0], code, page[1], body)
		}
	}

	paths, err := warmup.WriteReport(filepath.Join(t.TempDir(), "report"), res.Report)
	if err != nil {
		t.Fatal(err)
	}
	var rep readiness.Report
	if b, err := os.ReadFile(paths[0]); err != nil || json.Unmarshal(b, &rep) != nil || rep.Outcome != readiness.OutcomeWarm || rep.Target != target {
		t.Fatalf("report %s: %v %+v", paths[0], err, rep)
	}
}

// TestWarmupIdlePodIsNotWarm: a replay that gets no answers leaves the pod
// idle, and an idle pod's signals are flat too. Unless told otherwise the
// warm-up requires DefaultMinResponses answers, and the deadline decides.
func TestWarmupIdlePodIsNotWarm(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time warm-ups of an idle simulated pod: about 9 seconds")
	}
	f := func(minResponses int, outcome, reason string) {
		t.Helper()
		_, target, metricsURL := serveCold(t)
		w, err := warmup.New(target, metricsURL, replayer.NewSliceSource(nil), &warmup.Options{
			Readiness: &readiness.Options{Interval: 200 * time.Millisecond, Window: 2 * time.Second, MinWarm: time.Nanosecond,
				MaxWarm: 5 * time.Second, MinResponses: minResponses, JitterMetric: "not_exposed"},
			Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		res, err := w.Run(t.Context())
		if err != nil || res.Decision.Outcome != outcome || !strings.Contains(res.Decision.Reason, reason) {
			t.Errorf("min responses %d: %v, outcome %q, reason %q; want %q, %q", minResponses, err, res.Decision.Outcome, res.Decision.Reason, outcome, reason)
		}
	}
	f(0, readiness.OutcomeDeadlineOpen, "0 of the 500 replay responses required")
	f(-1, readiness.OutcomeWarm, "")
}

// TestWarmupKeepWarming: with KeepWarming the replay goes on after the
// release until Close, which stops it.
func TestWarmupKeepWarming(t *testing.T) {
	src := serveCache(t, corpusSessions(6, 50, 20, 0))
	sim, target, metricsURL := serveCold(t)
	w, err := warmup.New(target, metricsURL, src, &warmup.Options{
		Replay:      &replayer.Options{Rate: 200, Concurrency: 4, Correlate: "id"},
		Readiness:   &readiness.Options{Interval: 200 * time.Millisecond, Window: 2 * time.Second, MinWarm: time.Nanosecond, MaxWarm: 2 * time.Second},
		KeepWarming: true,
		Logger:      quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res, err := w.Run(t.Context())
	if err != nil || !res.Decision.Release {
		t.Fatalf("run: %v, decision %+v; want a release by the deadline", err, res.Decision)
	}
	before := sim.State().Requests
	time.Sleep(time.Second)
	if after := sim.State().Requests; after <= before {
		t.Fatalf("no request in the second after the release (%d, then %d): the replay stopped", before, after)
	}
	w.Close()
	w.Close()
	stopped := sim.State().Requests
	time.Sleep(300 * time.Millisecond)
	if n := sim.State().Requests; n != stopped {
		t.Fatalf("%d requests after Close", n-stopped)
	}
	if _, err := w.Run(context.Background()); err == nil {
		t.Fatal("a second Run did not fail")
	}
}
