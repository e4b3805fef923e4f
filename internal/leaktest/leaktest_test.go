package leaktest

import (
	"strings"
	"testing"
	"time"
)

func TestCheckReportsLeak(t *testing.T) {
	stop := make(chan struct{})
	go func() { <-stop }()
	leaked := Check(50 * time.Millisecond)
	close(stop)
	if !strings.Contains(leaked, "TestCheckReportsLeak") {
		t.Fatalf("Check did not report the parked goroutine; got:\n%s", leaked)
	}
	if leaked := Check(2 * time.Second); leaked != "" {
		t.Fatalf("Check reported goroutines after they ended:\n%s", leaked)
	}
}
