package loadtest_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/wsbench"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// benchSeconds is how long each benchmark drives load:
// $LOADTEST_BENCH_SECONDS, default 5.
func benchSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("LOADTEST_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 5 * time.Second
}

// cpuTime returns the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func maxRSSMiB() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

// echoProcess builds wsbench and runs its echo server in a process of its
// own, so that the CPU this process uses is the load generator's alone.
func echoProcess(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "wsbench")
	build := exec.Command("go", "build", "-o", bin, "github.com/preheatdev/preheat/internal/wsbench/cmd/wsbench")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build wsbench: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "echo", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	rx := regexp.MustCompile(`addr=(\S+)`)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := rx.FindStringSubmatch(sc.Text()); m != nil {
			go func() { // drain the rest; ends when the process does
				for sc.Scan() {
				}
			}()
			return "ws://" + m[1]
		}
	}
	b.Fatal("wsbench echo did not say its address")
	return ""
}

// throughputCorpus is corpus sessions of 200 queries each.
func throughputCorpus() *loadtest.Corpus {
	g := corpus.New(1)
	var ss [][]session.Event
	for i := range 64 {
		ss = append(ss, g.Session(time.Now().Add(time.Duration(i)*time.Second), 200))
	}
	return &loadtest.Corpus{Sessions: ss}
}

