// Package loadtest drives a captured corpus of websocket sessions against a
// target at a chosen multiple of the recorded load, measures what the target
// does under it, and judges the run.
//
// It owns the arrival schedule (an open model by default: sessions start at
// the recorded arrival rate times a multiplier, or at a fixed rate, whether
// or not earlier ones have finished, so the measured latency is free of
// coordinated omission; a closed model of N concurrent sessions on request;
// linear ramps up and down), the measurements (HDR latency histograms
// overall, per message kind and per interval; errors by class; throughput),
// thresholds that fail a run, the paired comparison of two targets driven
// with the same sessions, and the report (JSON and a self-contained HTML
// page).
//
// It does not replay messages itself: each session is played whole by a
// replayer.Replayer (handshake, pacing within the session, rewrite rules and
// the safety filter). Sessions enter as a Corpus, read from a corpus file
// (ReadCorpus), a replay cache (LoadCache) or a stream (LoadStream); what
// leaves is traffic to the targets, a Result (WriteSummary for a reader,
// WriteReport for files), live Progress (ShowProgress) and metrics
// (ServeMetrics). Flags, and knowing whether stdout is a terminal, belong
// to cmd/preheat.
package loadtest
