package readiness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// fastOptions scale the defaults down so a run takes a fraction of a second.
func fastOptions(set *metrics.Set, log *slog.Logger) *Options {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Options{
		Interval: 20 * time.Millisecond, ScrapeTimeout: 500 * time.Millisecond,
		Window: 200 * time.Millisecond, Hold: 100 * time.Millisecond, MinWarm: 100 * time.Millisecond,
		MaxWarm: 10 * time.Second, MinSamples: 5, Metrics: set, Logger: log,
	}
}

// target serves the exposition body(n) for the n-th scrape, from 1.
func target(t *testing.T, body func(n int) (status int, text string)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, text := body(int(n.Add(1)))
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, text)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func metricValue(set *metrics.Set, name string) float64 {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func runWatcher(t *testing.T, url string, o *Options) (*Watcher, Decision, error) {
	t.Helper()
	w, err := NewWatcher(url, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := w.Run(ctx)
	return w, d, err
}

func TestWatcherClassicHistogram(t *testing.T) {
	var hdrErr atomic.Value
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != acceptHeader || r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Pod") != "p1" {
			hdrErr.Store(fmt.Sprintf("headers %v", r.Header))
		}
		n := float64(scrapes.Add(1))
		io.WriteString(w, classicJitter("", 90*n, 100*n, 1000+100*n, 1000+100*n))
		fmt.Fprintf(w, "# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total 777\n")
	}))
	defer srv.Close()
	set := metrics.NewSet()
	o := fastOptions(set, nil)
	o.BearerToken = "s3cret"
	o.MaxJitter = 0.1 // the interval's p99 is 0.091
	o.Header = http.Header{"X-Pod": {"p1"}}
	w, err := NewWatcher(srv.URL+"/metrics", o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the replayer, and a progress line
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				w.ObserveLatency(time.Now(), 12*time.Millisecond)
				_ = w.Status()
			}
		}
	})
	d, err := w.Run(ctx)
	close(stop)
	wg.Wait()
	if err != nil || d.Outcome != OutcomeWarm || !d.Release {
		t.Fatalf("Run = %+v, %v; want warm", d, err)
	}
	if e := hdrErr.Load(); e != nil {
		t.Error(e)
	}
	r := w.Report()
	if r.Outcome != OutcomeWarm || !r.Released || !r.ReleasedAt.Equal(d.At) || r.MetricsURL != srv.URL+"/metrics" || r.Reason == "" {
		t.Errorf("report header %+v", r)
	}
	names := []string{"jitter_seconds", "compile_ms_per_second", "replay_latency_ms"}
	for i, s := range r.Signals {
		if s.Name != names[i] || s.Missing || len(s.Points) == 0 || s.FlatAt < 0 {
			t.Errorf("series %d: %s missing %v points %d flat at %v", i, s.Name, s.Missing, len(s.Points), s.FlatAt)
		}
	}
	for _, p := range r.Signals[Jitter].Points {
		if math.Abs(p.V-0.091) > 1e-6 {
			t.Errorf("jitter p99 %v at %v, want 0.091 from the interval's deltas", p.V, p.T)
		}
	}
	for _, p := range r.Signals[Compile].Points {
		if p.V != 0 {
			t.Errorf("compile rate %v of a constant counter", p.V)
		}
	}
	for _, p := range r.Signals[Latency].Points {
		if math.Abs(p.V-12) > 12*0.05 {
			t.Errorf("latency p50 %v, want 12ms within 5%%", p.V)
		}
	}
	marks := fmt.Sprint(r.Marks)
	for _, m := range []string{"flat: jitter_seconds", "flat: compile_ms_per_second", "flat: replay_latency_ms", "released"} {
		if !strings.Contains(marks, m) {
			t.Errorf("marks %s lack %q", marks, m)
		}
	}
	if st := w.Status(); st.Decision.Outcome != OutcomeWarm || st.Scrapes == 0 || len(st.Signals) != 3 {
		t.Errorf("status %+v", st)
	}
	if metricValue(set, `preheat_readiness_releases_total{outcome="warm"}`) != 1 || metricValue(set, "preheat_readiness_scrapes_total") == 0 {
		t.Errorf("metrics not counted")
	}
}

