// Command canary measures preheat's canary (package canary) between two
// simulated sync servers (internal/coldserver) on loopback, and makes the
// figures of docs/canary.md:
//
//	go run ./bench/canary falsepos [flags]     # equal servers, run after run: about 21 minutes at the defaults
//	go run ./bench/canary sensitivity [flags]  # one kind, or every kind, slower by factors: about 5 minutes a factor
//	go run ./bench/canary load [flags]         # the reference's own traffic alone, beside a canary elsewhere, beside one on it: about 10 minutes
//
// "go run ./bench/canary SUBCOMMAND -h" lists a subcommand's flags and
// their defaults, which are the canary's own (package canary's Default*).
// Both servers start warm, as pods that have taken traffic for a while, of
// the same version (the same seed), unless a regression is asked for; the
// sessions are corpus sessions, a tenth of their client messages
// mutations, which the canary does not send. Everything listens on
// loopback and ends before the command returns, or with it on an
// interrupt. The exit status is 1 if a run failed, 2 for a bad command
// line.
//
// It is a program and not a test because it is an experiment: it takes
// many minutes, its results are figures to read, not properties to
// assert, and it is configured by flags. canary's tests assert the same
// properties in seconds, at a regression large enough to be found on a
// busy machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "canary:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "canary:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type subcommand struct {
	name, summary string
	run           func(ctx context.Context, out io.Writer, args []string) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"falsepos", "canaries between two equal servers, run after run: how many find a regression", falsePositives},
		{"sensitivity", "canaries against a candidate with one kind, or every kind, slower by each factor: how many find it", sensitivity},
		{"load", "the reference's own traffic, its rate and p99, before and during a canary", load},
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var b strings.Builder
	b.WriteString("usage: go run ./bench/canary SUBCOMMAND [flags]   (SUBCOMMAND -h for its flags)\n\nSubcommands:\n")
	for _, c := range subcommands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	if len(args) == 0 {
		return usageError{b.String()}
	}
	if a := args[0]; a == "help" || a == "-h" || a == "--help" || a == "-help" {
		fmt.Fprint(out, b.String())
		return nil
	}
	for _, c := range subcommands() {
		if c.name == args[0] {
			return c.run(ctx, out, args[1:])
		}
	}
	return usageError{fmt.Sprintf("unknown subcommand %q\n\n%s", args[0], b.String())}
}

// common are the flags every subcommand shares: the canary's settings.
type common struct {
	rate     float64
	duration time.Duration
	interval time.Duration
	seed     uint64
}

func (c *common) register(fs *flag.FlagSet) {
	fs.Float64Var(&c.rate, "rate", canary.DefaultRate, "the canary's cap, messages a second to each server")
	fs.DurationVar(&c.duration, "duration", canary.DefaultDuration, "the canary's duration")
	fs.DurationVar(&c.interval, "interval", canary.DefaultInterval, "the canary's pairing interval")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the sessions and of the first run's bootstrap; run i uses seed+i")
}

func (c *common) options(i int) *canary.Options {
	return &canary.Options{Rate: c.rate, Duration: c.duration, Interval: c.interval, Seed: c.seed + uint64(i),
		Replay: &replayer.Options{Correlate: "id"}, Logger: slog.New(slog.DiscardHandler)}
}

func parse(fs *flag.FlagSet, out io.Writer, args []string) error {
	fs.SetOutput(out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	return nil
}

// server is one simulated pod on loopback.
type server struct {
	sim *coldserver.Server
	srv *httptest.Server
	url string
}

// serve starts a warm simulated pod of the version whose code paths seed
// 1 fixes, its kinds in slow that many times slower.
func serve(slow map[string]float64) *server {
	sim := coldserver.New(&coldserver.Options{Warm: true, Seed: 1, Slow: slow})
	srv := httptest.NewServer(sim)
	return &server{sim: sim, srv: srv, url: "ws://" + srv.Listener.Addr().String() + "/sync"}
}

func (s *server) close() {
	s.sim.Close()
	s.srv.Close()
}

// corpusSessions are the sessions every run replays.
func corpusSessions(seed uint64) [][]session.Event {
	g := corpus.New(seed)
	g.MutateRate = 0.1
	start := time.Now().Add(-time.Minute)
	var out [][]session.Event
	for i := range 300 {
		out = append(out, g.Session(start.Add(time.Duration(i)*time.Millisecond), 20))
	}
	return out
}

// once runs one canary of a candidate with the kinds in slow slower
// against a reference, each on fresh servers.
func once(ctx context.Context, c *common, i int, slow map[string]float64) (*canary.Result, error) {
	cand, ref := serve(slow), serve(nil)
	defer cand.close()
	defer ref.close()
	cn, err := canary.New(cand.url, ref.url, c.options(i))
	if err != nil {
		return nil, err
	}
	res, err := cn.Run(ctx, replayer.NewSliceSource(corpusSessions(c.seed+uint64(i))))
	if err != nil {
		return nil, err
	}
	return res, nil
}

// machine describes the machine and its load, for the figures.
func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s, load average %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), loadAverage())
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes.
func loadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return "unknown"
}

