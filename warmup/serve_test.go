package warmup_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

func newIdleWarmup(t *testing.T) *warmup.Warmup {
	t.Helper()
	w, err := warmup.New("ws://127.0.0.1:1/sync", "http://127.0.0.1:1/metrics", replayer.NewSliceSource(nil), &warmup.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestServeReadyUntilStopped checks that the ready server answers until
// stopped, and then no longer.
func TestServeReadyUntilStopped(t *testing.T) {
	w := newIdleWarmup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, failed := w.ServeReady(ln)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + ln.Addr().String()
	f := func(path string, want int) {
		t.Helper()
		resp, err := client.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
	f("/healthz", http.StatusOK)
	f("/readyz", http.StatusServiceUnavailable)
	stop()
	if resp, err := client.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("served after stop")
	}
	select {
	case err := <-failed:
		t.Errorf("failed after a stop: %v", err)
	default:
	}
}

// TestServeReadyReportsAFailure checks that serving that ends on its own
// is reported, and that stop still returns.
func TestServeReadyReportsAFailure(t *testing.T) {
	w := newIdleWarmup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, failed := w.ServeReady(ln)
	defer stop()
	ln.Close()
	select {
	case err := <-failed:
		if err == nil {
			t.Error("nil error on failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a closed listener not reported")
	}
}
