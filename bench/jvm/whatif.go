package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/readiness"
)

// whatIfReports replays the signals of saved warm reports (the
// warm-report.json files under --reports, as figures --reports writes
// them) through each of jvmSettings, and prints when each would have
// released.
func whatIfReports(_ context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("whatif", flag.ContinueOnError)
	dir := fs.String("reports", "", "the directory figures --reports wrote: its */warm-report.json are replayed; required")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("whatif: --reports is required")
	}
	files, err := filepath.Glob(filepath.Join(*dir, "*", "warm-report.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no reports under %s (*/warm-report.json)", *dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rep readiness.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		settled, ok := demo.CompileSettled(&rep, 20, 10*time.Second)
		fmt.Fprintf(out, "%s: %s at %.0fs; compile settled at %.0fs (%v)\n", f, rep.Outcome, rep.ReleasedAt.Sub(rep.Started).Seconds(), settled, ok)
		for _, c := range jvmSettings {
			at, outcome := whatIf(&rep, c.opts, c.rateWindow, c.compileOnly)
			fmt.Fprintf(out, "  %-70s %s %.0fs\n", c.name, outcome, at)
		}
		fmt.Fprintln(out, strings.TrimPrefix(summarizeSignals(&rep), "\n"))
	}
	return nil
}

// jvmSettings are the readiness settings figures and whatif replay
// recorded signals through: preheat's defaults, the settings the JVM is
// warmed with (demo.JVMWarmOptions), and candidates between them.
// rateWindow 20s recomputes the compile rate over 20 s from the recorded
// 10 s rates (the mean of the rate at t and at t-10s); compileOnly drops
// the jitter and latency series. Every setting holds with the default
// tolerance (2) since session 10; the tables before it were made with a
// strict hold, the last entry's.
var jvmSettings = []struct {
	name        string
	opts        *readiness.Options
	rateWindow  time.Duration
	compileOnly bool
}{
	{name: "defaults: window 30s, hold 30s, min-warm 30s, max-jitter 20ms", opts: &readiness.Options{}},
	{name: "defaults, no jitter limit", opts: &readiness.Options{MaxJitter: -1}},
	{name: "defaults, compile signal only", opts: &readiness.Options{}, compileOnly: true},
	{name: "window 30s, hold 10s, no jitter limit", opts: &readiness.Options{Hold: 10 * time.Second, MaxJitter: -1}},
	{name: "window 30s, hold 10s, compile only", opts: &readiness.Options{Hold: 10 * time.Second}, compileOnly: true},
	{name: "window 30s, hold 10s, compile only, rate over 20s", opts: &readiness.Options{Hold: 10 * time.Second}, compileOnly: true, rateWindow: 20 * time.Second},
	{name: "window 20s, hold 10s, no jitter limit, rate over 20s", opts: &readiness.Options{Window: 20 * time.Second, Hold: 10 * time.Second, MaxJitter: -1, RateWindow: 20 * time.Second}, rateWindow: 20 * time.Second},
	{name: "window 20s, hold 10s, compile only, rate over 20s", opts: &readiness.Options{Window: 20 * time.Second, Hold: 10 * time.Second, RateWindow: 20 * time.Second}, compileOnly: true, rateWindow: 20 * time.Second},
	{name: "window 20s, hold 10s, no jitter limit, max-compile-rate 30", opts: &readiness.Options{Window: 20 * time.Second, Hold: 10 * time.Second, MaxJitter: -1, MaxCompileRate: 30}},
	{name: "window 10s, hold 10s, min-warm 10s, no jitter limit (the tests)", opts: &readiness.Options{Window: 10 * time.Second, Hold: 10 * time.Second, MinWarm: 10 * time.Second, MaxJitter: -1}},
	{name: "window 10s, hold 10s, min-warm 10s, max-jitter 100ms", opts: &readiness.Options{Window: 10 * time.Second, Hold: 10 * time.Second, MinWarm: 10 * time.Second, MaxJitter: 0.1}},
	{name: "window 10s, hold 5s, min-warm 10s, no jitter limit", opts: &readiness.Options{Window: 10 * time.Second, Hold: 5 * time.Second, MinWarm: 10 * time.Second, MaxJitter: -1}},
	{name: "window 10s, hold 10s, min-warm 10s, no jitter limit, strict hold (before session 10)", opts: &readiness.Options{Window: 10 * time.Second, Hold: 10 * time.Second, MinWarm: 10 * time.Second, MaxJitter: -1, HoldTolerance: 1}},
}

