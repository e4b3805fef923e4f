package replaycache_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// TestServeReadsAndServesUntilDone runs a cache with Serve: it reads the
// stream, serves the sessions over HTTP/1.1 and h2c, and returns once its
// context ends, its listener closed.
func TestServeReadsAndServesUntilDone(t *testing.T) {
	const n = 4
	dir, p := newLog(t, nil)
	for _, evs := range corpusSessions(5, time.Now().Add(-time.Minute), n, 3) {
		put(t, p, evs)
	}
	flush(t, p)
	cons, err := dirlog.NewConsumer(dir, stream.Start{Time: time.Now().Add(-time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	cache := replaycache.New(cons, &replaycache.Options{Logger: quiet})
	srv := replaycache.NewServer(cache, &replaycache.ServerOptions{Token: "tok", Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- replaycache.Serve(ctx, ln, cache, srv, &replaycache.ServeOptions{ShutdownTimeout: time.Second, Logger: quiet})
	}()

	url := "http://" + ln.Addr().String()
	client, err := replaycache.NewClient(url, &replaycache.ClientOptions{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := client.Status(ctx)
		if err == nil && st.Sessions == n && st.Live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache status %+v, %v; want %d whole sessions read from the stream", st, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: h2c}).Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("h2c /healthz: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	h2c.CloseIdleConnections()

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := client.Status(context.Background()); err == nil {
		t.Error("still served after Serve returned")
	}
}
