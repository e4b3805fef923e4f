package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"

	"github.com/preheatdev/preheat/internal/demo"
)

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run preheat end to end on one machine with embedded defaults",
		usage:   "[--clients 16] [--first-traffic 20s] [--dir DIR] [--report DIR]",
		help: `Runs the whole story on this machine, with nothing to install:

 1. Synthetic clients of a sync protocol talk to a simulated JVM sync server
    (server A) through the tap, which records their sessions, redacted, into a
    local directory log, until server A is warm.
 2. The replay cache reads that stream and serves whole sessions.
 3. A second simulated server (B) starts cold; 'preheat warm' replays cached
    sessions against it, watches its scheduler jitter and JIT compile time until
    they flatten, and releases it.
 4. A third (C) starts cold and is not warmed.
 5. The same real traffic then goes to each for --first-traffic: B right after its
    release, then C cold, then B again (its steady state). The demo prints
    their latency side by side and writes the warm report (JSON and an HTML
    page of the curves).

The simulated servers model a JVM honestly (interpreted, C1 and C2 tiers per code
path, a background compiler that burns CPU, safepoint pauses, a jitter task that
shares the worker pool) but warm faster than a real one (--scale).`,
		setup: withFlags(demoFlags, runDemo),
	}
}

// demoFlags declares the demo command's flags into a new demo.Options.
func demoFlags(fs *flag.FlagSet) *demo.Options {
	def := demo.DefaultOptions()
	o := &demo.Options{}
	fs.StringVar(&o.Dir, "dir", "", "directory for the demo's stream; default a new temporary directory, removed afterwards")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary stream directory for 'preheat inspect'")
	fs.StringVar(&o.Report, "report", "", "directory for the warm report; default a new temporary directory, kept")
	fs.IntVar(&o.Clients, "clients", def.Clients, "synthetic clients connected at once")
	fs.IntVar(&o.Queries, "queries", def.Queries, "queries per client session")
	fs.DurationVar(&o.Think, "think", def.Think, "each client's pause between a result and its next query")
	fs.Float64Var(&o.Scale, "scale", def.Scale, "the simulated servers' warm-up work as a fraction of the default model's")
	fs.DurationVar(&o.FirstTraffic, "first-traffic", def.FirstTraffic, "how long each server's first traffic is measured")
	fs.DurationVar(&o.Window, "window", def.Window, "the warm run's signal window")
	fs.DurationVar(&o.MinWarm, "min-warm", def.MinWarm, "the warm run's earliest release")
	fs.DurationVar(&o.CaptureMax, "capture-max", def.CaptureMax, "longest the capture phase waits for server A to warm")
	fs.DurationVar(&o.Deadline, "deadline", def.Deadline, "the warm run's deadline")
	fs.Float64Var(&o.MaxJitter, "max-jitter", 0, "the warm run's jitter limit in seconds (default warm's, 0.02)")
	return o
}

func runDemo(ctx context.Context, e *env, o *demo.Options, args []string) error {
	switch {
	case len(args) > 0:
		return usagef("unexpected arguments %q", args)
	case o.Clients <= 0 || o.Queries <= 0:
		return usagef("--clients and --queries must be positive")
	case o.Scale <= 0 || o.FirstTraffic <= 0:
		return usagef("--scale and --first-traffic must be positive")
	}
	// 0 on the command line means none; in demo.Options, the default.
	o.NoThink = o.Think <= 0
	o.NoMinWarm = o.MinWarm == 0
	// Every server, client and the warmer share this process's Go heap,
	// which is small (about 10 MB live) and so collected every two seconds,
	// each time with a stop of the world of a millisecond or more on two
	// busy cores that every simulated server feels alike. Collecting a
	// quarter as often keeps the demo's own collector out of the latency
	// it reports about the simulated JVMs. GOGC, when set, still decides.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	return demo.Run(ctx, e.stdout, o)
}