func TestWatcherGaugeCounterReset(t *testing.T) {
	srv, _ := target(t, func(n int) (int, string) {
		c := 1000.0
		if n >= 5 {
			c = 3 // the process restarted
		}
		return 200, fmt.Sprintf("# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds{s=\"a\"} 0.002\njvm_scheduler_jitter_seconds{s=\"b\"} 0.004\n"+
			"jvm_compilation_time_ms_total %g\n", c)
	})
	w, d, err := runWatcher(t, srv.URL, fastOptions(nil, nil))
	if err != nil || d.Outcome != OutcomeWarm {
		t.Fatalf("Run = %+v, %v", d, err)
	}
	r := w.Report()
	for _, p := range r.Signals[Jitter].Points {
		if p.V != 0.004 {
			t.Errorf("jitter %v, want the max gauge 0.004", p.V)
		}
	}
	var spike bool
	for _, p := range r.Signals[Compile].Points {
		if p.V < 0 {
			t.Errorf("compile rate %v < 0 across the reset", p.V)
		}
		spike = spike || p.V > 0
	}
	if !spike {
		t.Error("the reset's 3ms were not counted")
	}
	if !r.Signals[Latency].Missing {
		t.Error("latency not missing without observations")
	}
}

func TestWatcherMissingCompile(t *testing.T) {
	srv, _ := target(t, func(int) (int, string) { return 200, "jvm_scheduler_jitter_seconds 0.001\nother_metric 5\n" })
	short := fastOptions(nil, nil)
	short.MaxWarm = time.Second
	_, d, err := runWatcher(t, srv.URL, short)
	if err != nil || d.Outcome != OutcomeDeadlineOpen || !strings.Contains(d.Reason, "never seen") {
		t.Fatalf("Run = %+v, %v; want the deadline to decide, saying the compile metric was never seen", d, err)
	}
	o := fastOptions(nil, nil)
	o.NoJIT = true
	w, d, err := runWatcher(t, srv.URL, o)
	if err != nil || d.Outcome != OutcomeWarm {
		t.Fatalf("NoJIT: Run = %+v, %v", d, err)
	}
	if r := w.Report(); len(r.Signals) != 1 || r.Signals[0].Name != Jitter.String() {
		t.Errorf("report signals %+v, want jitter alone: compile and latency were never seen", r.Signals)
	}
}

