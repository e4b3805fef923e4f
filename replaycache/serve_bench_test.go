package replaycache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// countingConsumer counts the records its consumer hands the cache, so a
// benchmark can show that the stream is read once however many clients
// the cache serves.
type countingConsumer struct {
	stream.Consumer
	records atomic.Int64
}

func (c *countingConsumer) Next(ctx context.Context) (stream.Record, error) {
	rec, err := c.Consumer.Next(ctx)
	if err == nil {
		c.records.Add(1)
	}
	return rec, err
}

// serveSetup is a cache filled from a directory log, still following it,
// served over HTTP on 127.0.0.1.
type serveSetup struct {
	cache    *replaycache.Cache
	cons     *countingConsumer
	url      string
	dir      string
	payload  int64
	filled   int64        // records read to fill the cache
	appended atomic.Int64 // records put by the appender
}

// startServe writes about payloadBytes of complete corpus sessions into a
// new directory log, runs a cache over it until it holds all of them, and
// serves the cache. The server's rate limits are set far above anything
// the benchmark can ask for, so that what is measured is the cache, HTTP
// and the clients, not the limiter. Everything stops when b ends.
func startServe(b *testing.B, payloadBytes int64) *serveSetup {
	b.Helper()
	dir, _, payload := writeLog(b, payloadBytes, true)
	dc, err := dirlog.NewConsumer(dir, stream.Start{}, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s := &serveSetup{cons: &countingConsumer{Consumer: dc}, dir: dir, payload: payload}
	s.cache = replaycache.New(s.cons, &replaycache.Options{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.cache.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
		dc.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for s.cache.Status().PayloadBytes < payload {
		if time.Now().After(deadline) {
			b.Fatalf("cache holds %d payload bytes of %d after 60 s", s.cache.Status().PayloadBytes, payload)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.filled = s.cons.records.Load()
	srv := httptest.NewServer(replaycache.NewServer(s.cache, &replaycache.ServerOptions{
		SessionsPerSecond:       1e9,
		ClientSessionsPerSecond: 1e9,
		Logger:                  quiet,
	}))
	b.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// append puts new corpus sessions into the log at about perSecond records
// a second (batches of up to 8 events, 20 sessions in flight) until ctx is
// done, counting the records put. It returns when ctx is done.
func (s *serveSetup) append(b *testing.B, ctx context.Context, perSecond int) {
	p, err := dirlog.NewProducer(s.dir, &dirlog.ProducerOptions{Partitions: 4, Logger: quiet})
	if err != nil {
		b.Error(err)
		return
	}
	defer p.Close(context.Background())
	rng := rand.New(rand.NewPCG(7, 7))
	var live [][][]session.Event
	seed := uint64(1 << 20)
	// A ticker drops ticks when the machine is busy: each tick puts what
	// the elapsed time owes, so the rate holds.
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		for len(live) < 20 {
			seed++
			evs := corpusSessions(seed, time.Now(), 1, 20+rng.IntN(60))[0]
			live = append(live, batches(rng, evs, 8))
		}
		if sent >= int(time.Since(start).Seconds()*float64(perSecond)) {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		sent++
		i := rng.IntN(len(live))
		evs := live[i][0]
		data, err := session.AppendBatch(nil, evs)
		if err != nil {
			b.Error(err)
			return
		}
		if err := p.Put(ctx, evs[0].Session.String(), data); err != nil {
			if ctx.Err() == nil {
				b.Error(err)
			}
			return
		}
		s.appended.Add(1)
		if live[i] = live[i][1:]; len(live[i]) == 0 {
			live = slices.Delete(live, i, i+1)
		}
	}
}

// appendRate is the records per second put into the stream while the
// cache serves.
const appendRate = 200

// BenchmarkServeConcurrentWarmers measures one cache serving many warmers
// at once over HTTP/1.1 on 127.0.0.1: 16 MiB of complete corpus sessions
// cached, while a producer keeps appending 200 records a second to the
// stream the cache follows.
//
// Each iteration runs every client for 3 s (then the request in flight
// finishes; a paced client's first request comes in any case). Each client
// repeats Select (coverage mode, limit 5, nothing covered yet) and reads
// every session: all start together and go back to back, or, with
// every=D, each starts at a random point of the first D and asks once per
// D (every=5s: the clients' first requests are spread over 5 s, and each
// asks once). Each client is its own replaycache.Client with its
// own ClientID; all share one http.Transport that keeps an idle connection
// per client, so a client's first request includes its TCP connect and
// later ones reuse the connection.
//
// It reports the time from the start of a request to its first session
// read whole (ttfs, p50 and p99 over every request; first-ttfs-p99 over
// each client's first request), sessions served per second, the records
// the cache read from the stream per second during the serve phase beside
// those appended per second (reading once, reads do not grow with the
// clients), and how far behind the stream the cache was at the end of the
// phase (stream-lag-s: records appended but not yet read, over the append
// rate; the producer's 50 ms of buffering is part of it). The load generator runs in the same process as the server and
// shares its cores.
func BenchmarkServeConcurrentWarmers(b *testing.B) {
	for _, bc := range []struct {
		clients int
		every   time.Duration
	}{
		{10, 0}, {100, 0}, {1000, 0}, {2000, 0},
		{1000, 5 * time.Second}, {2000, 5 * time.Second},
	} {
		name := fmt.Sprintf("clients=%d", bc.clients)
		if bc.every > 0 {
			name += "/every=" + bc.every.String()
		}
		b.Run(name, func(b *testing.B) {
			s := startServe(b, 16<<20)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { s.append(b, ctx, appendRate) })
			b.Cleanup(func() {
				cancel()
				wg.Wait()
			})
			time.Sleep(time.Second) // the appender's records reach the cache

			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConns = 0 // no limit
			tr.MaxIdleConnsPerHost = bc.clients
			b.Cleanup(tr.CloseIdleConnections)
			clients := make([]*replaycache.Client, bc.clients)
			for i := range clients {
				c, err := replaycache.NewClient(s.url, &replaycache.ClientOptions{
					ClientID:   fmt.Sprintf("warmer-%d", i),
					HTTPClient: &http.Client{Transport: tr},
				})
				if err != nil {
					b.Fatal(err)
				}
				clients[i] = c
			}

			var r serveRound
			for b.Loop() {
				r.add(runWarmers(clients, s, 3*time.Second, bc.every))
			}
			if r.errors > 0 {
				b.Logf("%d requests failed; first: %v", r.errors, r.firstErr)
			}
			b.ReportMetric(r.pct(r.ttfs, 0.50), "ttfs-p50-ms")
			b.ReportMetric(r.pct(r.ttfs, 0.99), "ttfs-p99-ms")
			b.ReportMetric(r.pct(r.first, 0.99), "first-ttfs-p99-ms")
			b.ReportMetric(float64(r.sessions)/r.elapsed.Seconds(), "sessions/s")
			b.ReportMetric(float64(len(r.ttfs))/float64(r.rounds*bc.clients), "requests/client")
			b.ReportMetric(float64(r.reads)/r.elapsed.Seconds(), "stream-reads/s")
			b.ReportMetric(float64(r.appends)/r.elapsed.Seconds(), "appended/s")
			b.ReportMetric(float64(r.errors), "errors")
			b.ReportMetric(r.backlog.Seconds(), "stream-lag-s")
		})
	}
}

// serveRound is what clients measured in one or more rounds.
type serveRound struct {
	ttfs, first    []time.Duration
	sessions       int
	elapsed        time.Duration
	reads, appends int64
	rounds, errors int
	firstErr       error
	backlog        time.Duration // the largest at the end of a round
}

func (r *serveRound) add(o serveRound) {
	r.ttfs = append(r.ttfs, o.ttfs...)
	r.first = append(r.first, o.first...)
	r.sessions += o.sessions
	r.elapsed += o.elapsed
	r.reads += o.reads
	r.appends += o.appends
	r.rounds++
	r.backlog = max(r.backlog, o.backlog)
	r.errors += o.errors
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

// pct returns the q quantile of ds in milliseconds.
func (r *serveRound) pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))]) / float64(time.Millisecond)
}

// runWarmers runs every client for d: each starts its requests at once
// (every == 0: back to back) or once per every, the first at a random
// point of the first interval. A request that fails ends its client's run.
func runWarmers(clients []*replaycache.Client, s *serveSetup, d, every time.Duration) serveRound {
	type result struct {
		ttfs     []time.Duration
		sessions int
		err      error
	}
	results := make([]result, len(clients))
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	req := replaycache.SelectRequest{Mode: replaycache.Coverage, Filter: replaycache.Filter{Limit: 5}}
	reads0, appends0 := s.cons.records.Load(), s.appended.Load()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i, c := range clients {
		res := &results[i]
		wg.Go(func() {
			next := start
			if every > 0 {
				next = start.Add(rand.N(every))
			}
			for n := 0; n < 10000; n++ {
				if n > 0 && (time.Now().After(end) || every > 0 && next.After(end)) {
					return
				}
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
				t0 := time.Now()
				sr, err := c.Select(ctx, req)
				if err != nil {
					res.err = err
					return
				}
				for {
					_, err := sr.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						res.err = err
						break
					}
					if res.sessions++; len(res.ttfs) == n {
						res.ttfs = append(res.ttfs, time.Since(t0))
					}
				}
				sr.Close()
				if res.err != nil {
					return
				}
				if len(res.ttfs) == n {
					res.err = errors.New("select returned no session")
					return
				}
			}
		})
	}
	wg.Wait()
	var out serveRound
	out.elapsed = time.Since(start)
	out.reads = s.cons.records.Load() - reads0
	out.appends = s.appended.Load() - appends0
	behind := s.filled + s.appended.Load() - s.cons.records.Load()
	out.backlog = time.Duration(float64(behind) / appendRate * float64(time.Second))
	for _, res := range results {
		out.ttfs = append(out.ttfs, res.ttfs...)
		if len(res.ttfs) > 0 {
			out.first = append(out.first, res.ttfs[0])
		}
		out.sessions += res.sessions
		if res.err != nil {
			out.errors++
			if out.firstErr == nil {
				out.firstErr = res.err
			}
		}
	}
	return out
}
