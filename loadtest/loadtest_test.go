package loadtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/pipenet"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

func run(t *testing.T, c *loadtest.Corpus, target string, o loadtest.Options) *loadtest.Result {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	r, err := loadtest.New(c, target, &o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runPipe runs a load test of ss, at their recorded rate unless o says
// otherwise, against tg over in-process pipes; call it in a synctest bubble.
func runPipe(t *testing.T, tg *echoTarget, ss [][]session.Event, o loadtest.Options) *loadtest.Result {
	t.Helper()
	o.Replay = &replayer.Options{Correlate: "id", HTTPClient: pipenet.Serve(t, tg)}
	return run(t, &loadtest.Corpus{Sessions: ss, Rate: loadtest.ArrivalRate(ss)}, "ws://staging", o)
}

// TestOpenModelRateAndDuration checks that the open model starts exactly
// the recorded rate times the multiplier for the duration, and measures
// the target's latency exactly (fake time).
func TestOpenModelRateAndDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &echoTarget{delay: 3 * time.Millisecond}
		ss := sessions(10, 3, 5)
		if r := loadtest.ArrivalRate(ss); r != 5 {
			t.Fatalf("recorded rate %v, want 5", r)
		}
		start := time.Now()
		res := runPipe(t, tg, ss, loadtest.Options{Multiplier: 4, Duration: 5 * time.Second})
		took := time.Since(start)
		tr := res.Targets[0]
		if res.Rate != 20 || res.Scheduled != 100 || tr.Sessions.Started != 100 || tr.Sessions.Completed != 100 {
			t.Fatalf("rate %v, scheduled %d, sessions %+v; want 20/s, 100 started and completed", res.Rate, res.Scheduled, tr.Sessions)
		}
		if took < 5*time.Second || took > 5*time.Second+200*time.Millisecond {
			t.Fatalf("run took %v, want 5s and the last session", took)
		}
		for _, iv := range tr.Intervals[:5] {
			if iv.Started != 20 {
				t.Fatalf("interval at %vs started %d sessions, want 20", iv.T, iv.Started)
			}
		}
		if tr.Responses != 400 || tr.Sent != 400 || tr.ErrorCount != 0 {
			t.Fatalf("sent %d, responses %d, errors %d; want 400, 400, 0", tr.Sent, tr.Responses, tr.ErrorCount)
		}
		if tr.Latency.P50 < 3 || tr.Latency.P99 > 3.01 {
			t.Fatalf("latency %+v, want 3ms", tr.Latency)
		}
		if len(tr.Kinds) != 3 || tr.Kinds[0].Kind != "tasks.list" || tr.Kinds[0].Latency.Count != 200 {
			t.Fatalf("kinds %+v", tr.Kinds)
		}
		if res.Lag.Max > 0.002 { // the histogram floor is 1µs
			t.Fatalf("schedule lag %v in fake time", res.Lag.Max)
		}
	})
}

// TestOpenModelKeepsStartingWhenSlow checks that a slow target does not
// slow the arrivals (no coordinated omission), while the closed model
// waits for it.
func TestOpenModelKeepsStartingWhenSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &echoTarget{delay: 3 * time.Second}
		res := runPipe(t, tg, sessions(5, 2, 1), loadtest.Options{SessionsPerSecond: 10, Duration: 2 * time.Second})
		tr := res.Targets[0]
		if tr.Sessions.Started != 20 || tr.Sessions.Completed != 20 {
			t.Fatalf("open model against a slow target: %+v, want 20 started and completed", tr.Sessions)
		}
		if _, most, _ := tg.stats(); most != 20 {
			t.Fatalf("%d sessions at once on the target, want all 20", most)
		}
		if tr.Latency.P50 < 3000 || tr.Latency.P50 > 3010 {
			t.Fatalf("p50 %vms, want 3s", tr.Latency.P50)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		res := runPipe(t, &echoTarget{delay: 3 * time.Second}, sessions(5, 2, 1), loadtest.Options{Concurrency: 2, Duration: 2 * time.Second})
		if tr := res.Targets[0]; tr.Sessions.Started != 2 {
			t.Fatalf("closed model of 2 against a slow target started %d sessions in 2s, want 2", tr.Sessions.Started)
		}
	})
}