func TestWatcherScrapeErrors(t *testing.T) {
	var logs bytes.Buffer
	set := metrics.NewSet()
	srv, _ := target(t, func(n int) (int, string) {
		switch {
		case n >= 3 && n < 8:
			return 500, "boom"
		case n >= 8 && n < 10:
			return 200, "jvm_scheduler_jitter_seconds{ garbage\n"
		}
		return 200, "jvm_scheduler_jitter_seconds 0.001\n"
	})
	o := fastOptions(set, slog.New(slog.NewTextHandler(&logs, nil)))
	o.NoJIT = true
	w, d, err := runWatcher(t, srv.URL, o)
	if err != nil || d.Outcome != OutcomeWarm {
		t.Fatalf("Run = %+v, %v", d, err)
	}
	if got := metricValue(set, `preheat_readiness_scrape_errors_total{reason="status"}`); got != 5 {
		t.Errorf("status errors %v, want 5", got)
	}
	if got := metricValue(set, `preheat_readiness_scrape_errors_total{reason="parse"}`); got != 2 {
		t.Errorf("parse errors %v, want 2", got)
	}
	if n := strings.Count(logs.String(), "scrape failed"); n != 1 {
		t.Errorf("logged %d scrape failures for one streak:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "scrapes recovered"); n != 1 {
		t.Errorf("logged %d recoveries", n)
	}
	if st := w.Status(); st.ScrapeErrors != 7 {
		t.Errorf("status counts %d errors", st.ScrapeErrors)
	}
}

func TestWatcherDeadline(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	big, _ := target(t, func(int) (int, string) { return 200, strings.Repeat("# padding\n", 100) })
	proto, _ := target(t, func(int) (int, string) { return 200, "" })
	proto.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		w.Write([]byte{1, 2, 3})
	})
	cold, _ := target(t, func(int) (int, string) { return 200, "jvm_scheduler_jitter_seconds 0.5\n" })
	f := func(name, url, reason string, failClosed bool, want string) {
		t.Helper()
		set := metrics.NewSet()
		o := fastOptions(set, nil)
		o.MaxWarm, o.ScrapeTimeout, o.MaxBodyBytes, o.FailClosed = 400*time.Millisecond, 100*time.Millisecond, 500, failClosed
		start := time.Now()
		w, d, err := runWatcher(t, url, o)
		if err != nil || d.Outcome != want || d.Release == failClosed || d.Warm {
			t.Errorf("%s: Run = %+v, %v; want %s", name, d, err, want)
		}
		if el := time.Since(start); el < o.MaxWarm {
			t.Errorf("%s: ended after %v, before the deadline", name, el)
		}
		if reason != "" && metricValue(set, fmt.Sprintf("preheat_readiness_scrape_errors_total{reason=%q}", reason)) == 0 {
			t.Errorf("%s: no %s errors counted", name, reason)
		}
		if metricValue(set, fmt.Sprintf("preheat_readiness_outcomes_total{outcome=%q}", want)) != 1 {
			t.Errorf("%s: outcome not counted", name)
		}
		r := w.Report()
		if r.Released != !failClosed || r.Outcome != want || !strings.Contains(fmt.Sprint(r.Marks), "deadline") {
			t.Errorf("%s: report %+v", name, r)
		}
	}
	f("server down, open", down.URL, "connect", false, OutcomeDeadlineOpen)
	f("server down, closed", down.URL, "connect", true, OutcomeDeadlineClosed)
	f("hanging", hang.URL, "timeout", false, OutcomeDeadlineOpen)
	f("too large", big.URL, "too_large", true, OutcomeDeadlineClosed)
	f("protobuf", proto.URL, "format", false, OutcomeDeadlineOpen)
	f("never cools", cold.URL, "", true, OutcomeDeadlineClosed)
}

// TestWatcherHoldTolerance scrapes a target over HTTP whose JIT settles,
// then, a moment into the hold, rises to a new level for good: 30 ms/s
// (1.5 times the limit) is released under the default tolerance, while a
// strict hold, or a rise to 50 ms/s, never turns flat again and ends at
// the deadline. The target's counter follows the wall clock, so the
// rates the watcher measures are the profile's whatever the scrapes' timing.
func TestWatcherHoldTolerance(t *testing.T) {
	// From the first scrape: a wave at 300 ms/s to 300 ms, 8 ms/s to 800
	// ms, then level. The rate window (200 ms) and the judging window
	// (200 ms) are clear of the wave from about 700 ms; the hold is 1 s.
	profile := func(level float64) func(time.Duration) float64 {
		return func(since time.Duration) float64 {
			switch {
			case since < 300*time.Millisecond:
				return 300
			case since < 800*time.Millisecond:
				return 8
			}
			return level
		}
	}
	run := func(name string, tol, level float64, want string, reason string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rate := profile(level)
			var mu sync.Mutex
			var first, last time.Time
			var ms float64
			srv, _ := target(t, func(int) (int, string) {
				mu.Lock()
				defer mu.Unlock()
				now := time.Now()
				if first.IsZero() {
					first, last = now, now
				}
				// The counter grows at the profile's rate, a millisecond
				// at a time, so that a late scrape sees the same rate.
				for step := time.Millisecond; last.Add(step).Before(now); last = last.Add(step) {
					ms += rate(last.Sub(first)) * step.Seconds()
				}
				return 200, fmt.Sprintf("jvm_scheduler_jitter_seconds 0.002\njvm_compilation_time_ms_total %g\n", ms)
			})
			o := fastOptions(nil, nil)
			o.Hold, o.MaxWarm, o.HoldTolerance = time.Second, 4*time.Second, tol
			_, d, err := runWatcher(t, srv.URL, o)
			if err != nil || d.Outcome != want || !strings.Contains(d.Reason, reason) {
				t.Fatalf("Run = %+v, %v; want %s, saying %q", d, err, want, reason)
			}
		})
	}
	run("rise to 30, default", 0, 30, OutcomeWarm, "within the hold's tolerance 2")
	run("rise to 30, strict", 1, 30, OutcomeDeadlineOpen, "over limit 20")
	run("rise to 50, default", 0, 50, OutcomeDeadlineOpen, "over limit 20")
}

