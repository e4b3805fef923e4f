package readiness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// GateOptions configure a Gate. A nil *GateOptions is valid: /readyz only.
type GateOptions struct {
	// File, if set, is written atomically (temporary file, then rename) on
	// release with the decision as JSON. Default none.
	File string
	// Webhook, if set, is POSTed the decision as JSON on release, for a
	// router to start sending traffic. Default none.
	Webhook string
	// WebhookToken, if set, is sent as "Authorization: Bearer <token>".
	// Default none.
	WebhookToken string
	// WebhookHeader is added to every webhook request. Default none.
	WebhookHeader http.Header
	// WebhookTimeout bounds each webhook attempt. Default 5s.
	WebhookTimeout time.Duration
	// WebhookAttempts is how many times the webhook is tried; a 4xx other
	// than 408 and 429 is not retried. Default 5.
	WebhookAttempts int
	// WebhookBackoff is the first retry's delay cap; the cap doubles each
	// retry up to WebhookMaxBackoff and each delay is drawn uniformly below
	// it (full jitter). Default 250ms.
	WebhookBackoff time.Duration
	// WebhookMaxBackoff caps a retry's delay. Default 5s.
	WebhookMaxBackoff time.Duration
	// HTTPClient sends the webhook. Default a client of its own.
	HTTPClient *http.Client
	// Logger receives release and webhook failures. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives preheat_readiness_gate_* metrics. Default a private
	// set.
	Metrics *metrics.Set
}

func (o *GateOptions) withDefaults() GateOptions {
	var c GateOptions
	if o != nil {
		c = *o
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 5 * time.Second
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = 5
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = 250 * time.Millisecond
	}
	if c.WebhookMaxBackoff <= 0 {
		c.WebhookMaxBackoff = 5 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// Gate states, as reported in the /readyz body.
const (
	stateWarming  = "warming"
	stateReleased = "released"
	stateFailed   = "failed"
)

// Gate holds a target out of traffic until released. Its ServeHTTP answers
// a readiness probe: 503 while warming or failed, 200 once released. The
// first of Release and Fail wins. It is safe for concurrent use.
type Gate struct {
	o   GateOptions
	log *slog.Logger

	mu       sync.Mutex
	state    string
	reason   string
	decision Decision
}

// NewGate returns a gate in the warming state. opts may be nil.
func NewGate(opts *GateOptions) *Gate {
	o := opts.withDefaults()
	// Exported at 0 from the start: a counter that first appears at 1 on
	// a pod's one release shows no increase to rate() or increase().
	o.Metrics.GetOrCreateCounter("preheat_readiness_gate_releases_total")
	o.Metrics.GetOrCreateCounter("preheat_readiness_gate_file_errors_total")
	o.Metrics.GetOrCreateCounter("preheat_readiness_gate_webhook_errors_total")
	return &Gate{o: o, log: o.Logger.With("component", "readiness_gate"), state: stateWarming}
}

// readyzBody is the /readyz answer.
type readyzBody struct {
	Ready   bool      `json:"ready"`
	State   string    `json:"state"`
	Outcome string    `json:"outcome,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// ServeHTTP answers a readiness probe with a short JSON body.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	b := readyzBody{Ready: g.state == stateReleased, State: g.state, Reason: g.reason}
	if g.state == stateReleased {
		b.Outcome, b.At = g.decision.Outcome, g.decision.At
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if b.Ready {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(b)
	}
}

// Ready reports whether the gate has been released.
func (g *Gate) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state == stateReleased
}

// Release lets traffic in: /readyz turns 200 at once, whatever d says (the
// caller decided), then the file is written and the webhook called. Their
// failures are logged, counted and returned, but do not undo the release.
// ctx bounds the webhook's retries. Releasing twice does nothing more;
// releasing a failed gate is an error.
func (g *Gate) Release(ctx context.Context, d Decision) error {
	g.mu.Lock()
	switch g.state {
	case stateReleased:
		g.mu.Unlock()
		return nil
	case stateFailed:
		reason := g.reason
		g.mu.Unlock()
		return fmt.Errorf("release: gate already failed: %s", reason)
	}
	g.state, g.decision, g.reason = stateReleased, d, d.Reason
	g.mu.Unlock()
	g.o.Metrics.GetOrCreateCounter("preheat_readiness_gate_releases_total").Inc()

	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	var errs []error
	if g.o.File != "" {
		if err := writeFileAtomic(g.o.File, append(body, '\n')); err != nil {
			g.o.Metrics.GetOrCreateCounter("preheat_readiness_gate_file_errors_total").Inc()
			g.log.Error("release file not written", "file", g.o.File, "err", err)
			errs = append(errs, err)
		}
	}
	if g.o.Webhook != "" {
		if err := g.notify(ctx, body); err != nil {
			g.o.Metrics.GetOrCreateCounter("preheat_readiness_gate_webhook_errors_total").Inc()
			g.log.Error("release webhook failed; /readyz is released anyway", "webhook", g.o.Webhook, "err", err)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// Fail marks the gate failed, as fail-closed does at the deadline: /readyz
// stays 503 and its body says why. It does nothing once released.
func (g *Gate) Fail(reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateWarming {
		return
	}
	g.state, g.reason = stateFailed, reason
	g.o.Metrics.GetOrCreateCounter("preheat_readiness_gate_failures_total").Inc()
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so readers see the old content or the whole new one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %q: %w", path, err)
	}
	return nil
}

// notify POSTs body to the webhook with retries.
func (g *Gate) notify(ctx context.Context, body []byte) error {
	attempts := g.o.Metrics.GetOrCreateCounter("preheat_readiness_gate_webhook_attempts_total")
	var last error
	for i := range g.o.WebhookAttempts {
		if i > 0 {
			ceil := min(g.o.WebhookBackoff<<min(i-1, 30), g.o.WebhookMaxBackoff)
			t := time.NewTimer(rand.N(ceil) + 1)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook %s: %w (last attempt: %w)", g.o.Webhook, ctx.Err(), last)
			case <-t.C:
			}
		}
		attempts.Inc()
		retry, err := g.post(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		g.log.Warn("release webhook attempt failed", "attempt", i+1, "of", g.o.WebhookAttempts, "err", err)
		if !retry {
			break
		}
	}
	return fmt.Errorf("webhook %s: %w", g.o.Webhook, last)
}

// post makes one webhook attempt; retry says whether another may succeed.
func (g *Gate) post(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.o.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.o.Webhook, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, vs := range g.o.WebhookHeader {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.o.WebhookToken != "" {
		req.Header.Set("Authorization", "Bearer "+g.o.WebhookToken)
	}
	resp, err := g.o.HTTPClient.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return false, fmt.Errorf("status %s", resp.Status)
	default:
		return true, fmt.Errorf("status %s", resp.Status)
	}
}
