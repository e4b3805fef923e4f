package canary

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replayer"
)

// Defaults of Options.
const (
	// DefaultRate is the messages a second the canary sends each target
	// at most: a few percent of what a sync server taking its share of
	// live traffic serves, so that the reference, which keeps serving
	// users, barely notices; and over DefaultDuration some 3,000
	// responses a target, enough to compare the p99 of all responses
	// and of a kind that is a sixth of the traffic (500 each).
	DefaultRate = 50
	// DefaultDuration bounds the canary phase: it fits in the default
	// ten-minute warm-up deadline after a warm-up of several minutes.
	DefaultDuration = time.Minute
	// DefaultConcurrency bounds the sessions in flight on each target: as
	// many as a warm-up's, enough for DefaultRate with responses as slow
	// as 300 ms.
	DefaultConcurrency = 16
	// DefaultConfidence is the family-wise level of a canary's comparison,
	// higher than a load test's 0.95: a false finding holds a rollout, so
	// two equal versions must show none in far more than 20 phases.
	DefaultConfidence = 0.99
	// DefaultInterval is the length of the intervals compared as pairs:
	// 120 over DefaultDuration, resampled in blocks of 5 (2.5 s, longer
	// than a replayed session), so that the bootstrap's blocks are many
	// (24) and its intervals widened little for their number.
	DefaultInterval = 500 * time.Millisecond
	// DefaultMinResponses is the responses each target must give for a
	// verdict other than Inconclusive: enough to compare their p99.
	DefaultMinResponses = 500
	// DefaultMinKindResponses is the responses of a kind each target must
	// give for the kind to be compared apart.
	DefaultMinKindResponses = 100
	// DefaultMaxReferenceErrors is the share of the reference's
	// operations (sessions and messages) that may fail before the
	// outcome is Inconclusive.
	DefaultMaxReferenceErrors = 0.02
	// DefaultAbortAfter is how long a reference may answer nothing, while
	// it is sent sessions, before the canary ends early.
	DefaultAbortAfter = 10 * time.Second
	// DefaultStopGrace bounds how long the sessions in flight at the end
	// may take to close normally before they are dropped.
	DefaultStopGrace = 2 * time.Second
)

// Options configure a Canary. A nil *Options is valid and means every
// default; a zero field means its default.
type Options struct {
	// Rate caps the client messages sent to each target, per second:
	// sessions are started so that their client messages would arrive at
	// Rate, and each target's replayer holds to it (no back-off). Default
	// DefaultRate, 50.
	Rate float64
	// Duration is how long sessions are started for; those in flight
	// then stop. A deadline on Run's context ends the phase sooner, early
	// enough to stop and judge by it. Default DefaultDuration, 1m.
	Duration time.Duration
	// Concurrency bounds the sessions in flight on each target; a session
	// due while a target is at it waits. Default DefaultConcurrency, 16.
	Concurrency int
	// Interval is the length of the intervals in which both targets saw
	// the same arrivals, the unit the bootstrap resamples (in blocks of
	// about the cube root of their number). Default DefaultInterval,
	// 500ms.
	Interval time.Duration
	// Confidence is the family-wise level of the comparison, over every
	// metric and kind compared (Bonferroni). Default DefaultConfidence,
	// 0.99.
	Confidence float64
	// MinEffect is the smallest relative change that is a finding (the
	// load test's --min-effect). Default 0.05.
	MinEffect float64
	// Resamples is the number of bootstrap resamples of each interval.
	// Default 2,000.
	Resamples int
	// Seed seeds the bootstrap. Default 1.
	Seed uint64
	// MinResponses is the responses each target must give for a verdict
	// other than Inconclusive. Default DefaultMinResponses, 500.
	MinResponses int
	// MinKindResponses is the responses of one kind each target must give
	// for that kind to be compared apart. Default
	// DefaultMinKindResponses, 100.
	MinKindResponses int
	// MaxKinds bounds the message kinds told apart; later kinds are
	// recorded together as "(other)". Default 50.
	MaxKinds int
	// MaxReferenceErrors is the share of the reference's operations that
	// may fail (sessions that fail, responses that time out) before the
	// outcome is Inconclusive. Default DefaultMaxReferenceErrors, 0.02.
	MaxReferenceErrors float64
	// AbortAfter ends the phase early, Inconclusive, when the reference
	// has answered nothing for this long while it was sent sessions.
	// Default DefaultAbortAfter, 10s.
	AbortAfter time.Duration
	// StopGrace bounds how long the sessions in flight at the end may
	// take to close normally before they are dropped. Default
	// DefaultStopGrace, 2s.
	StopGrace time.Duration
	// MaxResponses bounds the responses recorded per target; later ones
	// are counted, not compared. Default 200,000.
	MaxResponses int
	// Replay is the replayer's settings for both targets: headers,
	// rewrite rules, safety rules, correlation, timeouts, pace (Speed).
	// The canary sends reads only, whatever it says: SendMutating,
	// SendUnknown and Rehearse are cleared. It sets Rate, Burst,
	// NoBackoff, Concurrency, OnResponse, OnSessionEnd, Logger and
	// Metrics; DryRun must not be set. Default the replayer's defaults.
	Replay *replayer.Options
	// Logger receives the phase's lines. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the preheat_canary_* metrics. Default a new set.
	Metrics *metrics.Set
}

// withDefaults returns o's settings with every default filled, on a copy.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Confidence <= 0 || c.Confidence >= 1 {
		c.Confidence = DefaultConfidence
	}
	if c.MinEffect <= 0 {
		c.MinEffect = 0.05
	}
	if c.Resamples <= 0 {
		c.Resamples = 2000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.MinResponses <= 0 {
		c.MinResponses = DefaultMinResponses
	}
	if c.MinKindResponses <= 0 {
		c.MinKindResponses = DefaultMinKindResponses
	}
	if c.MaxKinds <= 0 {
		c.MaxKinds = 50
	}
	if c.MaxReferenceErrors <= 0 {
		c.MaxReferenceErrors = DefaultMaxReferenceErrors
	}
	if c.AbortAfter <= 0 {
		c.AbortAfter = DefaultAbortAfter
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.MaxResponses <= 0 {
		c.MaxResponses = 200000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	switch {
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return c, fmt.Errorf("canary rate %v: must be a positive number of messages per second", c.Rate)
	case c.Duration < 0:
		return c, fmt.Errorf("canary duration %v: must not be negative", c.Duration)
	case c.Replay != nil && c.Replay.DryRun != nil:
		return c, errors.New("canary replay options: DryRun is not for a canary")
	}
	return c, nil
}

// replayOptions returns the replayer's settings for one target.
func (c *Options) replayOptions(onResponse func(replayer.Response), onEnd func(replayer.SessionResult), log *slog.Logger) *replayer.Options {
	var ro replayer.Options
	if c.Replay != nil {
		ro = *c.Replay
	}
	ro.SendMutating, ro.SendUnknown, ro.Rehearse = false, false, nil
	ro.Rate, ro.Burst, ro.NoBackoff = c.Rate, max(1, int(c.Rate/10)), true
	ro.MaxCPUPressure = 0
	ro.Concurrency = c.Concurrency
	ro.OnResponse, ro.OnSessionEnd = onResponse, onEnd
	ro.Logger = log
	ro.Metrics = metrics.NewSet() // the two targets' would clash; the canary exports its own
	return &ro
}
