// Command warmrss measures the memory and CPU of `preheat warm` on its own:
// the figures the warmer sidecar's resources in
// deploy/kubernetes/base/sync-server/deployment.yaml are set from
// (docs/benchmarks.md, "The warmer's memory and CPU"):
//
//	go run ./bench/warmrss [flags] [--vary KEY=VALUE,...]...
//
// Each run replays a corpus of --sessions synthetic sessions of package
// corpus, each a connect and --queries client messages (a tenth of them
// writes, which the warmer skips) with their recorded results and pushed
// updates, each server message made --pad bytes larger. The corpus is
// written once into a directory log, each session cut into batches of
// 64 KiB as a tap cuts them. For each run, warmrss starts `preheat cache
// --stream file://DIR` on loopback and waits until it holds every session;
// starts a cold simulated sync server (internal/coldserver, as `preheat
// demo` does) on loopback; and runs `preheat warm` against it with the
// manifest's warmer flags (--ready-addr, --header and --rewrite with a
// token from WARMUP_TOKEN, --report, --log-format json), the run's --rate
// and --concurrency, and --min-warm and --deadline both --duration, so
// that the replay lasts that long whether the server warms or not. With
// --canary (the default, as the manifest runs it) a warm twin of the
// server stands for the version in service: warm gets the manifest's
// --canary and --on-regression=hold, and --deadline 2m later, so that
// the server can turn warm after --min-warm and the canary phase (a
// minute) can run before the deadline. While warm runs (the replay, then
// the canary), warmrss reads its VmRSS from /proc/PID/status every --sample;
// once its report is written, its VmHWM, its CPU time from /proc/PID/stat
// and its replay counters from /status. Then it stops it with SIGTERM, as
// the kubelet does (with --after, that long later, and its VmRSS then);
// the run's peak is VmHWM, or a VmRSS sampled during the shutdown if
// larger.
//
// With no --vary there is one run, of the flags' settings (by default the
// manifest's: --rate 200, --concurrency 16). Each --vary adds a run that
// differs from that one in the keys it gives: sessions, queries, pad,
// concurrency, rate, duration. Each run's line is printed as it ends and a
// table of all of them at the end.
//
// It is a program and not a test because it is an experiment: one to
// three minutes a run, its results figures to read. Everything listens on loopback; every
// process it starts ends before it returns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "warmrss:", err)
		os.Exit(1)
	}
}

type config struct {
	base       spec
	vary       []string
	scale      float64
	sample     time.Duration
	after      time.Duration
	seed       uint64
	gomemlimit string
	canary     bool
	preheat    string
	work       string
}

type varyFlag struct{ v *[]string }

func (f varyFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strings.Join(*f.v, " ")
}

