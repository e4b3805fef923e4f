//go:build unix

package capture_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/wsbench"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// BenchmarkTapRoundTrip measures what the tap costs a websocket message:
// 64 connections through the tap to an echo server, at 2,000 messages/s in
// aggregate (rate=2000) and closed loop (rate=0, saturation), for 5 s after
// 1 s of warm-up, under each proxy core, capturing into a directory log or
// not. The echo server and the load generator run in peer processes (this
// test binary, see TestIdlePeer), so the CPU time this process spends is
// the tap's alone. It reports the tap's CPU per message echoed (one
// message in, one out), the load's messages/s and its round-trip p50 and
// p99. Run it with -benchtime 1x; the goroutine core is the baseline the
// event loop is compared with, side by side in one run.
func BenchmarkTapRoundTrip(b *testing.B) {
	for _, rate := range []int{2000, 0} {
		for _, core := range cores {
			for _, capturing := range []bool{false, true} {
				b.Run(fmt.Sprintf("rate=%d/core=%s/capture=%v", rate, core.name, capturing), func(b *testing.B) {
					for range b.N {
						benchRoundTrip(b, core.opts, capturing, rate)
					}
				})
			}
		}
	}
}

func benchRoundTrip(b *testing.B, tapOpts capture.TapOptions, capturing bool, rate int) {
	echo := startPeer(b, "echo")
	upstream := strings.TrimPrefix(echo.line, "echo ")
	var rec *capture.Recorder
	var prod *dirlog.Producer
	if capturing {
		var err error
		prod, err = dirlog.NewProducer(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		rec, err = capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
	}
	tap, err := capture.NewTap(upstream, rec, &tapOpts)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tap)
	srv.Config = &http.Server{Handler: tap, ReadHeaderTimeout: 10 * time.Second}
	srv.Start()

	cpu0 := cpuTime(b)
	load := startPeer(b, fmt.Sprintf("load ws%s/sync %d", strings.TrimPrefix(srv.URL, "http"), rate))
	cpu := cpuTime(b) - cpu0
	var res wsbench.Result
	if err := json.Unmarshal([]byte(load.line), &res); err != nil {
		b.Fatalf("load peer said %q: %v", load.line, err)
	}
	if res.Total == 0 || res.Mismatched != 0 {
		b.Fatalf("load: %d messages echoed, %d mismatched", res.Total, res.Mismatched)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(res.Total), "cpu-µs/msg")
	b.ReportMetric(res.MessagesPerSec, "msg/s")
	b.ReportMetric(res.RTT.P50, "p50-µs")
	b.ReportMetric(res.RTT.P99, "p99-µs")

	load.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Close()
	if err := tap.Shutdown(ctx); err != nil {
		b.Errorf("tap shutdown: %v", err)
	}
	if rec != nil {
		if err := rec.Close(ctx); err != nil {
			b.Errorf("recorder close: %v", err)
		}
		if err := prod.Close(ctx); err != nil {
			b.Errorf("producer close: %v", err)
		}
	}
	echo.stop()
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
