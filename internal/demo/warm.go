package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// warmed is what the warm-up of server B left.
type warmed struct {
	res         warmup.Result
	start       time.Time
	after       time.Duration    // from the start to the decision
	state       coldserver.State // server B's ground truth at the end
	mutations   uint64           // mutating messages server B received
	reportPaths []string         // JSON, HTML
}

// warm warms server b from the cache at cacheURL as 'preheat warm' does,
// at the demo's settings, and writes the warm report.
func (r *run) warm(ctx context.Context, b *server, cacheURL string) (*warmed, error) {
	r.say("warm: replaying cached sessions against server B until its jitter and compile time flatten")
	log := r.logger()
	client, err := replaycache.NewClient(cacheURL, nil)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	src := replayer.NewCacheSource(client, &replayer.CacheSourceOptions{
		Request: warmup.Select(replaycache.Coverage, replaycache.Filter{}), Logger: log})
	const rate, concurrency = 400, 8
	w, err := warmup.New(b.url(), b.metricsURL(), src, &warmup.Options{
		Replay:    &replayer.Options{Rate: rate, Concurrency: concurrency, Correlate: "id"},
		Readiness: &readiness.Options{Window: r.o.Window, MinWarm: r.o.MinWarm, NoMinWarm: r.o.NoMinWarm, MaxWarm: r.o.Deadline, MaxJitter: r.o.MaxJitter},
		Progress:  3 * time.Second,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	defer w.Close()
	log.Info("warm: starting", "target", b.url(), "metrics", b.metricsURL(), "cache", cacheURL,
		"rate", rate, "concurrency", concurrency, "deadline", r.o.Deadline, "window", r.o.Window, "on_deadline", "open")
	start := time.Now()
	res, err := w.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	wd := &warmed{res: res, start: start, after: res.Decision.At.Sub(start),
		state: b.sim.State(), mutations: b.sim.Mutations()} // before real traffic, which mutates
	if wd.reportPaths, err = warmup.WriteReport(r.reportDir, res.Report); err != nil {
		log.Error("warm: writing the report failed", "err", err)
	} else {
		log.Info("warm: report written", "html", wd.reportPaths[1], "json", wd.reportPaths[0])
	}
	r.say("warm: %s after %v: %s", res.Decision.Outcome, wd.after.Round(100*time.Millisecond), res.Decision.Reason)
	r.say("warm: %d sessions replayed, %d messages sent, %d mutating messages not sent; server B saw %d mutations",
		res.Stats.SessionsCompleted, res.Stats.MessagesSent, res.Stats.MessagesSkipped["mutating"], wd.mutations)
	return wd, nil
}
