package readiness

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/internal/pipenet"
)

// inBubble serves h over pipes for the duration of the test and gives f a
// client of it.
func inBubble(t *testing.T, h http.Handler, f func(*http.Client)) {
	t.Helper()
	f(pipenet.Serve(t, h))
}

// TestWatcherDefaultsSynctest runs a whole warm-up with the default
// options (1s scrapes, 30s window and hold, 10m deadline) in fake time: a
// JVM whose jitter falls for two minutes and whose JIT compiles in two
// waves with a 20s lull between them.
func TestWatcherDefaultsSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		compiled := func(s float64) float64 { // ms of compile time by s seconds
			c1 := min(s, 60) * 300
			c2 := min(max(s-80, 0), 20) * 150
			return c1 + c2
		}
		jvm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := time.Since(start).Seconds()
			jitter := 0.003 + 0.5*max(120-s, 0)/120
			fmt.Fprintf(w, "# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds %g\n", jitter)
			fmt.Fprintf(w, "# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total %g\n", compiled(s))
		})
		inBubble(t, jvm, func(c *http.Client) {
			w, err := NewWatcher("http://jvm.test/metrics", &Options{HTTPClient: c, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			d, err := w.Run(context.Background())
			if err != nil || d.Outcome != OutcomeWarm {
				t.Fatalf("Run = %+v, %v", d, err)
			}
			// The C2 wave ends at 100s and the compile rate over 10s is
			// quiet from 110s; jitter falls until 120s, and is flat once
			// its 10s window has cleared the fall; then held for 10s.
			if el := d.At.Sub(start); el < 125*time.Second || el > 145*time.Second {
				t.Errorf("warm after %v, want about 136s: %s", el, d.Reason)
			}
			r := w.Report()
			if fa := r.Signals[Compile].FlatAt; fa < 100 {
				t.Errorf("compile last turned flat at %vs, before the second wave ended at 100s", fa)
			}
			if n := len(r.Signals[Jitter].Points); n < 125 {
				t.Errorf("%d jitter points", n)
			}
		})
	})
}

// TestWatcherDeadlineSynctest runs into the default 10m deadline against a
// target that answers 500 to every scrape.
func TestWatcherDeadlineSynctest(t *testing.T) {
	for _, closed := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "crashing", 500) })
			inBubble(t, broken, func(c *http.Client) {
				w, err := NewWatcher("http://jvm.test/metrics", &Options{HTTPClient: c, FailClosed: closed, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				d, err := w.Run(context.Background())
				want := OutcomeDeadlineOpen
				if closed {
					want = OutcomeDeadlineClosed
				}
				if err != nil || d.Outcome != want || d.Release == closed {
					t.Errorf("Run = %+v, %v; want %s", d, err, want)
				}
				if el := time.Since(start); el != 10*time.Minute {
					t.Errorf("ended after %v, want the 10m deadline", el)
				}
				if st := w.Status(); st.ScrapeErrors != st.Scrapes || st.Scrapes < 590 {
					t.Errorf("status %+v", st)
				}
			})
		})
	}
}
