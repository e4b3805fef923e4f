package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
	"github.com/preheatdev/preheat/warmup"
)

// cacheServer is the replay cache, as 'preheat cache' runs it, reading
// the demo's directory log as it is written and serving it on loopback.
type cacheServer struct {
	url   string
	cache *replaycache.Cache
	cons  *dirlog.Consumer
	srv   *http.Server
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// startCache starts a replay cache of the directory log at dir, keeping
// sessions for window (replaycache.Options.Window; 0: its default).
func startCache(dir string, window time.Duration, logger *slog.Logger, set *metrics.Set) (*cacheServer, error) {
	cons, err := dirlog.NewConsumer(dir, stream.Start{}, &dirlog.ConsumerOptions{Logger: logger, Metrics: set})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cons.Close()
		return nil, err
	}
	cache := replaycache.New(cons, &replaycache.Options{Logger: logger, Metrics: set, Window: window})
	c := &cacheServer{url: "http://" + ln.Addr().String(), cache: cache, cons: cons,
		srv: &http.Server{Handler: replaycache.NewServer(cache, &replaycache.ServerOptions{Logger: logger, Metrics: set}),
			ErrorLog: log.New(io.Discard, "", 0)}}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.wg.Go(func() { _ = cache.Run(ctx) })
	c.wg.Go(func() { _ = c.srv.Serve(ln) })
	return c, nil
}

func (c *cacheServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(ctx)
	c.stop()
	c.wg.Wait()
	c.cons.Close()
}

// WaitSessions waits until cache holds n whole sessions (complete: their
// close read) or 15 seconds pass, as a cache reading a stream just written
// catches up; it fails if the cache holds no whole session by then.
func WaitSessions(ctx context.Context, cache *replaycache.Cache, n int) error {
	deadline := time.Now().Add(15 * time.Second)
	for whole(cache.Status()) < n && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if whole(cache.Status()) == 0 {
		return errors.New("cache: no whole sessions were captured")
	}
	return nil
}

// whole counts the sessions of a cache's status that are neither live nor
// truncated.
func whole(st replaycache.Status) int { return st.Sessions - st.Live - st.Truncated }

// checkRedacted reads back the newest session a warm-up would replay and
// checks that its connect token was redacted by the tap. Not the newest
// session of all: that is one the fleet opened as the capture ended, live
// in the cache until its close is read, or closed before its connect was
// sent; neither holds a connect message.
func checkRedacted(ctx context.Context, cacheURL string) error {
	c, err := replaycache.NewClient(cacheURL, nil)
	if err != nil {
		return err
	}
	r, err := c.Select(ctx, warmup.Select(replaycache.Newest, replaycache.Filter{Limit: 1}))
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer r.Close()
	s, err := r.Next()
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, ev := range s.Events {
		if strings.Contains(string(ev.Payload), `"type":"connect"`) {
			if strings.Contains(string(ev.Payload), `"tok_`) || !strings.Contains(string(ev.Payload), redact.Marker) {
				return fmt.Errorf("cache: a connect token was not redacted: %s", ev.Payload)
			}
			return nil
		}
	}
	return errors.New("cache: a session without its connect message")
}
