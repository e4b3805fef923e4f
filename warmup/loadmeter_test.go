package warmup

import (
	"testing"
	"time"
)

// TestLoadMeter: the share of the full rate the back-off allows counts
// only while the rate limit is what paces the replay.
func TestLoadMeter(t *testing.T) {
	var m loadMeter
	now := time.Unix(1000, 0)
	steps := []struct {
		sent         uint64
		limit, share float64
	}{
		{0, 600, 1},      // the first reading has nothing to compare with
		{600, 600, 1},    // at full rate
		{630, 30, 0.05},  // held to the floor, sending at it
		{659, 30, 0.05},  // 29/s: still bound by the limit
		{669, 30, 1},     // 10/s under a limit of 30: the sessions, not the limit, pace it
		{699, 60, 1},     // 30/s under a limit just raised to 60: not bound
		{759, 60, 0.1},   // bound again
		{1359, 600, 1},   // back at full rate
		{1000, 300, 1},   // a counter that went back (a new replayer) is not judged
		{1300, 300, 0.5}, // 300/s at a limit of 300
	}
	for i, s := range steps {
		now = now.Add(time.Second)
		if got := m.share(now, s.sent, s.limit, 600); got != s.share {
			t.Errorf("step %d (sent %d, limit %v): share %v, want %v", i, s.sent, s.limit, got, s.share)
		}
	}
}
