package warmup_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
	"github.com/preheatdev/preheat/warmup"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// serveCache puts sessions into a directory log and serves them from a
// replay cache over HTTP; it returns a source of them as a warm-up asks.
func serveCache(t *testing.T, sessions [][]session.Event) *replayer.CacheSource {
	t.Helper()
	dir := t.TempDir()
	p, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, evs := range sessions {
		b, err := session.AppendBatch(nil, evs)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Put(context.Background(), evs[0].Session.String(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cons, err := dirlog.NewConsumer(dir, stream.Start{}, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cache := replaycache.New(cons, &replaycache.Options{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cache.Run(ctx)
	}()
	srv := httptest.NewServer(replaycache.NewServer(cache, &replaycache.ServerOptions{Logger: quiet}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		cons.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for cache.Status().Sessions < len(sessions) {
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %d sessions, want %d", cache.Status().Sessions, len(sessions))
		}
		time.Sleep(20 * time.Millisecond)
	}
	client, err := replaycache.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return replayer.NewCacheSource(client, &replayer.CacheSourceOptions{
		Request: warmup.Select(replaycache.Coverage, replaycache.Filter{}), Logger: quiet})
}

// corpusSessions returns n recent corpus sessions of q client messages,
// with mutations at the given rate.
func corpusSessions(seed uint64, n, q int, mutateRate float64) [][]session.Event {
	g := corpus.New(seed)
	g.MutateRate = mutateRate
	var out [][]session.Event
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for i := range n {
		out = append(out, g.Session(start.Add(time.Duration(i)*time.Millisecond), q))
	}
	return out
}

// serveCold starts a test-size simulated cold server; it returns the
// simulator, its websocket URL and its metrics URL.
func serveCold(t *testing.T) (sim *coldserver.Server, target, metricsURL string) {
	t.Helper()
	sim = coldserver.New(&coldserver.Options{Scale: 0.2, WarmWindow: 2 * time.Second, Seed: 1})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	addr := srv.Listener.Addr().String()
	return sim, "ws://" + addr + "/sync", "http://" + addr + "/metrics"
}