// BenchmarkThroughput measures the most messages per second the load
// generator drives against an echo server in another process, and the CPU
// and memory it uses doing so: the closed model with 64 sessions at once,
// each sending its 200 queries as fast as they can be written, every one
// answered. The baseline is wsbench's bare closed-loop client (64
// connections, one message in flight each) against the same server.
// Run with -benchtime=1x: each run drives load for LOADTEST_BENCH_SECONDS.
func BenchmarkThroughput(b *testing.B) {
	target := echoProcess(b)
	d := benchSeconds()
	report := func(b *testing.B, msgs int64, wall, cpu time.Duration) {
		b.ReportMetric(float64(msgs)/wall.Seconds(), "msgs/s")
		b.ReportMetric(float64(msgs)/cpu.Seconds(), "msgs/cpu-s")
		b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
		b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	}
	b.Run("loadtest", func(b *testing.B) {
		c := throughputCorpus()
		for b.Loop() {
			r, err := loadtest.New(c, target+"/sync", &loadtest.Options{Concurrency: 64, Duration: d, Speed: -1, Drain: time.Second,
				Logger: quiet, Replay: &replayer.Options{Correlate: "id"}})
			if err != nil {
				b.Fatal(err)
			}
			cpu0, t0 := cpuTime(), time.Now()
			res, err := r.Run(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			tr := res.Targets[0]
			if tr.ErrorCount > 0 {
				b.Fatalf("errors: %v", tr.Errors)
			}
			report(b, int64(tr.Sent), time.Since(t0), cpuTime()-cpu0)
			b.ReportMetric(tr.Latency.P50, "p50-ms")
			b.ReportMetric(tr.Latency.P99, "p99-ms")
		}
	})
	b.Run("baseline-wsbench", func(b *testing.B) {
		for b.Loop() {
			cpu0, t0 := cpuTime(), time.Now()
			res, err := wsbench.Load(context.Background(), target, &wsbench.LoadOptions{Conns: 64, Duration: d, Warmup: -1})
			if err != nil {
				b.Fatal(err)
			}
			report(b, res.Total, time.Since(t0), cpuTime()-cpu0)
			b.ReportMetric(res.RTT.P50/1000, "p50-ms")
			b.ReportMetric(res.RTT.P99/1000, "p99-ms")
		}
	})
}

// BenchmarkLatencyAccuracy measures how far the reported latency is from
// the truth against a target that answers every message after exactly 5ms
// (a timer in this process): p50-err and p99-err are the reported p50 and
// p99 minus 5ms. The open model starts 50 sessions/s of 20 queries each,
// at the recorded pace (about 1,000 messages/s). The baseline is wsbench's
// open-loop client at the same message rate against the same target.
func BenchmarkLatencyAccuracy(b *testing.B) {
	const delay = 5 * time.Millisecond
	url, _ := serveLoopback(b, &echoTarget{delay: delay})
	d := benchSeconds()
	g := corpus.New(2)
	var ss [][]session.Event
	for i := range 100 {
		ss = append(ss, g.Session(time.Now().Add(time.Duration(i)*time.Second), 20))
	}
	c := &loadtest.Corpus{Sessions: ss}
	report := func(b *testing.B, p50, p99 float64) {
		want := float64(delay) / 1e6
		b.ReportMetric(p50-want, "p50-err-ms")
		b.ReportMetric(p99-want, "p99-err-ms")
	}
	b.Run("loadtest", func(b *testing.B) {
		for b.Loop() {
			res, err := loadtest.New(c, url+"/sync", &loadtest.Options{SessionsPerSecond: 50, Duration: d,
				Logger: quiet, Replay: &replayer.Options{Correlate: "id"}})
			if err != nil {
				b.Fatal(err)
			}
			out, err := res.Run(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			tr := out.Targets[0]
			report(b, tr.Latency.P50, tr.Latency.P99)
			b.ReportMetric(tr.MessagesPerSecond, "msgs/s")
			b.ReportMetric(out.Lag.P99, "lag-p99-ms")
		}
	})
	b.Run("baseline-wsbench", func(b *testing.B) {
		for b.Loop() {
			res, err := wsbench.Load(context.Background(), url, &wsbench.LoadOptions{Conns: 64, Rate: 1000, Duration: d, Warmup: -1})
			if err != nil {
				b.Fatal(err)
			}
			report(b, res.RTT.P50/1000, res.RTT.P99/1000)
			b.ReportMetric(res.MessagesPerSec, "msgs/s")
		}
	})
}

// BenchmarkFixedRate measures what driving a fixed load costs the load
// generator, beside a bare client: 200 connections at 4,000 messages/s in
// all against an echo server in another process. loadtest runs the closed
// model of 200 sessions at once, each a corpus session (bench/loadgen's)
// sending a query every 50ms at its recorded pace, every one answered and
// matched by its id; the baseline is wsbench's open-loop client (the same
// websocket library) at the same rate over 200 connections. The figure is
// msgs/cpu-s; run each sub-benchmark in a process of its own for its
// maxrss. bench/loadgen measures the same with the preheat command.
func BenchmarkFixedRate(b *testing.B) {
	const conns, rate = 200, 4000.0
	target := echoProcess(b)
	d := benchSeconds()
	interval := time.Duration(float64(time.Second) * conns / rate)
	report := func(b *testing.B, msgs int64, wall, cpu time.Duration) {
		b.ReportMetric(float64(msgs)/wall.Seconds(), "msgs/s")
		b.ReportMetric(float64(msgs)/cpu.Seconds(), "msgs/cpu-s")
		b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	}
	b.Run("loadtest", func(b *testing.B) {
		for b.Loop() {
			// The corpus, as the command has it once loaded: New keeps
			// the plans, not the corpus, which is garbage once planned.
			start := time.Now().Add(-time.Hour)
			c := &loadtest.Corpus{}
			for i := range conns {
				phase := interval * time.Duration(i) / conns
				c.Sessions = append(c.Sessions, corpus.New(uint64(1+i)).PacedSession(start, phase, interval, int(d/interval), true))
			}
			cpu0, t0 := cpuTime(), time.Now() // New plans the sessions: that counts
			r, err := loadtest.New(c, target+"/sync", &loadtest.Options{Concurrency: conns, Duration: d, Drain: 10 * time.Second,
				AbortAfter: -1, Logger: quiet, Replay: &replayer.Options{Correlate: "id"}})
			if err != nil {
				b.Fatal(err)
			}
			c = nil
			res, err := r.Run(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			tr := res.Targets[0]
			if tr.ErrorCount > 0 || tr.Responses != tr.Requests {
				b.Fatalf("errors %v; %d requests, %d answered", tr.Errors, tr.Requests, tr.Responses)
			}
			report(b, int64(tr.Responses), time.Since(t0), cpuTime()-cpu0)
		}
	})
	b.Run("baseline-wsbench", func(b *testing.B) {
		for b.Loop() {
			cpu0, t0 := cpuTime(), time.Now()
			res, err := wsbench.Load(context.Background(), target, &wsbench.LoadOptions{Conns: conns, Rate: rate, Duration: d, Warmup: -1})
			if err != nil {
				b.Fatal(err)
			}
			report(b, res.Total, time.Since(t0), cpuTime()-cpu0)
		}
	})
}
