// Package leaktest fails a test binary that leaves goroutines running.
//
// Packages that start goroutines call Main from TestMain. After the tests
// finish it looks for goroutines still alive with go.uber.org/goleak, which
// knows the runtime's and the test framework's own, and reports their
// stacks. It only adds what goleak cannot be told (v1.3.0 exports no retry
// setting): a longer wait, up to 5 seconds, for goroutines that are ending
// (servers closing their connections under -race on two busy cores take
// longer than goleak's own half second), and the one ignore list every
// package shares: idle keep-alive connections of net/http's transports.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// wait is how long Main gives goroutines to end after the last test.
const wait = 5 * time.Second

// ignored are goroutines that are not the code under test's: an
// http.Transport's idle keep-alive connections, which live until the
// transport closes them.
var ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

// Main runs m, then fails if goroutines started by the tests are still
// running 5 seconds after the last test ended.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Check(wait); err != nil {
			fmt.Fprintf(os.Stderr, "leaktest: goroutines still running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Check waits up to d for every goroutine but the runtime's, the test
// framework's and the ignored ones to end, and returns goleak's report of
// those that did not, or nil.
func Check(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := goleak.Find(ignored...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
