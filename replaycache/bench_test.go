package replaycache_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// writeLog puts corpus sessions of about payloadBytes of messages into a
// new directory log, cut into batches of up to 8 events as the tap's
// one-second flushes would, interleaved across sessions. Without close, the
// sessions' close events are left out so that they stay live.
func writeLog(b *testing.B, payloadBytes int64, withClose bool) (dir string, events int, payload int64) {
	b.Helper()
	dir = b.TempDir()
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Partitions: 4, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	rng := rand.New(rand.NewPCG(9, 9))
	var queue [][][]session.Event
	seed := uint64(100)
	for payload < payloadBytes {
		seed++
		evs := corpusSessions(seed, time.Now(), 1, 20+rng.IntN(60))[0]
		if !withClose {
			evs = evs[:len(evs)-1]
		}
		for _, e := range evs {
			payload += int64(len(e.Payload))
		}
		events += len(evs)
		queue = append(queue, batches(rng, evs, 8))
		// Keep about 50 sessions in flight, as a tap would.
		for len(queue) > 50 || (payload >= payloadBytes && len(queue) > 0) {
			i := rng.IntN(len(queue))
			put(b, p, queue[i][0])
			if queue[i] = queue[i][1:]; len(queue[i]) == 0 {
				queue = append(queue[:i], queue[i+1:]...)
			}
		}
	}
	flush(b, p)
	return dir, events, payload
}

// fill runs a cache over the whole log.
func fill(b *testing.B, dir string, opts *replaycache.Options) *replaycache.Cache {
	b.Helper()
	cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	o := replaycache.Options{Logger: quiet}
	if opts != nil {
		o = *opts
		o.Logger = quiet
	}
	c := replaycache.New(cons, &o)
	if err := c.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkIngest measures how fast a cache reads and reassembles a log:
// reading the directory log, decoding, reassembling and re-encoding.
func BenchmarkIngest(b *testing.B) {
	dir, events, payload := writeLog(b, 32<<20, true)
	b.SetBytes(payload)
	b.ResetTimer()
	for b.Loop() {
		c := fill(b, dir, nil)
		if st := c.Status(); st.PayloadBytes != payload {
			b.Fatalf("cached %d payload bytes of %d", st.PayloadBytes, payload)
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemory measures the heap a cache holds per payload byte it
// caches: complete sessions, and live ones (no close yet, so each holds a
// growing batch).
func BenchmarkMemory(b *testing.B) {
	for _, bc := range []struct {
		name      string
		withClose bool
		seal      int
	}{
		{"complete", true, 0}, {"live", false, 0},
		{"complete/seal=16KiB", true, 16 << 10}, {"live/seal=16KiB", false, 16 << 10},
		{"complete/seal=64KiB", true, 64 << 10}, {"live/seal=64KiB", false, 64 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir, _, payload := writeLog(b, 64<<20, bc.withClose)
			var heap, accounted float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				c := fill(b, dir, &replaycache.Options{IdleSeal: time.Hour, SealBytes: bc.seal})
				runtime.GC()
				runtime.ReadMemStats(&after)
				st := c.Status()
				if st.PayloadBytes != payload {
					b.Fatalf("cached %d payload bytes of %d", st.PayloadBytes, payload)
				}
				heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(payload)
				accounted = float64(st.Bytes) / float64(payload)
				runtime.KeepAlive(c)
			}
			b.ReportMetric(heap, "heap-B/payload-B")
			b.ReportMetric(accounted, "accounted-B/payload-B")
			b.ReportMetric(float64(payload)/(1<<20), "payload-MiB")
		})
	}
}
