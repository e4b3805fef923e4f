package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
)

// batches cuts corpus sessions into batches of up to n events, as the tap
// does when it flushes a session's buffer.
func batches(n int) (out [][]session.Event, payload int) {
	g := corpus.New(42)
	start := time.Unix(1763800000, 0)
	for len(out) < 2000 {
		evs := g.Session(start, 60)
		for len(evs) > 0 {
			k := min(n, len(evs))
			out = append(out, evs[:k])
			for _, e := range evs[:k] {
				payload += len(e.Payload)
			}
			evs = evs[k:]
		}
	}
	return out, payload
}

// BenchmarkAppendBatch measures encoding and compression on realistic JSON
// sync traffic, in batches of 1 to 128 events. It reports events per second
// and stream bytes per payload byte.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			bs, payload := batches(n)
			var events, encoded int
			for _, batch := range bs {
				events += len(batch)
				out, err := session.AppendBatch(nil, batch)
				if err != nil {
					b.Fatal(err)
				}
				encoded += len(out)
			}
			b.SetBytes(int64(payload / len(bs)))
			buf := make([]byte, 0, 1<<20)
			b.ResetTimer()
			done := 0
			for i := 0; b.Loop(); i++ {
				batch := bs[i%len(bs)]
				var err error
				if buf, err = session.AppendBatch(buf[:0], batch); err != nil {
					b.Fatal(err)
				}
				done += len(batch)
			}
			b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(encoded)/float64(payload), "stream-B/payload-B")
		})
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	bs, payload := batches(32)
	enc := make([][]byte, len(bs))
	events := 0
	for i, batch := range bs {
		var err error
		if enc[i], err = session.AppendBatch(nil, batch); err != nil {
			b.Fatal(err)
		}
		events += len(batch)
	}
	b.SetBytes(int64(payload / len(bs)))
	var dst []session.Event
	done := 0
	for i := 0; b.Loop(); i++ {
		var err error
		if dst, err = session.DecodeBatch(enc[i%len(enc)], dst[:0]); err != nil {
			b.Fatal(err)
		}
		done += len(dst)
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "events/s")
}
