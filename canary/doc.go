// Package canary compares a warmed pod with a pod of the version it
// replaces before the new one takes traffic: the same recorded sessions
// (reads only) are replayed to both at the same moments, at a small capped
// rate, and their latency, overall and per message kind, and their error
// rates are compared with package paired's interval-blocked bootstrap and
// minimum effect. The outcome is NoRegression, Regression (with the finding
// as a sentence: "candidate is 14% slower at p99 on tasks.search, 95% CI
// +9% to +19%") or Inconclusive (too few responses in the time allowed, or
// a reference that failed).
//
// It owns one canary phase: the schedule that starts each session on both
// targets at once, the cap on the messages each target receives, the
// recording of every response by interval and kind, the early end when the
// reference stops answering, and the verdict. It does not decide whether
// the candidate is warm, release it or hold it (package warmup does, by
// the outcome and its policy), nor parse flags (cmd/preheat does).
//
// Data enters as sessions from a replayer.Source and as the two targets'
// answers; it leaves as messages to both targets (never more than
// Options.Rate a second to each), a Result, a live Status, log lines and
// the metrics of Options.Metrics.
package canary