// whatIf replays a report's signal series through a detector with opts and
// returns when it would have released, in seconds from the run's start, and
// the outcome ("none" if it would not have decided within the series).
func whatIf(rep *readiness.Report, opts *readiness.Options, rateWindow time.Duration, compileOnly bool) (float64, string) {
	o := *opts
	o.MaxWarm = 10 * time.Minute
	d := readiness.NewDetector(rep.Started, &o)
	type pt struct {
		s readiness.Signal
		t float64
		v float64
	}
	// The watcher decides once an interval, right after it adds that
	// interval's replay latency: those are the evaluation times (the
	// scrape times when there was no replay latency).
	var pts []pt
	var evals, scrapes []float64
	for i, name := range []string{readiness.Jitter.String(), readiness.Compile.String(), readiness.Latency.String()} {
		if s := demo.ReportSeries(rep, name); s != nil {
			if compileOnly && readiness.Signal(i) == readiness.Latency {
				continue
			}
			for k, p := range s.Points {
				if readiness.Signal(i) == readiness.Compile && rateWindow == 20*time.Second {
					// The rate over 20 s is the mean of the 10 s rates
					// at t and t-10s.
					j := slices.IndexFunc(s.Points[:k], func(q readiness.Point) bool { return math.Abs(q.T-(p.T-10)) < 0.5 })
					if j < 0 {
						continue
					}
					p.V = (p.V + s.Points[j].V) / 2
				}
				if compileOnly && readiness.Signal(i) == readiness.Jitter {
					scrapes = append(scrapes, p.T)
					continue
				}
				pts = append(pts, pt{readiness.Signal(i), p.T, p.V})
				switch readiness.Signal(i) {
				case readiness.Jitter:
					scrapes = append(scrapes, p.T)
				case readiness.Latency:
					evals = append(evals, p.T)
				}
			}
		}
	}
	if len(evals) == 0 {
		evals = scrapes
	}
	slices.SortStableFunc(pts, func(a, b pt) int { return cmp.Compare(a.t, b.t) })
	at := func(sec float64) time.Time { return rep.Started.Add(time.Duration(sec * float64(time.Second))) }
	// The share of --rate the back-off allowed, recorded at every
	// evaluation since the load-share rule (readiness.Options.LoadShare).
	var shares []readiness.Point
	if s := demo.ReportSeries(rep, readiness.LoadShareSeries); s != nil {
		shares = s.Points
	}
	k, j := 0, 0
	last := ""
	for _, e := range evals {
		for k < len(pts) && pts[k].t <= e {
			d.Add(pts[k].s, at(pts[k].t), pts[k].v)
			k++
		}
		for j < len(shares) && shares[j].T <= e {
			d.SetLoadShare(at(shares[j].T), shares[j].V)
			j++
		}
		dec := d.Decide(at(e))
		if dec.Outcome != "" {
			return e, dec.Outcome
		}
		last = dec.Reason
	}
	return 0, "none (at the end: " + last + ")"
}

// summarizeSignals describes a report's signals in five-second steps.
func summarizeSignals(rep *readiness.Report) string {
	var b strings.Builder
	for _, name := range []string{"compile_ms_per_second", "jitter_seconds", "replay_latency_ms"} {
		s := demo.ReportSeries(rep, name)
		if s == nil {
			continue
		}
		fmt.Fprintf(&b, "\n  %s:", name)
		next := 0.0
		for _, p := range s.Points {
			if p.T >= next {
				fmt.Fprintf(&b, " %.0fs=%.3g", p.T, p.V)
				next = math.Floor(p.T/5)*5 + 5
			}
		}
	}
	return b.String()
}
