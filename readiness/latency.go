package readiness

import (
	"math"
	"sync"
	"time"
)

// Latency histogram geometry: buckets grow by 5% from 1µs, so a quantile is
// off by at most 5%, and 472 buckets reach past two hours.
const (
	latMinMS   = 0.001
	latGrowth  = 1.05
	latBuckets = 472
)

var latLogGrowth = math.Log(latGrowth)

// latencies aggregates replay latencies into fixed log-spaced buckets, so
// that observing is a constant-time, allocation-free locked increment and
// memory stays bounded whatever the replay rate.
type latencies struct {
	mu     sync.Mutex
	start  time.Time // observations before it are dropped; zero drops all
	counts [latBuckets]uint32
	n      uint64
	total  uint64
}

func latBucket(ms float64) int {
	if ms <= latMinMS {
		return 0
	}
	return min(int(math.Log(ms/latMinMS)/latLogGrowth)+1, latBuckets-1)
}

func (l *latencies) observe(at time.Time, d time.Duration) {
	if d < 0 {
		return
	}
	i := latBucket(float64(d) / float64(time.Millisecond))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || at.Before(l.start) || l.counts[i] == math.MaxUint32 {
		return
	}
	l.counts[i]++
	l.n++
	l.total++
}

func (l *latencies) begin(start time.Time) {
	l.mu.Lock()
	l.start = start
	l.mu.Unlock()
}

// take returns the q-quantile, in ms, of the latencies observed since the
// previous take, and resets them; ok is false when there were none.
func (l *latencies) take(q float64) (ms float64, ok bool) {
	l.mu.Lock()
	counts, n := l.counts, l.n
	l.counts, l.n = [latBuckets]uint32{}, 0
	l.mu.Unlock()
	if n == 0 {
		return 0, false
	}
	rank := q * float64(n)
	var cum float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := 0.0, latMinMS
			if i > 0 {
				lo = latMinMS * math.Pow(latGrowth, float64(i-1))
				hi = lo * latGrowth
			}
			return lo + (hi-lo)*min(max((rank-cum)/float64(c), 0), 1), true
		}
		cum += float64(c)
	}
	return 0, false
}

func (l *latencies) observed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
