//go:build unix

package capture_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/wsbench"
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
	bt := startBenchTap(b, tapOpts, capturing)
	cpu0 := cpuTime(b)
	load := startPeer(b, fmt.Sprintf("load %s %d", bt.url(), rate))
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
	bt.stop(b)
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
