package capture_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeShutsDownInOrder runs a tap with Serve: it proxies and records,
// serves the admin API, reloads when asked, and once its context ends
// closes the session still open after the shutdown timeout, flushes it
// whole into the stream, and stops the admin API.
func TestServeShutsDownInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := wsecho.Start(t, nil)
	dir := t.TempDir()
	prod, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tap, err := capture.NewTap(up.URL, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, adminLn := listen(t), listen(t)
	var reloads, inReload, overlaps atomic.Int32
	reload := func() error {
		if inReload.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
		inReload.Add(-1)
		reloads.Add(1)
		return nil
	}
	hup := make(chan os.Signal, 1)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- capture.Serve(serveCtx, ln, tap, prod, &capture.ServeOptions{
			AdminListener:   adminLn,
			Admin:           &capture.AdminOptions{Token: "tok", Reload: reload},
			Reloads:         hup,
			ShutdownTimeout: 200 * time.Millisecond,
			Logger:          quietLog,
		})
	}()

	c := dial(t, ctx, "ws://"+ln.Addr().String()+"/sync", nil)
	exchange(t, ctx, c, [][]byte{[]byte("hi")}, 0)

	status := "http://" + adminLn.Addr().String() + "/status"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", status, nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /status: %s", resp.Status)
	}

	// Reloads asked for by signal and by the admin API at once run one at
	// a time.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { hup <- syscall.SIGHUP })
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+adminLn.Addr().String()+"/reload", nil)
			req.Header.Set("Authorization", "Bearer tok")
			if resp, err := client.Do(req); err != nil {
				t.Error(err)
			} else {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	for reloads.Load() < 8 {
		if ctx.Err() != nil {
			t.Fatalf("%d reloads of 8 asked for", reloads.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d reloads ran while another did", n)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after its context ended")
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Error("session still open after the shutdown timeout")
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Error("admin API still served after Serve returned")
	}
	sessions, _ := readSessions(t, dir)
	if len(sessions) != 1 {
		t.Fatalf("%d sessions in the stream, want 1", len(sessions))
	}
	for _, evs := range sessions {
		if last := evs[len(evs)-1]; last.Kind != session.KindClose || last.ClosedBy != session.SideTap {
			t.Errorf("last event = %+v, want the tap's close", last)
		}
		if got := frames(evs, session.ClientToServer); len(got) != 1 || got[0] != "hi" {
			t.Errorf("client frames %q, want [hi]", got)
		}
	}
}
