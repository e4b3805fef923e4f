package coldserver

import (
	"fmt"
	"io"
	"strconv"
	"sync"
)

// histogram is a classic Prometheus histogram with le buckets, as a JVM
// exports it; VictoriaMetrics histograms use vmrange buckets instead.
type histogram struct {
	name, help string
	bounds     []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(name, help string, bounds []float64) *histogram {
	return &histogram{name: name, help: help, bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := len(h.bounds)
	for k, b := range h.bounds {
		if v <= b {
			i = k
			break
		}
	}
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

func (h *histogram) writeTo(w io.Writer) {
	h.mu.Lock()
	counts := append([]uint64(nil), h.counts...)
	sum, count := h.sum, h.count
	h.mu.Unlock()

	b := fmt.Appendf(nil, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, c := range counts {
		cum += c
		le := "+Inf"
		if i < len(h.bounds) {
			le = strconv.FormatFloat(h.bounds[i], 'g', -1, 64)
		}
		b = fmt.Appendf(b, "%s_bucket{le=%q} %d\n", h.name, le, cum)
	}
	b = fmt.Appendf(b, "%s_sum %s\n%s_count %d\n", h.name, strconv.FormatFloat(sum, 'g', -1, 64), h.name, count)
	w.Write(b)
}

// Bucket bounds in seconds.
var (
	jitterBuckets  = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)
