package readiness

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func probe(t *testing.T, url string) (int, readyzBody) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b readyzBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, b
}

func TestGateRelease(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []Decision
		auth []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d Decision
		err := json.NewDecoder(r.Body).Decode(&d)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook request %s %v: %v", r.Method, r.Header, err)
		}
		got = append(got, d)
		auth = append(auth, r.Header.Get("Authorization"))
	}))
	defer hook.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "ready.json")
	set := metrics.NewSet()
	g := NewGate(&GateOptions{File: file, Webhook: hook.URL, WebhookToken: "tok", Metrics: set, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(g)
	defer srv.Close()

	if code, b := probe(t, srv.URL+"/readyz"); code != 503 || b.Ready || b.State != "warming" {
		t.Errorf("before release: %d %+v", code, b)
	}
	d := Decision{Warm: true, Release: true, Outcome: OutcomeWarm, Reason: "every signal flat", At: t0}
	if err := g.Release(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if code, b := probe(t, srv.URL+"/readyz"); code != 200 || !b.Ready || b.State != "released" || b.Outcome != OutcomeWarm {
		t.Errorf("after release: %d %+v", code, b)
	}
	var fromFile Decision
	data, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(data, &fromFile) != nil || fromFile != d {
		t.Errorf("release file %q: %v", data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != d || auth[0] != "Bearer tok" {
		t.Errorf("webhook got %+v with %q", got, auth)
	}
	mu.Unlock()
	if err := g.Release(context.Background(), d); err != nil {
		t.Errorf("second release: %v", err)
	}
	g.Fail("too late")
	if !g.Ready() {
		t.Error("Fail after Release unreleased the gate")
	}
	mu.Lock()
	if len(got) != 1 {
		t.Errorf("webhook called %d times", len(got))
	}
	mu.Unlock()
	if metricValue(set, "preheat_readiness_gate_releases_total") != 1 {
		t.Error("release not counted")
	}
}

func TestGateWebhookFailing(t *testing.T) {
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer hook.Close()
	set := metrics.NewSet()
	g := NewGate(&GateOptions{Webhook: hook.URL, WebhookAttempts: 3, WebhookBackoff: time.Millisecond,
		Metrics: set, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(g)
	defer srv.Close()
	err := g.Release(context.Background(), Decision{Release: true, Outcome: OutcomeDeadlineOpen})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("Release = %v, want the webhook's 500", err)
	}
	if calls.Load() != 3 || metricValue(set, "preheat_readiness_gate_webhook_attempts_total") != 3 {
		t.Errorf("webhook tried %d times, want 3", calls.Load())
	}
	if metricValue(set, "preheat_readiness_gate_webhook_errors_total") != 1 {
		t.Error("webhook failure not counted")
	}
	if code, b := probe(t, srv.URL); code != 200 || !b.Ready {
		t.Errorf("readyz %d %+v, want released despite the webhook", code, b)
	}
}

func TestGateWebhookBounds(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			select { // hangs past the attempt timeout
			case <-r.Context().Done():
			case <-release:
			}
		default:
			w.WriteHeader(http.StatusBadRequest) // not retried
		}
	}))
	defer hook.Close()
	defer close(release)
	g := NewGate(&GateOptions{Webhook: hook.URL, WebhookTimeout: 50 * time.Millisecond, WebhookAttempts: 10,
		WebhookBackoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err := g.Release(context.Background(), Decision{}); err == nil || calls.Load() != 2 {
		t.Errorf("Release = %v after %d calls, want a 400 after a timed-out attempt", err, calls.Load())
	}
	// ctx bounds the retries.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	g = NewGate(&GateOptions{Webhook: down.URL, WebhookAttempts: 1000, WebhookBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := g.Release(ctx, Decision{}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Release = %v after %v", err, time.Since(start))
	}
}

func TestGateFail(t *testing.T) {
	set := metrics.NewSet()
	g := NewGate(&GateOptions{Metrics: set})
	srv := httptest.NewServer(g)
	defer srv.Close()
	g.Fail("deadline 10m reached before warm; not released (fail closed)")
	code, b := probe(t, srv.URL+"/readyz")
	if code != 503 || b.Ready || b.State != "failed" || !strings.Contains(b.Reason, "fail closed") {
		t.Errorf("failed gate: %d %+v", code, b)
	}
	if err := g.Release(context.Background(), Decision{Release: true}); err == nil {
		t.Error("release of a failed gate succeeded")
	}
	if code, _ := probe(t, srv.URL+"/readyz"); code != 503 {
		t.Errorf("readyz %d after a refused release", code)
	}
	resp, err := http.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || len(body) != 0 {
		t.Errorf("HEAD %d %q", resp.StatusCode, body)
	}
}

// TestGateFileError: a ready file that cannot be written is an error, the
// gate is released anyway, and the error is counted by a counter exported
// at 0 before it, so that rate() sees the one increase.
func TestGateFileError(t *testing.T) {
	set := metrics.NewSet()
	g := NewGate(&GateOptions{File: filepath.Join(t.TempDir(), "missing", "ready.json"), Logger: slog.New(slog.DiscardHandler), Metrics: set})
	for _, name := range []string{"preheat_readiness_gate_file_errors_total", "preheat_readiness_gate_webhook_errors_total"} {
		if v, ok := exported(set, name); !ok || v != 0 {
			t.Errorf("before the release %s = %v (exported %v), want 0", name, v, ok)
		}
	}
	if err := g.Release(context.Background(), Decision{}); err == nil || !g.Ready() {
		t.Errorf("Release = %v, ready %v; want an error and released", err, g.Ready())
	}
	if v, _ := exported(set, "preheat_readiness_gate_file_errors_total"); v != 1 {
		t.Errorf("file errors %v, want 1", v)
	}
}

func TestGateConcurrent(t *testing.T) {
	g := NewGate(nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_ = g.Release(context.Background(), Decision{Release: true})
			} else {
				g.Fail("x")
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		})
	}
	wg.Wait()
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if (rec.Code == 200) != g.Ready() {
		t.Errorf("readyz %d but Ready %v", rec.Code, g.Ready())
	}
}
