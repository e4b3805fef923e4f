package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/internal/jvmfixture"
)

// launch starts a JVM sync server; the caller closes it.
func launch(ctx context.Context, opts *jvmfixture.Options) (*jvmfixture.Server, error) {
	s, err := jvmfixture.Launch(ctx, opts)
	if errors.Is(err, jvmfixture.ErrNoJDK) {
		return nil, fmt.Errorf("%w (apt-get install openjdk-17-jdk-headless)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("jvm: %w", err)
	}
	return s, nil
}

// drive sends real traffic to url for d and returns the requests; failed
// sessions are a check that did not hold. opts nil means demo.Pace's
// defaults: 4 clients, 600 requests/s in all, sessions of 50 requests,
// every tenth a mutation.
func (s *story) drive(ctx context.Context, url string, d time.Duration, opts *demo.PaceOptions, seed uint64) *demo.Requests {
	// The clients time requests from this process, which may have just run
	// a warm-up (the replay, the cache's reads, the report): collect that
	// garbage first, so that this process's collector is less likely to
	// take a processor from the clients while they time the first requests.
	runtime.GC()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	l := demo.Pace(ctx, url, opts, seed)
	if n := l.Errors(); n > 0 {
		s.errorf("traffic to %s: %d sessions failed", url, n)
	}
	return l
}

// ratio is a over b, b at least a nanosecond.
func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }
