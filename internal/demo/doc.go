// Package demo runs preheat end to end on one machine, with nothing to
// install: synthetic clients talk to a simulated cold JVM sync server
// (package coldserver) through the tap, which captures their sessions into
// a local directory log; the replay cache serves them; a warm-up (package
// warmup) warms a second cold server and releases it; and the same real
// traffic then goes to it, to a third server left cold, and to it again in
// its steady state, for their latency side by side.
//
// It owns the demo's phases and its synthetic client fleet (Fleet, which
// the JVM tests use too), and CompileSettled, the moment a report's compile
// rate settled, against which the demo and the JVM tests weigh a release.
// It wires capture, replaycache and warmup through their constructors, as
// the commands do; it parses no flags (cmd/preheat's demo command does).
//
// Data enters as Options; everything the demo starts listens on loopback
// and ends before Run returns. It leaves as the story printed to Run's
// writer, the warm report's files and, if kept, the captured stream.
package demo
