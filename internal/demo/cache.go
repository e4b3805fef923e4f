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

// cacheServer is the replay cache, as 'preheat cache' runs it, reading a
// directory log as it is written and serving it on loopback.
type cacheServer struct {
	url   string
	cache *replaycache.Cache
	cons  *dirlog.Consumer
	srv   *http.Server
	read  context.CancelFunc // ends the cache's reading of the stream
	wg    sync.WaitGroup     // the reading and the serving
	stop  func()
}

// startCache starts a replay cache of the directory log at dir, keeping
// sessions for window (replaycache.Options.Window; 0: its default). What
// it started before a failure is stopped by the same shutdown as a running
// cache.
func startCache(dir string, window time.Duration, logger *slog.Logger, set *metrics.Set) (_ *cacheServer, err error) {
	c := &cacheServer{read: func() {}}
	c.stop = sync.OnceFunc(c.shutdown)
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.cons, err = dirlog.NewConsumer(dir, stream.Start{}, &dirlog.ConsumerOptions{Logger: logger, Metrics: set}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.url = "http://" + ln.Addr().String()
	c.cache = replaycache.New(c.cons, &replaycache.Options{Logger: logger, Metrics: set, Window: window})
	c.srv = &http.Server{Handler: replaycache.NewServer(c.cache, &replaycache.ServerOptions{Logger: logger, Metrics: set}),
		ErrorLog: log.New(io.Discard, "", 0)}
	ctx, read := context.WithCancel(context.Background())
	c.read = read
	c.wg.Go(func() { _ = c.cache.Run(ctx) })
	c.wg.Go(func() { _ = c.srv.Serve(ln) })
	return c, nil
}

// close stops the cache as 'preheat cache' stops on SIGTERM. It is safe
// to call twice.
func (c *cacheServer) close() { c.stop() }

// shutdown stops what startCache started, in the order of 'preheat
// cache': requests given a deadline to finish (followers still streaming
// then are cut), then the reading of the stream, then the stream.
func (c *cacheServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.srv != nil && c.srv.Shutdown(ctx) != nil {
		_ = c.srv.Close()
	}
	c.read()
	c.wg.Wait()
	if c.cons != nil {
		c.cons.Close()
	}
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
