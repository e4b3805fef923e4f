package main

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/internal/jvmfixture"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/warmup"
)

// jvmRehearse is the --rehearse rule that sends a warm-up's writes to the
// fixture's sandbox workspace: the whole write path runs, and nothing
// lands where users look.
var jvmRehearse = "params.workspace=" + strconv.Itoa(jvmfixture.SandboxWorkspace)

// TestJVMWarmEndToEnd shows preheat warming a real JVM: sessions of the JVM
// sync server are captured through the tap into a directory log, a replay
// cache serves them, and 'preheat warm' warms a fresh JVM until its JIT
// compile rate and jitter flatten, sending the captured writes as
// rehearsals into the fixture's sandbox workspace (none may land anywhere
// else). Then it takes real traffic, as does a
// fresh JVM that takes it cold, and a JVM warmed by the capture traffic
// gives the steady state; the warmed JVM must have little left to compile
// under that traffic against the cold one (latency is logged, not
// asserted: under -race it measures the machine). Two controls follow: an
// interpreter-only JVM (-Xint) has no JIT signal, and a C1-only JVM
// (-XX:TieredStopAtLevel=1) is released sooner than the default one. The
// warm-up's settings are demo.JVMWarmOptions; the figures measured with
// them are bench/jvm's (docs/benchmarks-jvm.md).
func TestJVMWarmEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("a real JVM warm-up takes minutes")
	}
	started := time.Now()
	steadyJVM := jvmfixture.Start(t, nil)
	cacheURL := captureJVM(t, steadyJVM, 25*time.Second)
	t.Logf("[%5.1fs] capture done", time.Since(started).Seconds())

	// A fresh JVM, warmed by preheat with its writes rehearsed in the
	// sandbox workspace, then real traffic.
	warmed := jvmfixture.Start(t, nil)
	wo := demo.JVMWarmOptions()
	wo.Rehearse = []string{jvmRehearse}
	res := warmJVM(t, warmed, cacheURL, wo)
	rel := res.Decision.At.Sub(res.Report.Started)
	if res.Decision.Outcome != readiness.OutcomeWarm {
		t.Fatalf("default JVM: outcome %s, want warm: %s", res.Decision.Outcome, res.Decision.Reason)
	}
	settled, ok := demo.CompileSettled(res.Report, 20, 10*time.Second)
	if !ok {
		t.Fatalf("default JVM released after %v, but its compile rate never stayed under 20 ms/s for 10s: %s", rel, res.Decision.Reason)
	}
	if rel.Seconds() < settled {
		t.Fatalf("default JVM released after %v, before its compile rate settled at %.0fs", rel, settled)
	}
	// The safety contract of a rehearsal: every write the warm-up sent
	// landed in the sandbox, none where users look.
	if n := scrapeValue(t, warmed, "sync_mutations_total"); n != 0 {
		t.Fatalf("warm-up stored %v writes outside the sandbox", n)
	}
	sandboxed := scrapeValue(t, warmed, `sync_rehearsals_total{form="sandbox"}`)
	if res.Stats.MessagesRehearsed == 0 || sandboxed <= 0 || sandboxed > float64(res.Stats.MessagesRehearsed) || res.Stats.MessagesSkipped["mutating"] != 0 {
		t.Fatalf("warm-up rehearsed %d writes (skipped %v); the sandbox stored %v: want every captured write rehearsed and stored there",
			res.Stats.MessagesRehearsed, res.Stats.MessagesSkipped, sandboxed)
	}
	t.Logf("[%5.1fs] default JVM released after %.1fs (%s); compile rate settled at %.0fs: release / settled = %.2f",
		time.Since(started).Seconds(), rel.Seconds(), res.Decision.Outcome, settled, rel.Seconds()/settled)
	// First real traffic, to the warmed JVM and to a cold one. What is
	// asserted is the JIT's own count, not latency, which under -race on a
	// shared machine measures the machine: the compile time each JVM
	// spends under the same 10 s of real traffic. A warm JVM has little
	// left to compile; a cold one compiles most of its hot code then.
	compiledUnder := func(s *jvmfixture.Server, seed uint64) (float64, *demo.Requests) {
		before := scrapeValue(t, s, readiness.DefaultCompileMetric)
		l := driveJVM(t, s.URL(), 10*time.Second, seed)
		return scrapeValue(t, s, readiness.DefaultCompileMetric) - before, l
	}
	warmCompile, warmLat := compiledUnder(warmed, 11)
	cold := jvmfixture.Start(t, nil)
	coldCompile, coldLat := compiledUnder(cold, 11)
	steadyLat := driveJVM(t, steadyJVM.URL(), 10*time.Second, 11)
	steady := steadyLat.P99(0, math.MaxInt)
	w200, c200 := warmLat.P99(0, 200), coldLat.P99(0, 200)
	t.Logf("first 10 s of real traffic: JIT compile %.0f ms on the warmed JVM, %.0f ms on a cold one", warmCompile, coldCompile)
	t.Logf("first 200 requests' p99: warmed %v (%.1fx steady), unwarmed %v (%.1fx steady); steady p99 %v (%d requests)",
		w200, float64(w200)/float64(max(steady, 1)), c200, float64(c200)/float64(max(steady, 1)), steady, steadyLat.Len())
	if warmCompile*4 > coldCompile {
		t.Errorf("first real traffic cost the warmed JVM %.0f ms of JIT compiling and a cold one %.0f ms: want the warmed one under a quarter", warmCompile, coldCompile)
	}
	warmed.Close()
	cold.Close()

	// Control: a C1-only JVM compiles less and flattens sooner.
	c1 := jvmfixture.Start(t, &jvmfixture.Options{JVMFlags: []string{"-Xms256m", "-Xmx512m", "-XX:TieredStopAtLevel=1"}})
	c1Res := warmJVM(t, c1, cacheURL, demo.JVMWarmOptions())
	c1Rel := c1Res.Decision.At.Sub(c1Res.Report.Started)
	t.Logf("[%5.1fs] C1-only JVM: %s after %.1fs", time.Since(started).Seconds(), c1Res.Decision.Outcome, c1Rel.Seconds())
	if c1Res.Decision.Outcome != readiness.OutcomeWarm || c1Rel >= rel {
		t.Errorf("C1-only JVM: %s after %v, want warm and sooner than the default JVM's %v: %s", c1Res.Decision.Outcome, c1Rel, rel, c1Res.Decision.Reason)
	}
	c1.Close()

	// Control: an interpreter-only JVM exposes no compile metric, so the
	// JIT signal can never be what releases it. Jitter and replay latency
	// are still there, and flat (an interpreter does not warm), but a
	// missing compile metric holds the release: the deadline decides, and
	// says why. The compile signal must be missing from the whole run.
	xint := jvmfixture.Start(t, &jvmfixture.Options{JVMFlags: []string{"-Xint", "-Xms256m", "-Xmx512m"}})
	xo := demo.JVMWarmOptions()
	xo.Deadline = 45 * time.Second
	xRes := warmJVM(t, xint, cacheURL, xo)
	t.Logf("[%5.1fs] -Xint JVM: %s after %.1fs: %s", time.Since(started).Seconds(), xRes.Decision.Outcome,
		xRes.Decision.At.Sub(xRes.Report.Started).Seconds(), xRes.Decision.Reason)
	if s := demo.ReportSeries(xRes.Report, "compile_ms_per_second"); s == nil || !s.Missing || len(s.Points) != 0 {
		t.Errorf("-Xint JVM: the compile signal was seen: %+v", s)
	}
	if xRes.Decision.Outcome != readiness.OutcomeDeadlineOpen || !strings.Contains(xRes.Decision.Reason, "never seen") {
		t.Errorf("-Xint JVM: outcome %s, want deadline_open naming the compile metric never seen: %s", xRes.Decision.Outcome, xRes.Decision.Reason)
	}
	t.Logf("[%5.1fs] done", time.Since(started).Seconds())
}

