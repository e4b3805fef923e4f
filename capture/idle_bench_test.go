package capture_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/wsbench"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// idlePeerEnv, when set, turns this test binary into the peer of
// BenchmarkIdleConnections: "echo" serves a websocket echo server, "idle
// URL N" holds N idle connections to URL after one message each. The peer
// runs in its own process so that the benchmark's process holds only the
// tap and its numbers are the tap's alone.
const idlePeerEnv = "PREHEAT_IDLE_PEER"

// TestIdlePeer is the peer process of BenchmarkIdleConnections and
// BenchmarkTapRoundTrip; it does nothing in an ordinary test run. It prints
// one line when ready ("echo URL", "holding", or a load run's result), then
// runs until its standard input closes.
func TestIdlePeer(t *testing.T) {
	args := strings.Fields(os.Getenv(idlePeerEnv))
	if len(args) == 0 {
		t.Skip("peer process of BenchmarkIdleConnections")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	switch args[0] {
	case "echo":
		srv := httptest.NewServer(wsbench.NewEchoHandler(nil))
		defer srv.Close()
		fmt.Printf("echo ws%s\n", strings.TrimPrefix(srv.URL, "http"))
		<-ctx.Done()
	case "idle":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			t.Fatal(err)
		}
		_, err = wsbench.Idle(ctx, args[1], &wsbench.IdleOptions{
			Conns: n,
			Hold:  time.Hour,
			Ready: func(int, time.Duration) { fmt.Println("holding") },
		})
		if err != nil {
			t.Fatal(err)
		}
	case "load":
		// load URL RATE: a wsbench load run (RATE 0: closed loop); prints
		// its result as one JSON line.
		rate, err := strconv.ParseFloat(args[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		res, err := wsbench.Load(ctx, args[1], &wsbench.LoadOptions{Rate: rate, Duration: 5 * time.Second, Warmup: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(string(out))
	default:
		t.Fatalf("%s=%q: want echo, idle or load", idlePeerEnv, args)
	}
}

// peer is a running peer process.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	line  string
}

func startPeer(b *testing.B, args string) *peer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdlePeer$", "-test.count=1")
	cmd.Env = append(os.Environ(), idlePeerEnv+"="+args)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &peer{cmd: cmd, stdin: stdin}
	b.Cleanup(p.stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("peer %q: %v", args, err)
	}
	p.line = strings.TrimSpace(line)
	go io.Copy(io.Discard, stdout)
	return p
}

// stop closes the peer's standard input and waits for it to exit.
func (p *peer) stop() {
	if p.stdin == nil {
		return
	}
	p.stdin.Close()
	p.stdin = nil
	p.cmd.Wait()
}

// idleSample is the tap process's memory at one moment.
type idleSample struct {
	stacks, objects, live, rss float64 // bytes
	goroutines                 float64
}

func sampleMemory(b *testing.B) idleSample {
	b.Helper()
	ms := []metrics.Sample{
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	metrics.Read(ms)
	return idleSample{
		stacks:     float64(ms[0].Value.Uint64()),
		objects:    float64(ms[1].Value.Uint64()),
		live:       float64(ms[2].Value.Uint64()),
		goroutines: float64(ms[3].Value.Uint64()),
		rss:        vmRSS(b),
	}
}

// vmRSS returns this process's resident set size in bytes.
func vmRSS(b *testing.B) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0 // not Linux: RSS is not reported
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkIdleConnections measures the tap's memory per idle proxied
// websocket connection, capturing and not: idleConns connections, each
// after one connect message echoed (so that a capturing tap holds a
// recording), held silent. The echo upstream and the clients run in peer
// processes (this test binary, see TestIdlePeer), so the deltas are the
// tap's alone, like bench/tap.sh's measure_idle but within go test. It
// reports per connection, in KiB: Go stacks, heap objects and live heap,
// VmRSS, each after the connections settled (as the tap finds itself) and
// the stacks and live heap again after two forced GCs. Run it with
// -benchtime 1x: one iteration opens idleConns connections. VmRSS only
// means something for the first run in a process, which starts from
// nothing: later runs reuse the memory earlier ones left, so run one
// sub-benchmark per process for it
// (-bench 'IdleConnections/core=event_loop/capture=true$'). The goroutine
// core is the baseline the event loop is compared with.
func BenchmarkIdleConnections(b *testing.B) {
	for _, core := range cores {
		for _, capturing := range []bool{false, true} {
			b.Run(fmt.Sprintf("core=%s/capture=%v", core.name, capturing), func(b *testing.B) {
				benchIdle(b, core.opts, capturing)
			})
		}
	}
}

// benchIdle is one run of BenchmarkIdleConnections.
func benchIdle(b *testing.B, tapOpts capture.TapOptions, capturing bool) {
	const idleConns = 2000
	const settle = 2 * time.Second // like bench/tap.sh's measure_idle
	for range b.N {
		bt := startBenchTap(b, tapOpts, capturing)
		runtime.GC()
		time.Sleep(500 * time.Millisecond)
		before := sampleMemory(b)
		idle := startPeer(b, fmt.Sprintf("idle %s %d", bt.url(), idleConns))
		if idle.line != "holding" {
			b.Fatalf("idle peer said %q", idle.line)
		}
		time.Sleep(settle)
		held := sampleMemory(b)
		runtime.GC()
		runtime.GC()
		gced := sampleMemory(b)

		per := func(v float64) float64 { return v / idleConns / 1024 }
		b.ReportMetric(per(held.stacks-before.stacks), "stack-KiB/conn")
		b.ReportMetric(per(held.objects-before.objects), "heapobj-KiB/conn")
		b.ReportMetric(per(held.live-before.live), "live-KiB/conn")
		b.ReportMetric(per(held.rss-before.rss), "rss-KiB/conn")
		b.ReportMetric((held.goroutines-before.goroutines)/idleConns, "goroutines/conn")
		b.ReportMetric(per(gced.stacks-before.stacks), "stack-after-gc-KiB/conn")
		b.ReportMetric(per(gced.live-before.live), "live-after-gc-KiB/conn")

		idle.stop()
		bt.stop(b)
	}
}

// benchTap is a tap in this process in front of an echo peer, capturing
// into a directory log or not; the benchmarks' peers connect to it.
type benchTap struct {
	echo *peer
	rec  *capture.Recorder
	prod *dirlog.Producer
	tap  *capture.Tap
	srv  *httptest.Server
}

func startBenchTap(b *testing.B, tapOpts capture.TapOptions, capturing bool) *benchTap {
	b.Helper()
	bt := &benchTap{echo: startPeer(b, "echo")}
	if capturing {
		var err error
		bt.prod, err = dirlog.NewProducer(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		bt.rec, err = capture.NewRecorder(bt.prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
	}
	tap, err := capture.NewTap(strings.TrimPrefix(bt.echo.line, "echo "), bt.rec, &tapOpts)
	if err != nil {
		b.Fatal(err)
	}
	bt.tap = tap
	bt.srv = httptest.NewUnstartedServer(tap)
	bt.srv.Config = &http.Server{Handler: tap, ReadHeaderTimeout: 10 * time.Second}
	bt.srv.Start()
	return bt
}

// url is the websocket URL clients use.
func (bt *benchTap) url() string { return "ws" + strings.TrimPrefix(bt.srv.URL, "http") + "/sync" }

// stop shuts the tap down, flushes capture and stops the echo peer.
func (bt *benchTap) stop(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bt.srv.Close()
	if err := bt.tap.Shutdown(ctx); err != nil {
		b.Errorf("tap shutdown: %v", err)
	}
	if bt.rec != nil {
		if err := bt.rec.Close(ctx); err != nil {
			b.Errorf("recorder close: %v", err)
		}
		if err := bt.prod.Close(ctx); err != nil {
			b.Errorf("producer close: %v", err)
		}
	}
	bt.echo.stop()
}
