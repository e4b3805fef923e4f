package warmup_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/warmup"
)

// TestDryRunPrintsPlansAndCounts checks that a dry run prints each
// session's plan and a count of what it would skip, touching no target.
func TestDryRunPrintsPlansAndCounts(t *testing.T) {
	ropts := &replayer.Options{Correlate: "id"}
	var out bytes.Buffer
	d, err := warmup.NewDryRun("", ropts, &out)
	if err != nil {
		t.Fatal(err)
	}
	if ropts.DryRun != nil {
		t.Error("NewDryRun set the caller's options' DryRun")
	}
	if err := d.Run(t.Context(), replayer.NewSliceSource(corpusSessions(3, 4, 10, 0.3))); err != nil {
		t.Fatal(err)
	}
	last := regexp.MustCompile(`(?m)^dry run: 4 sessions, ([1-9]\d*) messages skipped map\[.*mutating:[1-9]\d*.*\]\n\z`)
	if !last.MatchString(out.String()) {
		t.Errorf("no count of 4 sessions and the mutations skipped at the end:\n%s", out.String())
	}
	if strings.Count(out.String(), "\n") < 10 {
		t.Errorf("no plans printed:\n%s", out.String())
	}
}

// stalled is a source that never gives a session.
type stalled struct{}

func (stalled) Next(ctx context.Context) ([]session.Event, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDryRunGivesUpAfter30s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		d, err := warmup.NewDryRun("ws://pod:8080/sync", nil, &out)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Run(context.Background(), stalled{})
		if err == nil || err.Error() != "dry run: the cache gave no sessions within 30s" {
			t.Errorf("Run of a source that gives nothing: %v", err)
		}
		if out.String() != "dry run: 0 sessions, 0 messages skipped map[]\n" {
			t.Errorf("output %q", out.String())
		}
	})
}
