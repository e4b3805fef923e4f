package demo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replaycache"
)

// CaptureOptions configure CaptureCache. A nil *CaptureOptions is valid;
// a zero field means its default.
type CaptureOptions struct {
	// For is how long the fleet's clients talk to the upstream through the
	// tap. Default 30s.
	For time.Duration
	// Fleet configures the clients. Default 8 clients, sessions of 20
	// queries, 10ms between an answer and the next query.
	Fleet *FleetOptions
	// Window is how long the cache keeps a session after its connect
	// (replaycache.Options.Window). Default 4h: a benchmark replays one
	// capture for longer than the cache's own default of 15 minutes, after
	// which the cache would be empty.
	Window time.Duration
	// Logger receives the tap's, the stream's and the cache's lines.
	// Default discarded.
	Logger *slog.Logger
}

// Captured is a replay cache on loopback serving the sessions CaptureCache
// captured, until Close.
type Captured struct {
	// URL is the cache's address, http://127.0.0.1:PORT.
	URL string
	// Sessions is how many client sessions ran to their end through the
	// tap; the cache holds them.
	Sessions int
	// Latency is the fleet's record of the capture.
	Latency *Latency

	cache *cacheServer
	dir   string
	close func()
}

// CaptureCache captures sessions as a tap in the router would, and serves
// them as the replay cache would: a fleet of clients talks for opts.For to
// the websocket server at upstream (ws://HOST:PORT) through a tap that
// records whole sessions into a directory log in a new temporary
// directory; the tap is then shut down, and a replay cache of the log
// serves once it holds every session the fleet completed. Close stops the
// cache and removes the directory.
func CaptureCache(ctx context.Context, upstream string, opts *CaptureOptions) (_ *Captured, err error) {
	var o CaptureOptions
	if opts != nil {
		o = *opts
	}
	if o.For <= 0 {
		o.For = 30 * time.Second
	}
	if o.Fleet == nil {
		o.Fleet = &FleetOptions{Clients: 8, Queries: 20, Think: 10 * time.Millisecond}
	}
	if o.Window <= 0 {
		o.Window = 4 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "preheat-capture-")
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	set := metrics.NewSet()
	tap, err := startCapture(upstream, dir, o.Logger, set)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, o.For)
	lat := NewFleet(tap.url+"/sync?client=web", o.Fleet).Run(lctx, 1)
	cancel()
	tap.close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sessions := int(lat.Sessions())
	if sessions == 0 {
		return nil, fmt.Errorf("capture: no whole session in %v (%d failed)", o.For, lat.Errors())
	}
	cache, err := startCache(dir, o.Window, o.Logger, set)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Captured{URL: cache.url, Sessions: sessions, Latency: lat, cache: cache, dir: dir}
	c.close = sync.OnceFunc(func() {
		cache.close()
		os.RemoveAll(dir)
	})
	if err := WaitSessions(ctx, cache.cache, sessions); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Status returns the cache's status.
func (c *Captured) Status() replaycache.Status { return c.cache.cache.Status() }

// Close stops the cache and removes the captured stream. It is safe to
// call twice.
func (c *Captured) Close() { c.close() }
