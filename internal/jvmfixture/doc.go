// Package jvmfixture builds and runs a real JVM websocket sync server for
// tests, so that warming can be shown on a real JIT compiler and not only on
// the simulator of package coldserver.
//
// The server's Java source lives in java/ and is embedded in this package.
// It speaks the synthetic sync protocol of package corpus over a pure-JDK
// websocket transport (RFC 6455 handshake and framing on a ServerSocket):
// a connect message first, then queries answered by results echoing their
// id, and mutating messages (type mutate, write or delete) answered by acks.
// A write is validated and stored in a bounded per-workspace store that no
// query reads; the workspace SandboxWorkspace is the warm-up's sandbox, whose
// writes take the same code path but are counted apart, and a write whose
// "dryRun" is true is validated, not stored. Each query is routed by its op and a variant
// taken from its params (filtered when it holds a filter; paged for the most
// popular ops when it asks for 75 or more rows) to one of 46 resolvers, each
// its own Java method with its own filtering, grouping, sorting or
// aggregation over an in-memory dataset built at start, so the JIT has that
// many distinct methods to profile and compile. Requests run on a fixed
// worker pool. GET /metrics on a second port serves Prometheus text:
// jvm_compilation_time_ms_total (from CompilationMXBean; absent when the JVM
// has no JIT, as under -Xint), jvm_scheduler_jitter_seconds (a classic
// histogram of how late a 10ms periodic task runs against each tick's due
// time), sync_request_duration_seconds, sync_mutations_total (writes stored
// outside the sandbox), sync_rehearsals_total by form ("sandbox" or
// "dry_run") and sync_resolver_calls_total by resolver.
//
// Build compiles the sources with javac into a cache directory keyed by a
// hash of the sources, so repeated test runs do not recompile. Launch starts
// one server process on free loopback ports and Close stops it, killing its
// process group; the JVM also exits on its own when its stdin closes, so it
// never outlives the test binary. Start does both for a test, skipping it
// when no JDK is installed, unless the environment variable CI is "true",
// where a missing JDK is a failure.
//
// What it does not own: load, capture or warming; the tests that use it
// drive it through preheat's own packages.
package jvmfixture
