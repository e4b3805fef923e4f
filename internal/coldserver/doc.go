// Package coldserver simulates a JVM websocket sync server that starts cold,
// for tests and for "preheat demo". It speaks the synthetic sync protocol of
// package corpus: a connect message first, then queries answered by results,
// mutating messages acknowledged, pings answered by pongs.
//
// What it models: every query runs a code path (its op kind and a variant
// taken from its parameters: filter present, subscribed), and every request
// also runs a shared framework path (connect handling, JSON serialisation).
// Each path starts interpreted and tiers up to C1 and then C2 after enough
// invocations, through a bounded compile queue served by background
// compiler goroutines that really burn CPU and install their code at a short
// global safepoint. Requests hold a slot of a shared worker pool while they
// sleep for their path's service time, which is many times longer when
// interpreted. A periodic no-op task needs a slot of the same pool, so its
// measured lateness (scheduler jitter) is high while slow interpreted
// requests saturate the pool or compiled code is being installed, and low
// once the server is warm. Nothing decides "now I am warm" on a timer: warmth
// follows from the traffic the server has seen.
//
// What it does not model: garbage collection, deoptimisation, inlining across
// paths, class loading, code cache limits, or real work behind mutations
// (they are counted and acknowledged). Results are synthetic corpus objects.
//
// Data enters as websocket messages on ServeHTTP and leaves as replies and
// occasional pushed updates. The warmth signals leave through GET /metrics in
// the Prometheus text format (classic le-bucket histograms, as a JVM exports
// them). State reports the simulator's own ground truth, including WarmAt, for
// tests and the demo's report; a warmer must not read it.
package coldserver
