package kinesis

import (
	"context"
	"math/rand/v2"
	"time"
)

// This file holds the waits between retries the Producer and the Consumer
// share.

// backoff returns a full-jitter wait before the n-th consecutive retry.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(backoffCeiling(base, ceiling, n)) + 1))
}

// backoffCeiling returns min(ceiling, base·2ⁿ⁻¹) without overflowing.
func backoffCeiling(base, ceiling time.Duration, n int) time.Duration {
	d := max(base, 1)
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return max(min(d, ceiling), 0)
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
