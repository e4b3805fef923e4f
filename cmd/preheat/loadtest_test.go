package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func TestLoadtestUsage(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := preheat(t, append([]string{"loadtest"}, args...)...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("loadtest %q: exit %d, stderr %q; want 2 and %q", args, code, errOut, want)
		}
	}
	base := []string{"--source", "http://127.0.0.1:1", "--target", "ws://127.0.0.1:1/sync"}
	f("--source is required", "--target", "ws://x")
	f("--target is required", "--source", "http://x")
	f("alternatives", append(base, "--rate", "2x", "--concurrency", "3")...)
	f("alternatives", append(base, "--sessions-per-second", "2", "--concurrency", "3")...)
	f("positive multiple", append(base, "--rate", "-2x")...)
	f("--threshold", append(base, "--threshold", "p99<=fast")...)
	f("--allow-mutations", append(base, "--no-default-safety")...)
	f("choose one", append(base, "--allow-mutations", "--rehearse", "dryRun=true")...)
	f("--fail-on-regression needs --compare", append(base, "--fail-on-regression")...)
	f("--mutating", append(base, "--mutating", "type")...)
	f("want http(s)://", "--source", "s3://bucket/x", "--target", "ws://x")
}

// TestLoadtestCache runs the command against the simulated sync server from
// a replay cache: thresholds judged, the report written, no mutation sent.
func TestLoadtestCache(t *testing.T) {
	cache := serveCache(t, corpusSessions(11, 40, 6, 0.3))
	sim, addr := serveCold(t)
	report := t.TempDir()
	args := []string{"loadtest", "--source", cache, "--target", "ws://" + addr + "/sync", "--sessions-per-second", "20",
		"--duration", "2s", "--speed", "0", "--report", report, "--threshold", "p99<30s", "--threshold", "errors<1%"}
	code, out, errOut := preheat(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"open model, 20 sessions/s", "40 started", "PASS  p99<30s", "PASS  errors<1%", "not sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if n := sim.Mutations(); n != 0 {
		t.Fatalf("the load test sent %d mutating messages", n)
	}
	b, err := os.ReadFile(filepath.Join(report, "loadtest-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res loadtest.Result
	if err := json.Unmarshal(b, &res); err != nil || res.Targets[0].Sessions.Started != 40 || res.Targets[0].Skipped["mutating"] == 0 || len(res.Thresholds) != 2 {
		t.Fatalf("report: %v %+v", err, res.Targets)
	}
	if html, err := os.ReadFile(filepath.Join(report, "loadtest-report.html")); err != nil || !strings.Contains(string(html), "<svg") {
		t.Fatalf("html report: %v", err)
	}

	// The same run fails a threshold it cannot meet.
	args[len(args)-3] = "p50<1us"
	code, out, _ = preheat(t, args...)
	if code != 1 || !strings.Contains(out, "FAIL  p50<1us") {
		t.Fatalf("an unmet threshold: exit %d\n%s", code, out)
	}
}

// TestLoadtestCorpusFile replays a corpus file in the cache's JSON lines,
// and a stream, each against an echo server.
func TestLoadtestCorpusFile(t *testing.T) {
	sessions := corpusSessions(12, 10, 3, 0)
	cache := serveCache(t, sessions)
	resp, err := http.Get(cache + "/v1/select?format=jsonl&limit=100&mode=newest")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "corpus.jsonl")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	echo := wsecho.Start(t, nil)
	target := "ws" + strings.TrimPrefix(echo.URL, "http") + "/sync"
	code, out, errOut := preheat(t, "loadtest", "--source", file, "--target", target, "--concurrency", "2", "--duration", "1s", "--speed", "0")
	if code != 0 || !strings.Contains(out, "closed model, 2 sessions at once") || !strings.Contains(errOut, "sessions=10") {
		t.Fatalf("corpus file: exit %d\n%s\n%s", code, out, errOut)
	}

	dir := t.TempDir()
	writeSessions(t, dir, 6) // connected an hour ago and on
	code, out, errOut = preheat(t, "loadtest", "--source", "file://"+dir, "--window", "2h", "--target", target,
		"--rate", "60x", "--duration", "1s", "--speed", "0", "--threshold", "errors<=0")
	if code != 0 || !strings.Contains(out, "60x the recorded") || !strings.Contains(errOut, "sessions=6") {
		t.Fatalf("stream: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestLoadtestTargetDown checks that a target nobody listens on ends the
// run with a summary and exit status 1, and that metrics are served while
// a run lasts.
func TestLoadtestTargetDown(t *testing.T) {
	cache := serveCache(t, corpusSessions(13, 5, 3, 0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	code, out, errOut := preheat(t, "loadtest", "--source", cache, "--target", "ws://"+dead+"/sync", "--sessions-per-second", "20",
		"--duration", "1m", "--abort-after", "1s")
	if code != 1 || !strings.Contains(out, "aborted: target ws://"+dead) || !strings.Contains(out, "connect") {
		t.Fatalf("target down: exit %d\n%s\n%s", code, out, errOut)
	}

	echo := wsecho.Start(t, nil)
	addr, stop := startCommand(t, "loadtest: serving metrics", "loadtest", "--source", cache, "--target", "ws"+strings.TrimPrefix(echo.URL, "http")+"/sync",
		"--sessions-per-second", "10", "--duration", "1m", "--metrics-addr", "127.0.0.1:0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `preheat_loadtest_sessions_started_total{target="target"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no load test metrics:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := stop(); code != 1 {
		t.Fatalf("an interrupted run exited %d, want 1", code)
	}
}

// TestLoadtestCompare drives two equal echo targets: no finding, so even
// --fail-on-regression passes.
func TestLoadtestCompare(t *testing.T) {
	cache := serveCache(t, corpusSessions(14, 10, 4, 0))
	a, b := wsecho.Start(t, nil), wsecho.Start(t, nil)
	code, out, errOut := preheat(t, "loadtest", "--source", cache, "--target", "ws"+strings.TrimPrefix(a.URL, "http")+"/sync",
		"--compare", "ws"+strings.TrimPrefix(b.URL, "http")+"/sync", "--sessions-per-second", "20", "--duration", "2s",
		"--interval", "250ms", "--fail-on-regression", "--min-effect", "0.5")
	if code != 0 || !strings.Contains(out, "comparison: 0 findings") || !strings.Contains(out, "compare ws://") {
		t.Fatalf("compare: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestLoadtestReadsAWholeDirectoryLog loads sessions from a directory log
// written three hours ago, older than a live stream's 15-minute window: by
// default the whole log is read; an explicit --window still applies.
func TestLoadtestReadsAWholeDirectoryLog(t *testing.T) {
	dir := t.TempDir()
	then := time.Now().Add(-3 * time.Hour).Truncate(time.Microsecond)
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{MaxAge: -1, Now: func() time.Time { return then }})
	if err != nil {
		t.Fatal(err)
	}
	for _, evs := range corpusSessions(21, 5, 3, 0) {
		for i := range evs { // as recorded then
			if evs[i].Open != nil {
				evs[i].Open.Start = then
			}
		}
		b, err := session.AppendBatch(nil, evs)
		if err == nil {
			err = p.Put(context.Background(), evs[0].Session.String(), b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	echo := wsecho.Start(t, nil)
	target := "ws" + strings.TrimPrefix(echo.URL, "http") + "/sync"
	args := []string{"loadtest", "--source", "file://" + dir, "--target", target, "--sessions-per-second", "10", "--duration", "500ms", "--speed", "0"}
	code, out, errOut := preheat(t, args...)
	if code != 0 || !strings.Contains(errOut, "sessions=5") || !strings.Contains(out, " timed out, 0 closed while waiting") {
		t.Fatalf("whole log: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = preheat(t, append(args, "--window", "1h")...)
	if code != 1 || !strings.Contains(errOut, "no sessions to replay") {
		t.Fatalf("--window 1h of a 3h old log: exit %d\n%s\n%s", code, out, errOut)
	}
}