func falsePositives(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("falsepos", flag.ContinueOnError)
	var c common
	c.register(fs)
	runs := fs.Int("runs", 20, "canaries to run")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	fmt.Fprintf(out, "falsepos: %d canaries between equal servers, %v at %.0f msg/s, %v intervals; %s\n", *runs, c.duration, c.rate, c.interval, machine())
	counts := map[string]int{}
	for i := range *runs {
		res, err := once(ctx, &c, i, nil)
		if err != nil {
			return err
		}
		counts[res.Outcome]++
		fmt.Fprintf(out, "run %2d: %-13s %s (%s)\n", i+1, res.Outcome, res.Finding, rates(res))
	}
	fmt.Fprintf(out, "falsepos: %d regression, %d no_regression, %d inconclusive of %d runs; load average now %s\n",
		counts[canary.Regression], counts[canary.NoRegression], counts[canary.Inconclusive], *runs, loadAverage())
	return nil
}

func rates(res *canary.Result) string {
	if len(res.Targets) < 2 {
		return ""
	}
	c, r := res.Targets[0], res.Targets[1]
	return fmt.Sprintf("%d and %d responses, %.1f msg/s; p99 %.2f and %.2f ms", c.Responses, r.Responses, r.MessagesPerSecond, c.P99, r.P99)
}

func sensitivity(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("sensitivity", flag.ContinueOnError)
	var c common
	c.register(fs)
	runs := fs.Int("runs", 5, "canaries to run at each factor")
	factors := fs.String("factors", "1.5,2,3,5", "comma-separated factors by which the slow code paths' service time grows")
	kind := fs.String("kind", "tasks.list", "the kind whose code path is slower; \"all\": every kind's")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	var fx []float64
	for _, f := range strings.Split(*factors, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 1 {
			return usageError{fmt.Sprintf("--factors: %q is not a factor over 1", f)}
		}
		fx = append(fx, v)
	}
	kinds := []string{*kind}
	if *kind == "all" {
		kinds = corpus.Kinds
	} else if !slices.Contains(corpus.Kinds, *kind) {
		return usageError{fmt.Sprintf("--kind %q: one of %v, or all", *kind, corpus.Kinds)}
	}
	fmt.Fprintf(out, "sensitivity: %s slower, %d canaries a factor, %v at %.0f msg/s, %v intervals; %s\n", *kind, *runs, c.duration, c.rate, c.interval, machine())
	fmt.Fprintf(out, "%-7s %-14s %-30s %-30s %s\n", "factor", "found", "kind's p99 change (runs)", "overall p99 change (runs)", "findings")
	for _, f := range fx {
		slow := map[string]float64{}
		for _, k := range kinds {
			slow[k] = f
		}
		var found, kindP99, overallP99 int
		var kindChanges, overallChanges []string
		var sentences []string
		for i := range *runs {
			res, err := once(ctx, &c, i, slow)
			if err != nil {
				return err
			}
			if res.Outcome == canary.Regression {
				found++
				sentences = append(sentences, res.Finding)
			} else {
				sentences = append(sentences, res.Outcome)
			}
			for _, d := range res.Overall {
				if d.Metric == "p99" && d.Pairs > 0 {
					overallChanges = append(overallChanges, fmt.Sprintf("%+.0f%%", 100*d.Change))
					if d.Worse {
						overallP99++
					}
				}
			}
			for _, k := range res.Kinds {
				if k.Kind != *kind {
					continue
				}
				for _, d := range k.Metrics {
					if d.Metric == "p99" {
						kindChanges = append(kindChanges, fmt.Sprintf("%+.0f%%", 100*d.Change))
						if d.Worse {
							kindP99++
						}
					}
				}
			}
		}
		fmt.Fprintf(out, "%-7v %d/%d (p99 %d/%d kind, %d/%d overall)  %-30s %-30s %s\n", f, found, *runs, kindP99, *runs, overallP99, *runs,
			strings.Join(kindChanges, " "), strings.Join(overallChanges, " "), strings.Join(sentences, " | "))
	}
	fmt.Fprintf(out, "sensitivity: done; load average now %s\n", loadAverage())
	return nil
}