func TestWatcherCanceled(t *testing.T) {
	srv, _ := target(t, func(int) (int, string) { return 200, "jvm_scheduler_jitter_seconds 0.5\n" })
	w, err := NewWatcher(srv.URL, fastOptions(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	d, err := w.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || d.Outcome != OutcomeCanceled || d.Release {
		t.Errorf("Run = %+v, %v; want canceled", d, err)
	}
	if _, err := w.Run(context.Background()); err == nil {
		t.Error("second Run did not fail")
	}
	if r := w.Report(); r.Outcome != OutcomeCanceled || r.Released {
		t.Errorf("report %+v", r)
	}
}

func TestNewWatcherErrors(t *testing.T) {
	for _, c := range []struct {
		url string
		o   *Options
	}{
		{"localhost:9090", nil},
		{"ftp://x/metrics", nil},
		{"http://", nil},
		{"http://x/metrics", &Options{Window: -time.Second}},
		{"http://x/metrics", &Options{JitterQuantile: 1.5}},
		{"http://x/metrics", &Options{MinSamples: 1}},
		{"http://x/metrics", &Options{Window: 2 * time.Second}},
		{"http://x/metrics", &Options{HoldTolerance: 0.5}},
		{"http://x/metrics", &Options{HoldTolerance: math.NaN()}},
		{"http://x/metrics", &Options{HoldTolerance: math.Inf(1)}},
	} {
		if _, err := NewWatcher(c.url, c.o); err == nil {
			t.Errorf("NewWatcher(%q, %+v) did not fail", c.url, c.o)
		}
	}
	if _, err := NewWatcher("http://127.0.0.1:9/metrics", nil); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestNewWatcherRequiresMetricsURLWithJIT(t *testing.T) {
	for _, o := range []*Options{nil, {}, {CompileMetric: "x"}} {
		_, err := NewWatcher("", o)
		if err == nil || !strings.Contains(err.Error(), "metrics URL is required unless the target has no JIT") {
			t.Errorf("NewWatcher(\"\", %+v) = %v, want a metrics URL required", o, err)
		}
	}
	if _, err := NewWatcher("", &Options{NoJIT: true}); err != nil {
		t.Errorf("NewWatcher(\"\", NoJIT) = %v", err)
	}
	if _, err := NewWatcher("", &Options{NoJIT: true, Window: -time.Second}); err == nil {
		t.Error("NewWatcher(\"\", NoJIT) did not validate the options")
	}
	if _, err := NewWatcher("localhost:9090", &Options{NoJIT: true}); err == nil {
		t.Error("NoJIT let a malformed metrics URL through")
	}
}

// runOnLatency runs w in a synctest bubble, in its default 1s steps, while
// feeding it a 12 ms replay latency 50 times a second from feedAfter on,
// and returns its decision. Before feeding, it calls waiting.
func runOnLatency(t *testing.T, w *Watcher, feedAfter time.Duration, waiting func()) Decision {
	t.Helper()
	done := make(chan Decision, 1)
	go func() {
		d, err := w.Run(context.Background())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- d
	}()
	time.Sleep(feedAfter)
	synctest.Wait()
	waiting()
	for {
		select {
		case d := <-done:
			return d
		case <-time.After(20 * time.Millisecond):
			w.ObserveLatency(time.Now(), 12*time.Millisecond)
		}
	}
}

// TestWatcherWithoutMetricsURLWhenNoJIT: a watcher with no metrics URL, for
// a target without a JIT, makes no request (its client points at a server
// that counts them), counts and logs no scrape, and releases on replay
// latency alone, with MinResponses and MinWarm still applying. Until the
// replay answers it has no signal and says so.
func TestWatcherWithoutMetricsURLWhenNoJIT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var requests atomic.Int64
		srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) })
		inBubble(t, srv, func(c *http.Client) {
			set := metrics.NewSet()
			var logs bytes.Buffer
			w, err := NewWatcher("", &Options{NoJIT: true, MinResponses: 500, HTTPClient: c, Metrics: set,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			d := runOnLatency(t, w, 5500*time.Millisecond, func() {
				st := w.Status()
				if st.Decision.Outcome != "" || !strings.Contains(st.Decision.Reason, "no signal to judge") {
					t.Errorf("before any latency: decision %+v, want waiting for a signal", st.Decision)
				}
			})
			// Latency from 6s, flat once observed for the 10s window; 500
			// responses by 15.5s; then the 10s hold: 26s, held to MinWarm.
			if d.Outcome != OutcomeWarm || !d.Release {
				t.Fatalf("Run = %+v, want warm", d)
			}
			if el := d.At.Sub(start); el != 30*time.Second {
				t.Errorf("warm after %v, want MinWarm, 30s: %s", el, d.Reason)
			}
			if !strings.HasPrefix(d.Reason, "warm after 30s, every signal flat for") || !strings.Contains(d.Reason, ": replay_latency_ms flat at") ||
				strings.Contains(d.Reason, "jitter") || strings.Contains(d.Reason, "compile") {
				t.Errorf("reason %q, want latency alone named", d.Reason)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("%d HTTP requests made", n)
			}
			st := w.Status()
			if st.Scrapes != 0 || st.ScrapeErrors != 0 || st.Decision.Outcome != OutcomeWarm || st.Elapsed != 30*time.Second {
				t.Errorf("status %+v, want warm after 30s and no scrapes", st)
			}
			for _, s := range st.Signals {
				if s.Signal != Latency && (s.Present || s.Why != "not scraped: no metrics URL") {
					t.Errorf("status of %s: %+v", s.Signal, s)
				}
				if s.Signal == Latency && (!s.Present || !s.Flat || math.Abs(s.Value-12) > 12*0.05) {
					t.Errorf("status of latency: %+v", s)
				}
			}
			if got := metricValue(set, "preheat_readiness_scrapes_total"); got != 0 {
				t.Errorf("preheat_readiness_scrapes_total %v", got)
			}
			var exp bytes.Buffer
			set.WritePrometheus(&exp)
			if strings.Contains(exp.String(), "preheat_readiness_scrape_errors_total") {
				t.Errorf("scrape errors counted:\n%s", exp.String())
			}
			if strings.Contains(logs.String(), "scrape") || strings.Contains(logs.String(), "metrics_url") {
				t.Errorf("logs mention scraping:\n%s", logs.String())
			}
		})
	})
}

