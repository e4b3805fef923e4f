package warmup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/readiness"
)

// Canary configures a warm-up's canary phase: once the pod is warm, the
// same sessions (reads only) are replayed to it and to a pod of the
// version in service at the same moments, at a small capped rate, and
// their latency and errors compared (package canary) before the release.
// The phase never runs past the deadline (Readiness.MaxWarm).
type Canary struct {
	// Reference is the websocket URL of a pod of the version in service,
	// reached the way the router reaches it (its Service, say). Required.
	Reference string
	// Options configure the phase: its rate cap, duration, confidence.
	// Its Replay defaults to the warm-up's replay settings (the canary
	// sends reads only whatever they say), its Logger to the Warmup's and
	// its Metrics to a set of its own, served on Handler's /metrics.
	// Default canary's defaults.
	Options *canary.Options
	// ReleaseOnRegression releases a pod the canary finds worse, with an
	// error line in the log and the finding in the report and the
	// release's reason. Default false: hold: the pod stays unready until
	// the deadline, and the run ends unreleased, its outcome
	// readiness.OutcomeHeld, so that a rolling update stalls and an
	// operator looks. An inconclusive canary never holds.
	ReleaseOnRegression bool
}

// newCanary returns the phase w's options ask for, or nil.
func (w *Warmup) newCanary() (*canary.Canary, error) {
	cc := w.cfg.canary
	if cc == nil {
		return nil, nil
	}
	if cc.Reference == "" {
		return nil, errors.New("canary: no reference")
	}
	if w.cfg.keepWarming {
		return nil, errors.New("canary: keep warming and a canary do not go together: the canary measures the pod under its own traffic only")
	}
	var o canary.Options
	if cc.Options != nil {
		o = *cc.Options
	}
	if o.Replay == nil {
		ro := w.cfg.replay
		o.Replay = &ro
	}
	if o.Logger == nil {
		o.Logger = w.log
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	w.canaryMetrics = o.Metrics
	return canary.New(w.target, cc.Reference, &o)
}

// runCanary runs the canary phase after a decision d that releases a warm
// pod, and returns the decision it leads to: d released, with the
// canary's verdict in its reason; or, on a regression under the hold
// policy, once the deadline has passed, held. A run whose decision was
// not warm has no canary.
func (w *Warmup) runCanary(ctx context.Context, d readiness.Decision, deadline time.Time) (readiness.Decision, error) {
	if d.Outcome != readiness.OutcomeWarm || !d.Release {
		why := "the pod was not warm before the deadline (" + d.Outcome + ")"
		if d.Outcome == readiness.OutcomeCanceled || ctx.Err() != nil {
			why = "the run was canceled"
		}
		w.setCanaryResult(w.canary.Skip(why))
		return d, nil
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	res, err := w.canary.Run(cctx, w.source)
	cancel()
	w.setCanaryResult(res)
	if err != nil && ctx.Err() != nil {
		return d, ctx.Err()
	}
	switch {
	case res.Outcome == canary.Regression && w.cfg.canary.ReleaseOnRegression:
		w.log.Error("warm: RELEASING A POD THE CANARY FOUND WORSE than the version in service, as the regression policy says",
			"finding", res.Finding, "regressions", len(res.Regressions), "reference", res.Reference)
		d.Reason += "; released despite a canary regression: " + res.Finding
	case res.Outcome == canary.Regression:
		w.log.Error("warm: holding the pod: the canary found it worse than the version in service; it stays unready until the deadline",
			"finding", res.Finding, "regressions", len(res.Regressions), "reference", res.Reference, "deadline", deadline.Format(time.RFC3339))
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return d, ctx.Err()
		}
		return readiness.Decision{Warm: true, Outcome: readiness.OutcomeHeld, At: time.Now(),
			Reason: "warm, but held until the deadline: the canary found a regression: " + res.Finding}, nil
	case res.Outcome == canary.Inconclusive:
		w.log.Warn("warm: the canary was inconclusive; releasing", "why", res.Finding)
		d.Reason += "; canary inconclusive: " + res.Finding
	default:
		w.log.Info("warm: the canary found no regression", "finding", res.Finding)
		d.Reason += "; canary: " + res.Finding
	}
	d.At = time.Now()
	return d, nil
}

func (w *Warmup) setCanaryResult(res *canary.Result) {
	w.mu.Lock()
	w.canaryResult = res
	w.mu.Unlock()
}

// canaryFacts are the canary's lines of the warm report, and its marks.
func (w *Warmup) canaryFacts(started time.Time) ([]readiness.Fact, []readiness.Mark) {
	if w.canary == nil {
		return nil, nil
	}
	w.mu.Lock()
	res := w.canaryResult
	w.mu.Unlock()
	if res == nil {
		st := w.canary.Status()
		return []readiness.Fact{{Name: "Canary", Value: fmt.Sprintf("%s against %s", st.State, w.cfg.canary.Reference)}}, nil
	}
	facts := []readiness.Fact{{Name: "Canary outcome", Value: res.Outcome + ": " + res.Finding}}
	if len(res.Regressions) > 1 {
		facts = append(facts, readiness.Fact{Name: "Canary regressions", Value: strings.Join(res.Regressions, "; ")})
	}
	var marks []readiness.Mark
	if res.Compared > 0 {
		c, r := res.Targets[0], res.Targets[1]
		facts = append(facts,
			readiness.Fact{Name: "Canary", Value: fmt.Sprintf("%.0fs against %s, at most %.0f msg/s to each; %s", res.Compared, res.Reference, res.Rate, res.Method)},
			readiness.Fact{Name: "Canary p50 / p99, candidate and reference", Value: fmt.Sprintf("%.2f / %.2f ms and %.2f / %.2f ms over %d and %d responses", c.P50, c.P99, r.P50, r.P99, c.Responses, r.Responses)},
		)
		if !started.IsZero() {
			t := res.Started.Sub(started).Seconds()
			marks = append(marks, readiness.Mark{T: t, Label: "canary"}, readiness.Mark{T: t + res.Seconds, Label: "canary: " + res.Outcome})
		}
	}
	return facts, marks
}
