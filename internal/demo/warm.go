package demo

import (
	"context"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/readiness"
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
	start := time.Now()
	res, err := WarmFromCache(ctx, b.url(), b.metricsURL(), cacheURL, &WarmOptions{
		Rate: 400, Concurrency: 8,
		// Hold and HoldTolerance are their defaults, set so that the
		// "warm: starting" line says them.
		Window: r.o.Window, Hold: r.o.Window, HoldTolerance: readiness.DefaultHoldTolerance,
		MinWarm: r.o.MinWarm, NoMinWarm: r.o.NoMinWarm, Deadline: r.o.Deadline, MaxJitter: r.o.MaxJitter,
		Progress: 3 * time.Second,
	}, log)
	if err != nil {
		return nil, err
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
