package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/internal/jvmfixture"
	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// figuresConfig is a figures command line.
type figuresConfig struct {
	runs        int
	warm        demo.WarmOptions // the warm-up's settings; rehearse rules come from variants
	variants    []string         // "none" or comma-separated --rehearse rules
	whatIf      bool
	whatIfFor   time.Duration
	mutations   bool
	compileLogs string
	reports     string
	ownSessions bool
	nProcess    bool
	nCPUs       string
	capture     time.Duration
	nWarm       time.Duration
	before      time.Duration
	traffic     time.Duration
}

// figures measures the figures of docs/benchmarks-jvm.md over several
// runs: first traffic after release against the steady state, warmed and
// not; release time against the time the compile rate settled; the cost
// of a warm-up to a warm neighbour JVM; and, on a long warm-up that
// records every signal, when other readiness settings would have released
// (--whatif). It takes about four minutes a run.
//
// Once: a JVM, the neighbour, takes --capture of synthetic clients through
// the tap, and a replay cache serves the sessions captured; the neighbour
// takes --neighbour-warm more traffic, so it is warm. Then each run, for
// each --rehearse variant: a fresh JVM; the neighbour serves steady
// traffic (2 clients, 200 requests/s) from --before the warm-up to its
// end; the warm-up (demo.JVMWarmOptions, with the flags' changes); real
// traffic (demo.Pace's: 4 clients, 600 requests/s) for --traffic to the
// released JVM, then to a cold one, then to the neighbour (the steady
// state); and with --whatif a further fresh JVM replayed against for
// --whatif-for whatever its signals say.
func figures(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("figures", flag.ContinueOnError)
	def := demo.JVMWarmOptions()
	c := figuresConfig{warm: def}
	fs.IntVar(&c.runs, "runs", 3, "runs, each measuring every --rehearse variant (was PREHEAT_JVM_RUNS)")
	fs.Float64Var(&c.warm.Rate, "rate", def.Rate, "the warm-up's --rate, messages/s: lower it to weigh the neighbour's cost against the warm-up's length (was PREHEAT_JVM_WARM_RATE)")
	fs.Float64Var(&c.warm.StartRate, "start-rate", 0, "the warm-up's --start-rate, messages/s; 0: none, a gentler warm-up's ramp (was PREHEAT_JVM_START_RATE)")
	fs.Float64Var(&c.warm.MaxCPUPressure, "max-cpu-pressure", 0, "the warm-up's --max-cpu-pressure; 0: none, a gentler warm-up's back-off (was PREHEAT_JVM_MAX_PRESSURE)")
	fs.DurationVar(&c.warm.Deadline, "deadline", def.Deadline, "the warm-up's --deadline (was PREHEAT_JVM_DEADLINE)")
	fs.Float64Var(&c.warm.HoldTolerance, "hold-tolerance", def.HoldTolerance, "the warm-up's --hold-tolerance, at least 1; 1 is session 9's strict hold (was PREHEAT_JVM_HOLD_TOLERANCE)")
	variants := fs.String("rehearse", "none", `warm-up variants each run measures in turn, separated by semicolons: "none" (writes skipped) or comma-separated --rehearse rules, such as "none;params.workspace=999;dryRun=true" (was PREHEAT_JVM_REHEARSE)`)
	fs.BoolVar(&c.whatIf, "whatif", true, "after each run, a long warm-up recording every signal, replayed through other readiness settings; false skips it (was PREHEAT_JVM_NO_WHATIF=1 for false)")
	fs.BoolVar(&c.mutations, "mutations", true, "every tenth request of real traffic and of the neighbour's is a mutation; false: queries only, so that real traffic takes no path the warm-up could not (was PREHEAT_JVM_NO_MUTATIONS=1 for false)")
	fs.StringVar(&c.compileLogs, "compile-logs", "", "a diagnostic: each warmed JVM writes HotSpot's compilation and GC logs to this directory, with the first 200 requests of its real traffic and of the steady run, and the story shows what the JVM did around the slow ones; the figures are then not comparable with runs without it (was PREHEAT_JVM_COMPILE_LOGS)")
	fs.StringVar(&c.reports, "reports", "", "write every warm-up's report (JSON and HTML) under this directory, for whatif (was PREHEAT_JVM_REPORTS)")
	fs.BoolVar(&c.ownSessions, "own-sessions", false, "start every JVM, and the neighbour's client process, in a session of its own: one scheduling group each under autogroup (was PREHEAT_JVM_OWN_SESSIONS)")
	fs.BoolVar(&c.nProcess, "neighbour-process", false, "time the neighbour from a process of its own (the neighbour subcommand), not from this one, which runs the warm-up (was PREHEAT_JVM_NEIGHBOUR_PROCESS)")
	fs.StringVar(&c.nCPUs, "neighbour-cpus", "", "pin the neighbour JVM and its client process to these processors (taskset's list form, Linux; needs --neighbour-process), for a run with this command pinned elsewhere (taskset -c 1 ...); a pinned JVM sizes itself by them, so this changes every figure (was PREHEAT_JVM_NEIGHBOUR_CPUS)")
	fs.DurationVar(&c.capture, "capture", 30*time.Second, "how long the neighbour's clients are captured through the tap")
	fs.DurationVar(&c.nWarm, "neighbour-warm", time.Minute, "more traffic to the neighbour after the capture, so that it is warm")
	fs.DurationVar(&c.before, "before", 20*time.Second, "how long the neighbour's steady traffic runs before each warm-up: its \"before\" p99")
	fs.DurationVar(&c.traffic, "traffic", 15*time.Second, "how long each JVM's real traffic is timed")
	fs.DurationVar(&c.whatIfFor, "whatif-for", 2*time.Minute, "how long the --whatif warm-up replays, whatever its signals say")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	c.variants = strings.Split(*variants, ";")
	switch {
	case c.runs < 1:
		return usagef("figures: --runs %d: at least 1", c.runs)
	case c.warm.Rate <= 0 || c.warm.StartRate < 0 || c.warm.MaxCPUPressure < 0:
		return usagef("figures: --rate %v must be positive, --start-rate %v and --max-cpu-pressure %v not negative", c.warm.Rate, c.warm.StartRate, c.warm.MaxCPUPressure)
	case c.warm.Deadline <= 0:
		return usagef("figures: --deadline %v must be positive", c.warm.Deadline)
	case c.warm.HoldTolerance < 1:
		return usagef("figures: --hold-tolerance %v: at least 1", c.warm.HoldTolerance)
	case c.nCPUs != "" && !c.nProcess:
		return usagef("figures: --neighbour-cpus needs --neighbour-process: the neighbour's clients must be pinned with it")
	case c.capture <= 0 || c.nWarm < 0 || c.before <= 0 || c.traffic <= 0 || c.whatIfFor <= 0:
		return usagef("figures: --capture, --before, --traffic and --whatif-for must be positive, --neighbour-warm not negative")
	}
	// The warm-up checks the rules too, but only once a run is minutes in.
	for _, v := range c.variants {
		if v == "none" {
			continue
		}
		for _, rule := range strings.Split(v, ",") {
			if _, err := replayer.ParseRehearseRule(rule); err != nil {
				return usagef("figures: --rehearse: %v", err)
			}
		}
	}
	return c.run(ctx, newStory(out))
}

// figureRow is one run's figures.
type figureRow struct {
	variant                  string // "none" or --rehearse rules
	warm200, cold200, steady time.Duration
	steady200                time.Duration // the noise floor of a first-200 p99
	warm15, cold15           time.Duration // p99 of all the first traffic
	warmJIT, coldJIT         float64       // JIT compile ms under the first traffic
	sent, rehearsed          uint64        // messages the warm-up replayed, and of them rehearsals
	release, settled         float64
	outcome                  string
	nBefore, nDuring         time.Duration
	nBeforeN, nDuringN       int
	whatIf                   []string
}

// figuresRun is what the runs of one figures command share.
type figuresRun struct {
	figuresConfig
	st        *story
	tmp       string
	jvmOpts   jvmfixture.Options
	neighbour *jvmfixture.Server
	cacheURL  string
}

func (c figuresConfig) run(ctx context.Context, st *story) error {
	if c.compileLogs != "" {
		if err := os.MkdirAll(c.compileLogs, 0o755); err != nil {
			return err
		}
		st.say("compilation logs on: these runs' figures are not comparable with runs without them")
	}
	st.say("JVMs in sessions of their own: %v (autogroup: %s); neighbour timed from a process of its own: %v; neighbour CPUs: %q",
		c.ownSessions, autogroup(), c.nProcess, c.nCPUs)
	tmp, err := os.MkdirTemp("", "preheat-bench-jvm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f := &figuresRun{figuresConfig: c, st: st, tmp: tmp, jvmOpts: jvmfixture.Options{OwnSession: c.ownSessions}}
	nOpts := f.jvmOpts
	nOpts.CPUs = c.nCPUs
	if f.neighbour, err = launch(ctx, &nOpts); err != nil {
		return err
	}
	defer f.neighbour.Close()
	captured, err := demo.CaptureCache(ctx, "ws://"+f.neighbour.Addr(), &demo.CaptureOptions{For: c.capture})
	if err != nil {
		return err
	}
	defer captured.Close()
	f.cacheURL = captured.URL
	st.say("capture: %d sessions through the tap in %v (client p50 %v, p99 %v); the cache holds %d",
		captured.Sessions, c.capture, captured.Latency.Quantile(50), captured.Latency.Quantile(99), captured.Status().Sessions)
	// More traffic makes the neighbour warm before the first "before".
	st.drive(ctx, f.neighbour.URL(), c.nWarm, f.pace(4, 600), 76)

	var rows []figureRow
	for n := range c.runs * len(c.variants) {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := f.one(ctx, n/len(c.variants), n%len(c.variants))
		if err != nil {
			return fmt.Errorf("run %d (%s): %w", n/len(c.variants)+1, c.variants[n%len(c.variants)], err)
		}
		rows = append(rows, r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "| run | rehearse | warmed first-200 p99 | unwarmed first-200 p99 | steady p99 | steady first-200 p99 | warmed / steady | unwarmed / steady | first %v p99 warmed / unwarmed | JIT ms in first %v, warmed / unwarmed | outcome | release | messages replayed | compile settled | release / settled | neighbour p99 before | during | during / before |\n", c.traffic, c.traffic)
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %.2fx | %.1fx | %s / %s | %.0f / %.0f | %s | %.1fs | %d | %.1fs | %.2f | %s | %s | %.2fx |\n", i/len(c.variants)+1, r.variant,
			demo.FormatLatency(r.warm200), demo.FormatLatency(r.cold200), demo.FormatLatency(r.steady), demo.FormatLatency(r.steady200), ratio(r.warm200, r.steady), ratio(r.cold200, r.steady),
			demo.FormatLatency(r.warm15), demo.FormatLatency(r.cold15), r.warmJIT, r.coldJIT, r.outcome, r.release, r.sent, r.settled, r.release/r.settled, demo.FormatLatency(r.nBefore), demo.FormatLatency(r.nDuring), ratio(r.nDuring, r.nBefore))
	}
	st.say("figures:\n%s", b.String())
	if c.whatIf {
		for i, r := range rows {
			st.say("run %d what-if: %s", i+1, strings.Join(r.whatIf, "; "))
		}
	}
	return st.err()
}

// pace returns demo.Pace's options for clients at rate requests/s in all,
// with or without mutations as --mutations says.
func (f *figuresRun) pace(clients int, rate float64) *demo.PaceOptions {
	return &demo.PaceOptions{Clients: clients, Rate: rate, QueriesOnly: !f.mutations}
}

// one measures run run (from 0) of variant v.
func (f *figuresRun) one(ctx context.Context, run, v int) (figureRow, error) {
	st := f.st
	variant := f.variants[v]
	r := figureRow{variant: variant}
	vf := f.warm
	if variant != "none" {
		vf.Rehearse = strings.Split(variant, ",")
	}
	freshOpts := f.jvmOpts
	logs := filepath.Join(f.compileLogs, fmt.Sprintf("run%d-%d", run+1, v))
	if f.compileLogs != "" {
		freshOpts.JVMFlags = []string{"-Xms256m", "-Xmx512m",
			"-XX:+UnlockDiagnosticVMOptions", "-XX:+LogCompilation",
			"-XX:LogFile=" + logs + ".xml", "-Xlog:gc:file=" + logs + "-gc.log"}
	}
	fresh, err := launch(ctx, &freshOpts)
	if err != nil {
		return r, err
	}
	defer fresh.Close()

	// The neighbour serves steady traffic (two clients, 200 requests/s)
	// from --before the warm-up until its end; its client-measured p99
	// before and during the warm-up are compared.
	seed := uint64(77 + run)
	var stopNeighbour func() (*demo.Requests, error)
	if f.nProcess {
		nc, err := startNeighbour(f.tmp, f.neighbour.URL(), 2, 200, seed, f.mutations, f.ownSessions, f.nCPUs)
		if err != nil {
			return r, err
		}
		defer nc.kill() // a run that fails in the warm-up
		if err := sleep(ctx, f.before); err != nil {
			return r, err
		}
		if err := nc.check(); err != nil {
			return r, err
		}
		stopNeighbour = nc.stop
	} else {
		nctx, cancel := context.WithCancel(ctx)
		nDone := make(chan *demo.Requests, 1)
		go func() { nDone <- demo.Pace(nctx, f.neighbour.URL(), f.pace(2, 200), seed) }()
		stopNeighbour = sync.OnceValues(func() (*demo.Requests, error) { cancel(); return <-nDone, nil })
		defer stopNeighbour() // a run that fails in the warm-up
		if err := sleep(ctx, f.before); err != nil {
			return r, err
		}
	}
	warmStart := time.Now()
	res, err := f.warmJVM(ctx, fresh, vf, fmt.Sprintf("figures-run%d-%d", run+1, v))
	if err != nil {
		return r, err
	}
	nl, err := stopNeighbour()
	if err != nil {
		return r, err
	}
	if n := nl.Errors(); n > 0 {
		st.errorf("run %d: %d of the neighbour's sessions failed", run+1, n)
	}
	before, during := nl.Between(warmStart.Add(-f.before), warmStart), nl.Between(warmStart, res.Decision.At)
	r.nBefore, r.nBeforeN = demo.NearestRank(before, 0.99), len(before)
	r.nDuring, r.nDuringN = demo.NearestRank(during, 0.99), len(during)
	r.outcome = res.Decision.Outcome
	r.sent, r.rehearsed = res.Stats.MessagesSent, res.Stats.MessagesRehearsed
	stored, err := fresh.Metric(ctx, "sync_mutations_total")
	if err != nil {
		return r, err
	}
	if stored != 0 {
		return r, fmt.Errorf("the warm-up stored %v writes outside the sandbox", stored)
	}
	r.release = res.Decision.At.Sub(res.Report.Started).Seconds()
	r.settled, _ = demo.CompileSettled(res.Report, 20, 10*time.Second)
	st.say("run %d (%s): %s after %.1fs, compile settled at %.1fs; %d messages, %d rehearsed; neighbour p99 before %v (%d) during %v (%d)",
		run+1, variant, r.outcome, r.release, r.settled, r.sent, r.rehearsed, r.nBefore, r.nBeforeN, r.nDuring, r.nDuringN)

	var wl *demo.Requests
	if r.warmJIT, wl, err = f.timed(ctx, fresh, uint64(20+run)); err != nil {
		return r, err
	}
	r.warm200, r.warm15 = wl.P99(0, 200), wl.P99(0, math.MaxInt)
	fresh.Close() // the JVM writes out its compilation log as it exits
	if f.compileLogs != "" {
		first := wl.InOrder()
		first = first[:min(200, len(first))]
		if err := dumpRequests(logs+"-first200.txt", first); err != nil {
			return r, err
		}
		// A diagnostic: its failure is shown, and the run goes on.
		if tl, err := jvmTimeline(logs+".xml", logs+"-gc.log", first); err != nil {
			st.say("run %d (%s): no timeline: %v", run+1, variant, err)
		} else {
			st.say("run %d (%s): the warmed JVM's %s", run+1, variant, tl)
		}
	}
	cold, err := launch(ctx, &f.jvmOpts)
	if err != nil {
		return r, err
	}
	defer cold.Close()
	var cl *demo.Requests
	if r.coldJIT, cl, err = f.timed(ctx, cold, uint64(20+run)); err != nil {
		return r, err
	}
	r.cold200, r.cold15 = cl.P99(0, 200), cl.P99(0, math.MaxInt)
	cold.Close()
	sl := st.drive(ctx, f.neighbour.URL(), f.traffic, f.pace(4, 600), uint64(20+run))
	r.steady, r.steady200 = sl.P99(0, math.MaxInt), sl.P99(0, 200)
	if f.compileLogs != "" {
		first := sl.InOrder()
		if err := dumpRequests(logs+"-steady200.txt", first[:min(200, len(first))]); err != nil {
			return r, err
		}
	}
	st.say("run %d (%s): JIT compile under %v of first traffic %.0f ms warmed, %.0f ms unwarmed", run+1, variant, f.traffic, r.warmJIT, r.coldJIT)
	st.say("run %d (%s): first 200 p99 warmed %v unwarmed %v; steady %v (its own first 200: %v); first %v p99 warmed %v unwarmed %v",
		run+1, variant, r.warm200, r.cold200, r.steady, r.steady200, f.traffic, r.warm15, r.cold15)
	if !f.whatIf {
		return r, ctx.Err()
	}

	// A long warm-up that records every signal: replay for --whatif-for
	// whatever the signals say, then ask what each readiness setting would
	// have decided on the same series.
	long, err := launch(ctx, &f.jvmOpts)
	if err != nil {
		return r, err
	}
	defer long.Close()
	lw := vf
	lw.MinWarm, lw.Deadline = f.whatIfFor, f.whatIfFor+time.Second
	lres, err := f.warmJVM(ctx, long, lw, fmt.Sprintf("figures-run%d-%d-whatif", run+1, v))
	if err != nil {
		return r, err
	}
	long.Close()
	settled, _ := demo.CompileSettled(lres.Report, 20, 10*time.Second)
	r.whatIf = append(r.whatIf, fmt.Sprintf("compile settled %.0fs", settled))
	for _, c := range jvmSettings {
		at, outcome := whatIf(lres.Report, c.opts, c.rateWindow, c.compileOnly)
		r.whatIf = append(r.whatIf, fmt.Sprintf("%s: %s %.0fs", c.name, outcome, at))
	}
	st.say("run %d: signals: %s", run+1, summarizeSignals(lres.Report))
	st.say("run %d: what if: %s", run+1, strings.Join(r.whatIf, "; "))
	return r, ctx.Err()
}

// timed sends --traffic of real traffic to s and returns the JIT compile
// time it cost s, in ms, and the requests.
func (f *figuresRun) timed(ctx context.Context, s *jvmfixture.Server, seed uint64) (float64, *demo.Requests, error) {
	jit0, err := s.Metric(ctx, readiness.DefaultCompileMetric)
	if err != nil {
		return 0, nil, err
	}
	l := f.st.drive(ctx, s.URL(), f.traffic, f.pace(4, 600), seed)
	jit1, err := s.Metric(ctx, readiness.DefaultCompileMetric)
	if err != nil {
		return 0, nil, err
	}
	return jit1 - jit0, l, nil
}

// warmJVM warms s from the capture until it is released, and writes its
// report under --reports, named name, if that is set.
func (f *figuresRun) warmJVM(ctx context.Context, s *jvmfixture.Server, o demo.WarmOptions, name string) (warmup.Result, error) {
	res, err := demo.WarmFromCache(ctx, s.URL(), s.MetricsURL(), f.cacheURL, &o, f.st.log)
	if err != nil {
		return res, err
	}
	if f.reports != "" {
		if _, err := warmup.WriteReport(filepath.Join(f.reports, time.Now().Format("150405.000")+"-"+name), res.Report); err != nil {
			f.st.errorf("warm report: %v", err)
		}
	}
	return res, nil
}

// autogroup reports whether Linux groups processes by session for
// scheduling (kernel.sched_autogroup_enabled), on which the JVMs' sessions
// bear, with this process's autogroup and cpu cgroup: autogroup applies
// only to processes in the root cpu cgroup.
func autogroup() string {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(b))
	}
	cg := "unknown"
	for line := range strings.SplitSeq(read("/proc/self/cgroup"), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "cpu") {
			cg = f[2]
		}
	}
	return fmt.Sprintf("sched_autogroup_enabled %s, this process %s, cpu cgroup %s",
		read("/proc/sys/kernel/sched_autogroup_enabled"), read("/proc/self/autogroup"), cg)
}
