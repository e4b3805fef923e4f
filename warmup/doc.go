// Package warmup owns one warm-up run of a cold pod: it replays captured
// sessions against the pod (package replayer), watches the pod's warmth
// signals until they flatten (package readiness), stops the replay,
// optionally compares the warm pod with a pod of the version in service
// (package canary; see Canary), and releases the pod through a
// readiness.Gate, or holds it when the canary finds it worse.
//
// Besides wiring the two together it owns what belongs to the run as a
// whole: the share of its full rate the replay's back-off allows, which the
// watcher needs to judge a pod replayed slowly (loadMeter); the replay's
// orderly stop at release, so that no session in flight is dropped; the
// progress log line; the facts of the warm report; the ready server
// (/readyz, /healthz, /status, /report, /report.json, /metrics: Handler,
// served by ServeReady); and the dry run that shows what a warm-up would
// send and skip (DryRun).
//
// It does not parse flags, pick sessions (the caller passes a
// replayer.Source, usually a replayer.CacheSource asking for Select's
// request), listen on a port or decide an exit status: cmd/preheat does.
//
// Data enters as sessions from the Source and as the pod's answers and
// Prometheus scrapes (and the reference's answers, with a canary); it
// leaves as messages to the pod (and to the reference), a Result (the
// decision, the report, the replay's counters and the canary's verdict),
// the Gate's release (/readyz, a ready file, a webhook), log lines and
// metrics.
package warmup