// captureJVM captures d of synthetic clients' sessions through a tap in
// front of up and serves them from a replay cache until the test ends; it
// returns the cache's URL.
func captureJVM(t *testing.T, up *jvmfixture.Server, d time.Duration) string {
	t.Helper()
	c, err := demo.CaptureCache(t.Context(), "ws://"+up.Addr(), &demo.CaptureOptions{For: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Logf("capture: %d sessions through the tap in %v (client p50 %v, p99 %v); the cache holds %d",
		c.Sessions, d, c.Latency.Quantile(50), c.Latency.Quantile(99), c.Status().Sessions)
	return c.URL
}

// warmJVM warms s as preheat warm does, its lines in the test's log, until
// it releases s.
func warmJVM(t *testing.T, s *jvmfixture.Server, cacheURL string, o demo.WarmOptions) warmup.Result {
	t.Helper()
	res, err := demo.WarmFromCache(t.Context(), s.URL(), s.MetricsURL(), cacheURL, &o, slog.New(slog.NewTextHandler(&logLines{t: t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// driveJVM sends real traffic to url for d (demo.Pace's defaults: 4
// clients, 600 requests/s in all, sessions of 50 requests, every tenth a
// mutation) and returns the requests.
func driveJVM(t *testing.T, url string, d time.Duration, seed uint64) *demo.Requests {
	t.Helper()
	// The clients time requests from this process, which has just run a
	// warm-up: collect its garbage first, so that the collector is less
	// likely to take a processor from the clients while they time the
	// first requests.
	runtime.GC()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	l := demo.Pace(ctx, url, nil, seed)
	if n := l.Errors(); n > 0 {
		t.Errorf("traffic to %s: %d sessions failed", url, n)
	}
	return l
}

// scrapeValue returns the value of a sample of s's metrics, or -1 if it
// is absent.
func scrapeValue(t *testing.T, s *jvmfixture.Server, name string) float64 {
	t.Helper()
	v, err := s.Metric(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// logLines sends a logger's lines to the test log.
type logLines struct {
	mu sync.Mutex
	t  testing.TB
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