func (f varyFlag) Set(s string) error { *f.v = append(*f.v, s); return nil }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c config
	fs := flag.NewFlagSet("warmrss", flag.ContinueOnError)
	fs.IntVar(&c.base.Sessions, "sessions", 1000, "sessions in the corpus")
	fs.IntVar(&c.base.Queries, "queries", 20, "client messages of each session after its connect")
	fs.IntVar(&c.base.Pad, "pad", 0, "bytes of random letters added to each server message")
	fs.IntVar(&c.base.Concurrency, "concurrency", 16, "preheat warm --concurrency (the manifest leaves the default, 16)")
	fs.Float64Var(&c.base.Rate, "rate", 200, "preheat warm --rate (the manifest's)")
	fs.DurationVar(&c.base.Duration, "duration", 30*time.Second, "preheat warm --min-warm and --deadline: how long the replay lasts")
	fs.Var(varyFlag{&c.vary}, "vary", "add a run differing in KEY=VALUE,... (sessions, queries, pad, concurrency, rate, duration; repeatable)")
	fs.Float64Var(&c.scale, "scale", 0.25, "the cold server's warm-up work (coldserver.Options.Scale; preheat demo's default)")
	fs.DurationVar(&c.sample, "sample", 100*time.Millisecond, "how often VmRSS is read")
	fs.DurationVar(&c.after, "after", 0, "also read VmRSS this long after the report, the warmer idle beside a released server (default 0: not)")
	fs.Uint64Var(&c.seed, "seed", 1, "the corpus generator's seed")
	fs.BoolVar(&c.canary, "canary", true, "run the manifest's canary phase (--canary, --on-regression=hold) against a warm twin of the server; --deadline is then --duration + 2m")
	fs.StringVar(&c.gomemlimit, "gomemlimit", "", "GOMEMLIMIT of preheat warm (default unset: the demand without a soft limit)")
	fs.StringVar(&c.preheat, "preheat", "", "preheat binary (default: built from this module)")
	fs.StringVar(&c.work, "work", "", "work directory, kept (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.base.check(); err != nil {
		return err
	}
	specs := []spec{c.base}
	for _, v := range c.vary {
		s, err := c.base.vary(v)
		if err != nil {
			return err
		}
		specs = append(specs, s)
	}
	if c.work == "" {
		dir, err := os.MkdirTemp("", "warmrss-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	} else if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	if c.preheat == "" {
		c.preheat = filepath.Join(c.work, "preheat")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.preheat, "github.com/preheatdev/preheat/cmd/preheat")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build preheat: %w\n%s", err, out)
		}
	}
	fmt.Fprintf(stdout, "warmrss: %s, %d CPUs, %s; cold server scale %v; canary %v; GOMEMLIMIT %q\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOARCH, c.scale, c.canary, c.gomemlimit)

	type shape struct{ sessions, queries, pad int }
	corpora := map[shape]corpusStats{}
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var results []result
	for _, s := range specs {
		sh := shape{s.Sessions, s.Queries, s.Pad}
		dir := filepath.Join(c.work, fmt.Sprintf("corpus-%d-%d-%d", s.Sessions, s.Queries, s.Pad))
		cs, ok := corpora[sh]
		if !ok {
			var err error
			if cs, err = writeCorpus(ctx, dir, s.Sessions, s.Queries, s.Pad, c.seed, start); err != nil {
				return err
			}
			corpora[sh] = cs
			fmt.Fprintf(stdout, "corpus %d x %d, pad %d: %d events, %.1f MiB of messages (%.1f MiB from clients), %d records, %.1f MiB on disk\n",
				s.Sessions, s.Queries, s.Pad, cs.Events, mib(cs.PayloadBytes), mib(cs.ClientBytes), cs.Records, mib(cs.DiskBytes))
		}
		r, err := runOne(ctx, &c, s, dir, cs, c.work)
		if err != nil {
			return fmt.Errorf("run %+v: %w", s, err)
		}
		fmt.Fprintln(stdout, r)
		results = append(results, r)
	}
	printTable(stdout, results)
	return nil
}

// printTable prints the runs as a Markdown table.
func printTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "\n| sessions | queries a session | KiB a session | concurrency | rate | run, s | peak RSS, MiB | median RSS, MiB | RSS after, MiB | CPU, s | CPU, millicores | messages sent | sessions started | canary |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rs {
		idle := "-"
		if r.IdleRSS > 0 {
			idle = fmt.Sprintf("%.1f", mib(r.IdleRSS))
		}
		canary := "-"
		if r.Canary != "" {
			canary = fmt.Sprintf("%s, %d sessions", r.Canary, r.CanaryN)
		}
		fmt.Fprintf(w, "| %d | %d | %.0f | %d | %.0f | %.1f | %.1f | %.1f | %s | %.2f | %.0f | %d | %d | %s |\n",
			r.Spec.Sessions, r.Spec.Queries, float64(r.Corpus.PayloadBytes)/float64(r.Corpus.Sessions)/1024,
			r.Spec.Concurrency, r.Spec.Rate, r.Run.Seconds(), mib(r.PeakRSS), mib(r.MedianRSS), idle,
			r.CPU.Seconds(), millicores(r.CPU, r.Run), r.Stats.MessagesSent, r.Stats.SessionsStarted, canary)
	}
}