// TestWatcherReportShowsOnlySignalsSeenWhenNoJIT: without a JIT the report
// (its JSON and its HTML) leaves out the signals the target never exposed,
// and the facts about scraping when nothing was scraped; with a JIT a
// compile metric never seen stays in, as the note that explains the
// deadline.
func TestWatcherReportShowsOnlySignalsSeenWhenNoJIT(t *testing.T) {
	render := func(t *testing.T, r *Report) (string, string) {
		t.Helper()
		var js bytes.Buffer
		if err := WriteJSON(&js, r); err != nil {
			t.Fatal(err)
		}
		return js.String(), htmlRender(t, r)
	}
	names := func(r *Report) (ns []string) {
		for _, s := range r.Signals {
			ns = append(ns, s.Name)
		}
		return ns
	}
	absent := func(t *testing.T, what, text string, words ...string) {
		t.Helper()
		for _, w := range words {
			if strings.Contains(text, w) {
				t.Errorf("%s shows %q", what, w)
			}
		}
	}
	notExposed := "Not exposed by the target"

	t.Run("no metrics URL", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w, err := NewWatcher("", &Options{NoJIT: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if r := w.Report(); len(r.Signals) != 0 {
				t.Errorf("before Run: signals %v, want none", names(r))
			}
			runOnLatency(t, w, time.Second, func() {})
			r := w.Report()
			if r.MetricsURL != "" {
				t.Errorf("metrics URL %q", r.MetricsURL)
			}
			if got := names(r); len(got) != 1 || got[0] != "replay_latency_ms" || len(r.Signals[0].Points) == 0 {
				t.Errorf("signals %v, want replay latency alone", got)
			}
			js, page := render(t, r)
			for what, text := range map[string]string{"JSON": js, "HTML": page} {
				absent(t, what, text, "jitter_seconds", "compile_ms_per_second", "Scheduler jitter", "JIT compile time",
					notExposed, "metrics from", "Scrape", "Jitter metric", "Compile metric")
			}
			if !strings.Contains(page, "Replay latency") || strings.Count(page, "<figure>") != 1 {
				t.Errorf("HTML does not draw replay latency alone")
			}
		})
	})

	t.Run("event-loop lag, no compile metric", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			node := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "# TYPE nodejs_eventloop_lag_seconds gauge\nnodejs_eventloop_lag_seconds 0.0021\n")
			})
			inBubble(t, node, func(c *http.Client) {
				w, err := NewWatcher("http://node.test/metrics", &Options{NoJIT: true, JitterMetric: "nodejs_eventloop_lag_seconds",
					HTTPClient: c, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				runOnLatency(t, w, time.Second, func() {})
				r := w.Report()
				if got := names(r); !slices.Equal(got, []string{"jitter_seconds", "replay_latency_ms"}) {
					t.Errorf("signals %v, want event-loop lag and replay latency", got)
				}
				js, page := render(t, r)
				for what, text := range map[string]string{"JSON": js, "HTML": page} {
					absent(t, what, text, "compile_ms_per_second", "JIT compile time", notExposed, "Compile metric")
				}
				if !strings.Contains(page, "nodejs_eventloop_lag_seconds") || !strings.Contains(page, "Scrapes") {
					t.Error("HTML lacks the jitter metric's name or the scrape count")
				}
			})
		})
	})

	t.Run("with a JIT, compile metric never seen", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			jvm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "jvm_scheduler_jitter_seconds 0.002\n")
			})
			inBubble(t, jvm, func(c *http.Client) {
				w, err := NewWatcher("http://jvm.test/metrics", &Options{MaxWarm: time.Minute, HTTPClient: c, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				if d := runOnLatency(t, w, time.Second, func() {}); d.Outcome != OutcomeDeadlineOpen {
					t.Errorf("Run = %+v, want the deadline", d)
				}
				r := w.Report()
				if len(r.Signals) != int(numSignals) || !r.Signals[Compile].Missing {
					t.Errorf("signals %v, want all three, compile missing", names(r))
				}
				if _, page := render(t, r); !strings.Contains(page, notExposed) {
					t.Error("HTML does not say the compile metric was not exposed")
				}
			})
		})
	})
}

