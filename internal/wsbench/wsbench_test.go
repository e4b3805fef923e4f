package wsbench

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func echoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(NewEchoHandler(nil))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/sync"
}

func TestLoadClosedLoop(t *testing.T) {
	url := echoServer(t)
	r, err := Load(t.Context(), url, &LoadOptions{Conns: 4, Duration: 300 * time.Millisecond, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "closed" || r.Messages == 0 || r.Mismatched != 0 {
		t.Fatalf("got %+v", r)
	}
	if r.RTT.Samples != int(r.Messages) || r.RTT.P50 <= 0 || r.RTT.P99 < r.RTT.P50 || r.RTT.Max < r.RTT.P99 {
		t.Errorf("round trips %+v for %d messages", r.RTT, r.Messages)
	}
	// Every connection also sent a connect message.
	if r.Total < r.Messages+4 {
		t.Errorf("total %d, want at least %d", r.Total, r.Messages+4)
	}
	if r.MeanBytes < 100 {
		t.Errorf("mean message %.0f bytes; corpus queries are larger", r.MeanBytes)
	}
}

func TestLoadOpenLoop(t *testing.T) {
	url := echoServer(t)
	// 4 connections at 50 msg/s each for half a second: 25 sends each,
	// the last of which may slip past the window.
	r, err := Load(t.Context(), url, &LoadOptions{Conns: 4, Rate: 200, Duration: 500 * time.Millisecond, Warmup: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "open" || r.Messages < 90 || r.Messages > 100 || r.Mismatched != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestIdle(t *testing.T) {
	url := echoServer(t)
	ready := 0
	r, err := Idle(t.Context(), url, &IdleOptions{Conns: 10, Hold: 50 * time.Millisecond, Ready: func(n int, _ time.Duration) { ready = n }})
	if err != nil {
		t.Fatal(err)
	}
	if ready != 10 || r.Conns != 10 || r.HeldSeconds < 0.05 {
		t.Fatalf("ready %d, result %+v", ready, r)
	}
}

func TestIdleEndsWithContext(t *testing.T) {
	url := echoServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	r, err := Idle(ctx, url, &IdleOptions{Conns: 2, Hold: time.Hour, Ready: func(int, time.Duration) { cancel() }})
	if err != nil {
		t.Fatal(err)
	}
	if r.HeldSeconds > 10 {
		t.Fatalf("held %.1fs after the context ended", r.HeldSeconds)
	}
}

func TestLoopbackOnly(t *testing.T) {
	f := func(target string, ok bool) {
		t.Helper()
		var err error
		if strings.Contains(target, "://") {
			err = CheckLoopbackURL(t.Context(), target)
		} else {
			err = CheckLoopbackAddr(t.Context(), target)
		}
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok %v", target, err, ok)
		}
	}
	f("ws://127.0.0.1:8080/sync", true)
	f("ws://127.9.9.9/", true)
	f("wss://[::1]:8443/", true)
	f("ws://localhost:8080/", true)
	f("ws://10.0.0.1:8080/", false)
	f("ws://192.0.2.1/", false)
	f("http://127.0.0.1:8080/", false)
	f("127.0.0.1:0", true)
	f(":8080", false)
	f("0.0.0.0:8080", false)
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.Samples != 100 || l.P50 != 50000 || l.P90 != 90000 || l.P99 != 99000 || l.P999 != 100000 || l.Max != 100000 || l.Mean != 50500 {
		t.Fatalf("got %+v", l)
	}
	if l := summarize(nil); l.Samples != 0 {
		t.Fatalf("empty: got %+v", l)
	}
}
