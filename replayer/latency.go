package replayer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencyWindow keeps the run's latency histogram and the last three
// seconds', which adaptive back-off reads.
type latencyWindow struct {
	sent, errors atomic.Uint64

	mu     sync.Mutex
	all    *hdrhistogram.Histogram
	recent [3]*hdrhistogram.Histogram // recent[0] is the current second
	span   *hdrhistogram.Histogram    // their merge, reused
}

const (
	histMin = int64(time.Microsecond)
	histMax = int64(10 * time.Minute)
)

func (h *latencyWindow) record(d time.Duration) {
	v := min(max(int64(d), histMin), histMax)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	_ = h.all.RecordValue(v) // v is within the range
	_ = h.recent[0].RecordValue(v)
}

func (h *latencyWindow) initLocked() {
	if h.all == nil {
		h.all = hdrhistogram.New(histMin, histMax, 2)
		for i := range h.recent {
			h.recent[i] = hdrhistogram.New(histMin, histMax, 2)
		}
		h.span = hdrhistogram.New(histMin, histMax, 2)
	}
}

func (h *latencyWindow) quantiles(a, b float64) (time.Duration, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.all == nil {
		return 0, 0
	}
	return time.Duration(h.all.ValueAtQuantile(a)), time.Duration(h.all.ValueAtQuantile(b))
}

// takeRecent returns the p90 latency and the count of responses over the
// last three calls' seconds, and starts a new second.
func (h *latencyWindow) takeRecent() (time.Duration, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	span := h.span
	span.Reset()
	for _, r := range h.recent {
		span.Merge(r)
	}
	oldest := h.recent[len(h.recent)-1]
	copy(h.recent[1:], h.recent[:len(h.recent)-1])
	oldest.Reset()
	h.recent[0] = oldest
	return time.Duration(span.ValueAtQuantile(90)), span.TotalCount()
}