func TestLatencies(t *testing.T) {
	var l latencies
	l.observe(t0, time.Millisecond) // before begin: dropped
	l.begin(t0)
	l.observe(t0.Add(-time.Second), time.Millisecond) // before the start: dropped
	if _, ok := l.take(0.5); ok {
		t.Fatal("observations before the start counted")
	}
	for i := 1; i <= 100; i++ {
		l.observe(t0, time.Duration(i)*time.Millisecond)
	}
	l.observe(t0, -time.Second)
	l.observe(t0, 0)
	l.observe(t0, 100*time.Hour)
	if got, _ := l.take(0.5); math.Abs(got-51) > 51*0.05 {
		t.Errorf("p50 %v, want about 51", got)
	}
	if _, ok := l.take(0.5); ok {
		t.Error("take did not reset")
	}
	if l.observed() != 102 {
		t.Errorf("observed %d", l.observed())
	}
}

// exported returns the value of the series name as set exposes it, and
// whether it does.
func exported(set *metrics.Set, name string) (float64, bool) {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err == nil
		}
	}
	return 0, false
}

// TestWatcherExportsSignalsAgainstLimits runs a warm-up in fake time
// against a JVM with steady jitter and a trickle of compiles and checks
// what the dashboard reads of it: each signal's limit from the start (for
// the signals that have one), each signal's value once it has one, equal to
// the latest sample the detector judged, and the seconds from the start to
// the release.
func TestWatcherExportsSignalsAgainstLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		jvm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds 0.004\n")
			fmt.Fprintf(w, "# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total %g\n", 5*time.Since(start).Seconds())
		})
		inBubble(t, jvm, func(c *http.Client) {
			set := metrics.NewSet()
			w, err := NewWatcher("http://jvm.test/metrics", &Options{HTTPClient: c, MaxJitter: 0.02, MaxLatency: 50,
				Metrics: set, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			limits := map[Signal]float64{Jitter: 0.02, Compile: DefaultMaxCompileRate, Latency: 50}
			for s, want := range limits {
				if got, ok := exported(set, fmt.Sprintf("preheat_readiness_signal_limit{signal=%q}", s)); !ok || got != want {
					t.Errorf("limit of %s before the run: %v (exported %v), want %v", s, got, ok, want)
				}
				if _, ok := exported(set, fmt.Sprintf("preheat_readiness_signal_value{signal=%q}", s)); ok {
					t.Errorf("a value of %s is exported before any sample", s)
				}
			}
			if _, ok := exported(set, "preheat_readiness_release_seconds"); ok {
				t.Error("a release time is exported before the release")
			}
			d := runOnLatency(t, w, 0, func() {})
			if d.Outcome != OutcomeWarm {
				t.Fatalf("Run = %+v, want warm", d)
			}
			st := w.Status()
			for _, s := range st.Signals {
				got, ok := exported(set, fmt.Sprintf("preheat_readiness_signal_value{signal=%q}", s.Signal))
				if !ok || got != s.Value {
					t.Errorf("value of %s: %v (exported %v), want the detector's %v", s.Signal, got, ok, s.Value)
				}
			}
			if v := st.Signals[Compile].Value; math.Abs(v-5) > 0.01 {
				t.Errorf("compile rate %v ms/s, want 5", v)
			}
			got, ok := exported(set, "preheat_readiness_release_seconds")
			if want := d.At.Sub(start).Seconds(); !ok || got != want || want < DefaultMinWarm.Seconds() {
				t.Errorf("release seconds %v (exported %v), want %v, after the minimum warm-up", got, ok, want)
			}
		})
	})
}

