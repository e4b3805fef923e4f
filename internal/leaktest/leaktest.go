// Package leaktest fails a test binary that leaves goroutines running.
//
// Packages that start goroutines call Main from TestMain. After the tests
// finish it waits a bounded time for goroutines to end, then reports the
// stacks of any that are still alive and exits non-zero.
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs m, then fails if goroutines started by the tests are still
// running 5 seconds after the last test ended.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := Check(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaktest: goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// Check waits up to wait for every goroutine but the runtime's and the test
// framework's to end, and returns the stacks of those that did not.
func Check(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		leaked := interesting()
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func interesting() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && strings.Contains(g, "[running]") && strings.Contains(g, "leaktest.") {
			continue // this goroutine
		}
		if isIgnored(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func isIgnored(stack string) bool {
	// Goroutines of the runtime, the test framework and long-lived standard
	// library pools are not the code under test's.
	for _, s := range []string{
		"testing.(*M).",
		"testing.tRunner(",
		"testing.runTests",
		"testing.runFuzzing",
		"testing.(*F).",
		"runtime.main()",
		"os/signal.signal_recv",
		"created by os/signal.Notify",
		"created by net/http.(*Transport).dialConn",
		"net/http.(*persistConn)",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
