package demo

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/warmup"
)

// TestCaptureCacheServesWhatTheFleetSent captures a simulated server's
// clients through the tap and reads the sessions back from the cache, as
// a warm-up would select them.
func TestCaptureCacheServesWhatTheFleetSent(t *testing.T) {
	s, err := startServer("A", 0.25, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	c, err := CaptureCache(t.Context(), "ws://"+s.ln.Addr().String(), &CaptureOptions{For: time.Second, Fleet: &FleetOptions{Clients: 2, Queries: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Sessions == 0 || c.Status().Sessions < c.Sessions {
		t.Fatalf("%d sessions captured, the cache holds %d", c.Sessions, c.Status().Sessions)
	}
	client, err := replaycache.NewClient(c.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := client.Select(ctx, warmup.Select(replaycache.Coverage, replaycache.Filter{}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for ; ; n++ {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < c.Sessions {
		t.Errorf("the cache served %d sessions, want the %d captured", n, c.Sessions)
	}
	c.Close() // twice, with the deferred one
}
