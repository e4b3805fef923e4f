package demo

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

var token = regexp.MustCompile(`tok_[0-9a-f]+`)

// TestCheckRedactedReadsOnlySessionsAWarmUpReplays: what the capture ends
// with is newer than any whole session: a session still live in the cache
// (its connect not read yet) and one closed before its connect was sent.
// The check reads the newest session a warm-up would replay, not those,
// and still finds a token the tap left in it.
func TestCheckRedactedReadsOnlySessionsAWarmUpReplays(t *testing.T) {
	f := func(redacted bool, want string) {
		t.Helper()
		dir := t.TempDir()
		p, err := dirlog.NewProducer(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		g := corpus.New(1)
		start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
		whole := g.Session(start, 3)
		if redacted {
			for i := range whole {
				whole[i].Payload = token.ReplaceAll(whole[i].Payload, []byte(redact.Marker))
			}
		}
		live := g.Session(start.Add(time.Second), 3)[:1] // its open event only
		unsent := g.Session(start.Add(2*time.Second), 0)
		unsent = append(unsent[:1], unsent[len(unsent)-1]) // its open and close
		unsent[1].Seq = 1
		for _, evs := range [][]session.Event{whole, live, unsent} {
			b, err := session.AppendBatch(nil, evs)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Put(context.Background(), evs[0].Session.String(), b); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		c, err := startCache(dir, 0, discard, metrics.NewSet())
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if err := WaitSessions(t.Context(), c.cache, 2); err != nil {
			t.Fatal(err)
		}
		for c.cache.Status().Sessions < 3 {
			time.Sleep(10 * time.Millisecond)
		}
		err = checkRedacted(t.Context(), c.url)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("redacted %v: %v, want %q", redacted, err, want)
		}
	}
	f(true, "")
	f(false, "a connect token was not redacted")
}
