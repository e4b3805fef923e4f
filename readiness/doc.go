// Package readiness decides when a warming target is warm and releases it
// to traffic.
//
// It owns three things. A [Watcher] scrapes the target's Prometheus text
// exposition for its warmth signals (scheduler jitter and JIT compile time)
// and takes the replay's response latency through [Watcher.ObserveLatency];
// for a target without a JIT (Options.NoJIT) it may scrape nothing at all
// and decide on replay latency alone.
// A [Detector], pure logic fed timestamped samples, judges each signal flat
// or not over a sliding window with robust trend statistics (Mann-Kendall,
// Theil-Sen) and absolute limits, and decides warm once every signal has
// stayed flat for Options.Hold, its limits widened by
// Options.HoldTolerance meanwhile so that a settled JIT's late compiles do
// not restart the hold (not before the replay has had Options.MinResponses
// answers: an idle target is flat too; and with Options.LoadShare, judging
// the compile rate at the replay's full rate while a back-off holds the
// replay down), or gives up at a deadline under a fail-open or fail-closed
// policy. A [Gate] turns that
// [Decision] into a release: /readyz flips from 503 to 200, and optionally a
// file is written and a webhook is called.
//
// It does not replay traffic (package replayer does, and feeds latencies in),
// read the stream, or parse flags. Data enters as HTTP scrapes and
// ObserveLatency calls, and leaves as a Decision, the /readyz answer, the
// release side effects and a [Report] of the curves behind the decision.
package readiness
