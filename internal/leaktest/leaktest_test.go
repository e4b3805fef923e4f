package leaktest

import (
	"strings"
	"testing"
	"time"
)

func TestCheckReportsAParkedGoroutineUntilItEnds(t *testing.T) {
	stop := make(chan struct{})
	go func() { <-stop }()
	err := Check(50 * time.Millisecond)
	close(stop)
	if err == nil || !strings.Contains(err.Error(), "TestCheckReportsAParkedGoroutineUntilItEnds") {
		t.Fatalf("Check did not report the parked goroutine; got: %v", err)
	}
	if err := Check(2 * time.Second); err != nil {
		t.Fatalf("Check reported goroutines after they ended: %v", err)
	}
}