func TestClosedModelHoldsN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &echoTarget{delay: 100 * time.Millisecond}
		res := runPipe(t, tg, sessions(5, 3, 1), loadtest.Options{Concurrency: 3, Duration: 2 * time.Second})
		tr := res.Targets[0]
		accepted, most, _ := tg.stats()
		if tr.Sessions.Peak != 3 || most < 3 {
			t.Fatalf("%d sessions at once (the target saw %d), want 3", tr.Sessions.Peak, most)
		}
		// A session takes 30ms of sends, 100ms for the last reply and a
		// close: each worker runs about 15 in 2s.
		if tr.Sessions.Started < 30 || tr.Sessions.Started != uint64(accepted) || tr.Sessions.Failed != 0 {
			t.Fatalf("sessions %+v, target accepted %d", tr.Sessions, accepted)
		}
		if res.Model != "closed" || res.Concurrency != 3 {
			t.Fatalf("model %q %d", res.Model, res.Concurrency)
		}
	})
}

func TestRampShapesStartRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := runPipe(t, &echoTarget{}, sessions(5, 1, 1), loadtest.Options{SessionsPerSecond: 10, Duration: 6 * time.Second,
			RampUp: 2 * time.Second, RampDown: 2 * time.Second})
		var per []int
		for _, iv := range res.Targets[0].Intervals[:6] {
			per = append(per, iv.Started)
		}
		// 10/s ramped: 10 over the 2s up, 20 over the 2s flat, 10 down,
		// each arrival in the middle of its share of the schedule.
		want := []int{2, 8, 10, 10, 7, 3} // arrivals at 1s and 5s exactly count in the later second
		for i := range want {
			if per[i] != want[i] {
				t.Fatalf("sessions started per second %v, want %v", per, want)
			}
		}
	})
	synctest.Test(t, func(t *testing.T) {
		tg := &echoTarget{delay: time.Second}
		client := pipenet.Serve(t, tg)
		c := &loadtest.Corpus{Sessions: sessions(5, 1, 1)}
		r, err := loadtest.New(c, "ws://staging", &loadtest.Options{Concurrency: 4, Duration: 8 * time.Second,
			RampUp: 4 * time.Second, Logger: quiet, Replay: &replayer.Options{Correlate: "id", HTTPClient: client}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := r.Run(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		// Workers join at 0, 1, 2 and 3 seconds.
		for want := 1; want <= 4; want++ {
			time.Sleep(500 * time.Millisecond)
			if p := r.Progress(); p.Active != int64(want) {
				t.Errorf("closed model ramp at %v: %d active, want %d", p.Elapsed, p.Active, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
		<-done
	})
}

// TestMutationsNeverSent drives the simulated sync server with sessions
// that hold mutations: none reaches it unless the filter is turned off.
func TestMutationsNeverSent(t *testing.T) {
	g := corpus.New(7)
	g.MutateRate = 0.3
	var ss [][]session.Event
	start := time.Now().Add(-time.Minute)
	for i := range 20 {
		ss = append(ss, g.Session(start.Add(time.Duration(i)*time.Second), 6))
	}
	for _, allow := range []bool{false, true} {
		sim := coldserver.New(&coldserver.Options{Scale: 0.2, Seed: 1})
		url, _ := serveLoopback(t, sim)
		ro := &replayer.Options{Correlate: "id"}
		if allow {
			ro.SendMutating, ro.SendUnknown = true, true
		}
		res := run(t, &loadtest.Corpus{Sessions: ss}, url+"/sync", loadtest.Options{SessionsPerSecond: 20, Duration: time.Second, Speed: -1, Replay: ro})
		sim.Close()
		tr := res.Targets[0]
		if !allow && (sim.Mutations() != 0 || tr.Skipped["mutating"] == 0) {
			t.Fatalf("default safety: %d mutations reached the server, %d skipped", sim.Mutations(), tr.Skipped["mutating"])
		}
		if allow && sim.Mutations() == 0 {
			t.Fatalf("with the filter off no mutation was sent: %+v", tr)
		}
		if tr.Sessions.Started != 20 || tr.Responses == 0 {
			t.Fatalf("sessions %+v, responses %d", tr.Sessions, tr.Responses)
		}
	}
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &loadtest.Corpus{Sessions: sessions(5, 2, 1)}
	for _, o := range []loadtest.Options{
		{SessionsPerSecond: 20, Duration: time.Minute, AbortAfter: time.Second},
		{Concurrency: 4, Duration: time.Minute, AbortAfter: time.Second},
	} {
		res := run(t, c, "ws://"+addr+"/sync", o)
		tr := res.Targets[0]
		if !strings.Contains(res.Aborted, "unreachable") || res.Seconds > 30 {
			t.Fatalf("aborted %q after %vs", res.Aborted, res.Seconds)
		}
		if tr.Errors["connect"] == 0 || tr.ErrorRate != 1 || tr.Sessions.Completed != 0 {
			t.Fatalf("errors %v rate %v sessions %+v", tr.Errors, tr.ErrorRate, tr.Sessions)
		}
	}
}

func TestTargetDiesMidRun(t *testing.T) {
	tg := &echoTarget{delay: time.Millisecond}
	url, _ := serveLoopback(t, tg)
	c := &loadtest.Corpus{Sessions: sessions(5, 40, 1)} // 400ms sessions
	r, err := loadtest.New(c, url+"/sync", &loadtest.Options{SessionsPerSecond: 20, Duration: time.Minute, AbortAfter: time.Second,
		Logger: quiet, Replay: &replayer.Options{Correlate: "id"}})
	if err != nil {
		t.Fatal(err)
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(time.Second)
		tg.kill()
	}()
	res, err := r.Run(t.Context())
	<-killed
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Targets[0]
	if !strings.Contains(res.Aborted, "unreachable") || res.Seconds > 30 {
		t.Fatalf("aborted %q after %vs", res.Aborted, res.Seconds)
	}
	if tr.Sessions.Completed == 0 || tr.Errors["handshake_503"] == 0 || tr.Errors["closed_by_target"] == 0 {
		t.Fatalf("sessions %+v errors %v", tr.Sessions, tr.Errors)
	}
}

// TestCompare drives two targets with the same sessions, in fake time and
// with noisy replies: one that answers 20% slower is found slower, two
// equal ones are not told apart.
func TestCompare(t *testing.T) {
	f := func(a, b *echoTarget) *loadtest.Comparison {
		t.Helper()
		var cmp *loadtest.Comparison
		synctest.Test(t, func(t *testing.T) {
			client := hostRouter(map[string]*http.Client{"a": pipenet.Serve(t, a), "b": pipenet.Serve(t, b)})
			c := &loadtest.Corpus{Sessions: sessions(20, 5, 1)}
			// 20 intervals of 1s, each with about 150 responses a target:
			// enough for p90 (50 needed), not for p99 (500).
			res := run(t, c, "ws://a/sync", loadtest.Options{SessionsPerSecond: 30, Duration: 20 * time.Second, Interval: time.Second,
				Compare: "ws://b/sync", Replay: &replayer.Options{Correlate: "id", HTTPClient: client}})
			if res.Targets[0].Sessions.Started != 600 || res.Targets[1].Sessions.Started != 600 {
				t.Fatalf("targets %+v", res.Targets)
			}
			cmp = res.Comparison
		})
		for _, m := range cmp.Metrics {
			t.Logf("%v vs %v: %s", a.delay, b.delay, m.Summary)
		}
		return cmp
	}
	checkSlower(t, f(&echoTarget{delay: 20 * time.Millisecond, noise: 1}, &echoTarget{delay: 24 * time.Millisecond, noise: 2}))
	if same := f(&echoTarget{delay: 20 * time.Millisecond, noise: 3}, &echoTarget{delay: 20 * time.Millisecond, noise: 4}); same.Findings != 0 {
		t.Errorf("two equal targets: %d findings: %+v", same.Findings, same.Metrics)
	}
}

func checkSlower(t *testing.T, c *loadtest.Comparison) {
	t.Helper()
	for _, m := range c.Metrics {
		switch m.Metric {
		case "p50", "p90", "mean":
			if !m.Finding || !m.Worse || m.Change < 0.12 || m.Change > 0.28 || m.Low < 0.05 {
				t.Errorf("20%% slower: %+v", m)
			}
		case "throughput", "error_rate":
			if m.Finding {
				t.Errorf("%s differs under an open model: %+v", m.Metric, m)
			}
		}
	}
}

// TestCompareLoopback does the same over real loopback connections and
// timers. A loaded machine widens the intervals: two equal targets must
// still show no finding, and a slowdown is only required to be found when
// the machine measured the baseline near its true latency.
func TestCompareLoopback(t *testing.T) {
	c := &loadtest.Corpus{Sessions: sessions(20, 5, 1)}
	f := func(a, b time.Duration) *loadtest.Result {
		t.Helper()
		ua, _ := serveLoopback(t, &echoTarget{delay: a})
		ub, _ := serveLoopback(t, &echoTarget{delay: b})
		res := run(t, c, ua+"/sync", loadtest.Options{SessionsPerSecond: 30, Duration: 3 * time.Second, Interval: 500 * time.Millisecond,
			Compare: ub + "/sync", Replay: &replayer.Options{Correlate: "id"}})
		for _, m := range res.Comparison.Metrics {
			t.Logf("%v vs %v: %s", a, b, m.Summary)
		}
		return res
	}
	if same := f(20*time.Millisecond, 20*time.Millisecond).Comparison; same.Findings != 0 {
		t.Errorf("two equal targets: %d findings: %+v", same.Findings, same.Metrics)
	}
	res := f(20*time.Millisecond, 24*time.Millisecond)
	if p50 := res.Targets[0].Latency.P50; p50 > 25 {
		t.Skipf("machine too loaded to measure a 4ms difference: baseline p50 %.1fms for a 20ms target", p50)
	}
	for _, m := range res.Comparison.Metrics {
		if (m.Metric == "p50" || m.Metric == "mean") && (!m.Finding || !m.Worse) {
			t.Errorf("20%% slower over loopback: %+v", m)
		}
	}
}

func TestReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &echoTarget{delay: 2 * time.Millisecond}, &echoTarget{delay: 3 * time.Millisecond}
		ca, cb := pipenet.Serve(t, a), pipenet.Serve(t, b)
		// One client serving two pipe servers by host.
		client := hostRouter(map[string]*http.Client{"a": ca, "b": cb})
		c := &loadtest.Corpus{Sessions: sessions(5, 3, 1)}
		res := run(t, c, "ws://a/<x>", loadtest.Options{SessionsPerSecond: 10, Duration: 6 * time.Second, Compare: "ws://b/sync",
			Replay: &replayer.Options{Correlate: "id", HTTPClient: client}})
		ths := []loadtest.Threshold{mustThreshold(t, "p99<2500us"), mustThreshold(t, "errors<0.1%")}
		if res.Check(ths) {
			t.Fatal("p99<2.5ms passed with the compared target at 3ms")
		}
		var js, html bytes.Buffer
		if err := loadtest.WriteJSON(&js, res); err != nil {
			t.Fatal(err)
		}
		var back loadtest.Result
		if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Comparison == nil || len(back.Targets[1].Intervals) == 0 {
			t.Fatalf("json: %v %+v", err, back.Comparison)
		}
		if err := loadtest.WriteHTML(&html, res); err != nil {
			t.Fatal(err)
		}
		page := html.String()
		for _, want := range []string{"<svg", "Latency over time", "Latency by percentile", "thresholds failed", "candidate is", "ws://a/&lt;x&gt;", "tasks.list"} {
			if !strings.Contains(page, want) {
				t.Errorf("html lacks %q", want)
			}
		}
		if strings.Contains(page, "<x>") {
			t.Error("html does not escape the target")
		}
		if strings.Count(page, "<svg") != 3 {
			t.Errorf("%d charts, want 3", strings.Count(page, "<svg"))
		}
	})
}

func mustThreshold(t *testing.T, s string) loadtest.Threshold {
	t.Helper()
	th, err := loadtest.ParseThreshold(s)
	if err != nil {
		t.Fatal(err)
	}
	return th
}
