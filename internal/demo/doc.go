// Package demo runs preheat end to end on one machine, with nothing to
// install: synthetic clients talk to a simulated cold JVM sync server
// (package coldserver) through the tap, which captures their sessions into
// a local directory log; the replay cache serves them; a warm-up (package
// warmup) warms a second cold server and releases it; and the same real
// traffic then goes to it, to a third server left cold, and to it again in
// its steady state, for their latency side by side.
//
// It owns the demo's phases and its synthetic client fleet (Fleet), and
// the same run's phases as pieces, for the real JVM's end-to-end test
// (cmd/preheat) and benchmarks (bench/jvm): CaptureCache (a fleet through
// the tap, served by a replay cache), WarmFromCache (a warm-up, with
// JVMWarmOptions, the settings the JVM fixture is warmed with), Pace
// (clients on a clock, every request's send time and latency kept) and
// CompileSettled, the moment a report's compile rate settled, against
// which a release is weighed. It wires capture, replaycache and warmup
// through their constructors, as the commands do, stops the tap and the
// cache in the order their commands stop on SIGTERM, and warms the demo's
// server through WarmFromCache as the JVM's runs do; it parses no flags
// (cmd/preheat's demo command and bench/jvm do).
//
// Data enters as Options and the pieces' options; everything the demo
// starts listens on loopback and ends before Run returns, and a Captured
// cache at its Close. It leaves as the story printed to Run's writer, the
// warm report's files and, if kept, the captured stream; the pieces return
// their records (Requests, warmup.Result).
package demo
