package loadtest_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/internal/pipenet"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/replayer"
)

// lockedBuffer is a bytes.Buffer a logger and a test may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// showProgress runs a 3s load test against an echo target over pipes with
// ShowProgress beside it, as o says, logging to log; call it in a synctest
// bubble.
func showProgress(t *testing.T, o *loadtest.ProgressOptions, log *slog.Logger) {
	t.Helper()
	ss := sessions(10, 3, 5)
	r, err := loadtest.New(&loadtest.Corpus{Sessions: ss, Rate: loadtest.ArrivalRate(ss)}, "ws://staging", &loadtest.Options{
		Duration: 3 * time.Second, Logger: log,
		Replay: &replayer.Options{Correlate: "id", HTTPClient: pipenet.Serve(t, &echoTarget{delay: 3 * time.Millisecond})},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { r.ShowProgress(ctx, o) })
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop()
	wg.Wait()
}

// TestShowProgressRewritesATerminalLine checks that a terminal gets one
// status line a second, each written over the last, erased at the end,
// and that nothing is logged then.
func TestShowProgressRewritesATerminalLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var term bytes.Buffer
		var log lockedBuffer
		showProgress(t, &loadtest.ProgressOptions{Terminal: &term, Interval: time.Hour}, slog.New(slog.NewTextHandler(&log, nil)))
		out := term.String()
		if !strings.HasSuffix(out, "\r\033[K") {
			t.Errorf("status line not erased at the end: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\033[K"), "\r\033[K")[1:]
		line := regexp.MustCompile(`^ +\d+s +[0-9.]+ sessions/s +\d+ active  p50 \S+ +p99 \S+ +errors 0 \(0\.00%\)$`)
		if len(lines) != 3 {
			t.Fatalf("%d status lines in a 3s run, want one a second: %q", len(lines), out)
		}
		for i, l := range lines {
			if !line.MatchString(l) || !strings.HasPrefix(l, strings.Repeat(" ", 5)+string(rune('1'+i))+"s") {
				t.Errorf("status line %d = %q", i, l)
			}
		}
		if strings.Contains(log.String(), "progress") {
			t.Errorf("progress logged with a terminal:\n%s", log.String())
		}
	})
}

// TestShowProgressLogsEveryInterval checks that without a terminal a line
// is logged every interval, and that an interval of 0 shows nothing.
func TestShowProgressLogsEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		showProgress(t, &loadtest.ProgressOptions{Interval: time.Second}, slog.New(slog.NewTextHandler(&log, nil)))
		lines := regexp.MustCompile(`msg="loadtest: progress" elapsed=\ds rate=[0-9.]+/s active=\d+ started=\d+ p50=\S+ p99=\S+ errors=0 error_rate=0\.000%`).FindAllString(log.String(), -1)
		if len(lines) != 3 {
			t.Errorf("%d progress lines in a 3s run logged every second, want 3:\n%s", len(lines), log.String())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		showProgress(t, &loadtest.ProgressOptions{}, slog.New(slog.NewTextHandler(&log, nil)))
		showProgress(t, nil, slog.New(slog.NewTextHandler(&log, nil)))
		if strings.Contains(log.String(), "progress") {
			t.Errorf("progress logged with an interval of 0:\n%s", log.String())
		}
	})
}
