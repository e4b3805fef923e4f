package warmup

import (
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replayer"
)

// DefaultMinResponses is the replay responses a warm-up requires before
// release unless told otherwise (Options.Readiness.MinResponses): about a
// second of replay at 600 msg/s, or a minute at the back-off floor of a
// 200 msg/s warm-up. On the JVM fixture the compile rate settles after
// some 25,000 messages; 500 only proves the warm-up reached the pod, whose
// signals are as flat idle as warm.
const DefaultMinResponses = 500

// DefaultStopGrace is Options.StopGrace's default.
const DefaultStopGrace = 2 * time.Second

// The replayer's defaults of the settings the Warmup reads back (the full
// rate for the load share, the concurrency for the report); replayer fills
// the same ones but does not export them.
const (
	replayDefaultRate        = 200
	replayDefaultConcurrency = 16
)

// Options configure a Warmup. A nil *Options is valid and means every
// default; a zero field means its default.
type Options struct {
	// Replay configures the replayer. Its OnResponse feeds the watcher
	// (one set here is called as well); its Logger and Metrics default to
	// the Warmup's Logger and a set of its own, served on Handler's
	// /metrics. Default replayer's defaults.
	Replay *replayer.Options
	// Readiness configures the watcher, with readiness's defaults except:
	// MinResponses 0 means DefaultMinResponses (negative: no minimum), as
	// an idle pod's signals are flat too; LoadShare, unless set, is the
	// share of Replay.Rate the back-off allows, whenever the replay is
	// rate-limited (Rate positive, Speed 0, NoBackoff unset); Logger and
	// Metrics default as Replay's.
	Readiness *readiness.Options
	// Release configures the gate: the ready file and the webhook. The
	// webhook gets X-Preheat-Target (the target URL) and X-Preheat-Host
	// (this host's name) unless WebhookHeader sets them, so that the
	// router learns which pod is ready. Logger and Metrics default as
	// Replay's. Default: /readyz only.
	Release *readiness.GateOptions
	// KeepWarming keeps the replay going after Run returns, until Close or
	// Run's context ends. Default false: the replay stops before the
	// release, as the pod is about to take real traffic.
	KeepWarming bool
	// StopGrace bounds how long the replay's stop waits for the sessions
	// in flight to close normally (replayer.Replayer.Stop) before it drops
	// them; the release waits for it. Default DefaultStopGrace, 2s.
	StopGrace time.Duration
	// Progress is how often Run logs a progress line. Default 0: never.
	Progress time.Duration
	// Canary, when set, compares the pod with a pod of the version in
	// service once it is warm, before the release, and holds a pod found
	// worse unless told otherwise (see Canary). KeepWarming must then be
	// false. Default none: a warm pod is released at once.
	Canary *Canary
	// Facts, when set, adds the caller's facts to the report (the
	// settings the run was given, say), after the replay's counts and
	// before the node's CPU pressure. It is called with the replay's
	// counters whenever a report is built. Default none.
	Facts func(replayer.Stats) []readiness.Fact
	// Metrics are further sets Handler's /metrics serves, after the
	// replay's (the source's, say). Default none.
	Metrics []*metrics.Set
	// Logger receives the run's own lines: progress, the replay's stop,
	// a failed notification. Default slog.Default().
	Logger *slog.Logger
}

// config is a Warmup's settings with every default filled.
type config struct {
	replay      replayer.Options
	readiness   readiness.Options
	release     readiness.GateOptions
	keepWarming bool
	canary      *Canary
	stopGrace   time.Duration
	progress    time.Duration
	facts       func(replayer.Stats) []readiness.Fact
	metrics     []*metrics.Set
	log         *slog.Logger
}

// withDefaults returns o's settings with every default filled on copies.
func (o *Options) withDefaults() config {
	var c Options
	if o != nil {
		c = *o
	}
	cfg := config{keepWarming: c.KeepWarming, canary: c.Canary, stopGrace: c.StopGrace, progress: c.Progress,
		facts: c.Facts, metrics: append([]*metrics.Set(nil), c.Metrics...), log: c.Logger}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	if cfg.stopGrace <= 0 {
		cfg.stopGrace = DefaultStopGrace
	}
	if c.Replay != nil {
		cfg.replay = *c.Replay
	}
	if cfg.replay.Rate == 0 {
		cfg.replay.Rate = replayDefaultRate
	}
	if cfg.replay.Concurrency <= 0 {
		cfg.replay.Concurrency = replayDefaultConcurrency
	}
	if cfg.replay.Logger == nil {
		cfg.replay.Logger = cfg.log
	}
	if cfg.replay.Metrics == nil {
		cfg.replay.Metrics = metrics.NewSet()
	}
	if c.Readiness != nil {
		cfg.readiness = *c.Readiness
	}
	switch {
	case cfg.readiness.MinResponses == 0:
		cfg.readiness.MinResponses = DefaultMinResponses
	case cfg.readiness.MinResponses < 0:
		cfg.readiness.MinResponses = 0
	}
	if cfg.readiness.Logger == nil {
		cfg.readiness.Logger = cfg.log
	}
	if cfg.readiness.Metrics == nil {
		cfg.readiness.Metrics = metrics.NewSet()
	}
	if c.Release != nil {
		cfg.release = *c.Release
	}
	if cfg.release.Logger == nil {
		cfg.release.Logger = cfg.log
	}
	if cfg.release.Metrics == nil {
		cfg.release.Metrics = metrics.NewSet()
	}
	return cfg
}