// TestWatcherExportsLimitsOfSignalsItCanSee: without a metrics URL only
// replay latency can be judged, so only its limit is exported, and only
// when it has one; at a deadline that does not release there is no release
// time, and at one that does it is the deadline.
func TestWatcherExportsLimitsOfSignalsItCanSee(t *testing.T) {
	f := func(maxLatency float64, failClosed bool) {
		t.Helper()
		set := metrics.NewSet()
		o := fastOptions(set, nil)
		o.NoJIT, o.MaxLatency, o.FailClosed, o.MaxWarm = true, maxLatency, failClosed, 100*time.Millisecond
		_, d, err := runWatcher(t, "", o)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []Signal{Jitter, Compile} {
			if _, ok := exported(set, fmt.Sprintf("preheat_readiness_signal_limit{signal=%q}", s)); ok {
				t.Errorf("limit of %s exported with no metrics URL", s)
			}
		}
		got, ok := exported(set, `preheat_readiness_signal_limit{signal="replay_latency_ms"}`)
		if ok != (maxLatency > 0) || got != maxLatency {
			t.Errorf("MaxLatency %v: latency limit %v (exported %v)", maxLatency, got, ok)
		}
		rel, ok := exported(set, "preheat_readiness_release_seconds")
		if ok != d.Release || (ok && rel < o.MaxWarm.Seconds()) {
			t.Errorf("%s: release seconds %v (exported %v)", d.Outcome, rel, ok)
		}
	}
	f(0, false)
	f(250, true)
}
