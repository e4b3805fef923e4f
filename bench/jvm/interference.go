package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/internal/jvmfixture"
)

// interference is a diagnostic of the machine, not of preheat: how much
// does work on one processor slow a JVM pinned to another? Session 9
// pinned the neighbour JVM and its clients to CPU 0 and the warm-up to
// CPU 1, and the neighbour still lost about half of its unpinned excess.
// Here the neighbour JVM and its client process are pinned to
// --neighbour-cpus as there (this process, which only starts and times
// things, is not pinned), and --load-cpus gets, in turn for --spell each
// with idle spells between, loads whose shape is known (--loads): a busy
// loop (spin: processor time only), a memory stream (mem: two 64 MiB
// buffers copied back and forth, far larger than the cache), loopback TCP
// echo (net: the kernel's network path), and a second JVM under 1,000
// requests/s from 20 s after its start, still compiling, as a warm-up's
// target is (jvm). The neighbour's p99 in each spell, against the idle
// spells around it, says what a warm-up on a processor of its own can cost
// a neighbour on this machine, whatever preheat does. Linux only (taskset);
// about 6 minutes.
func interference(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("interference", flag.ContinueOnError)
	spell := fs.Duration("spell", 30*time.Second, "how long each load, and each idle spell between loads, lasts")
	loads := fs.String("loads", "spin,mem,net,jvm", "the loads, in turn, comma-separated: spin, mem, net, jvm")
	nWarm := fs.Duration("neighbour-warm", time.Minute, "traffic to the neighbour before the first spell, so that it is warm")
	nCPUs := fs.String("neighbour-cpus", "0", "the processors the neighbour JVM and its client process are pinned to (taskset's list form)")
	loadCPUs := fs.String("load-cpus", "1", "the processors the loads are pinned to (taskset's list form)")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	ls := strings.Split(*loads, ",")
	for _, l := range ls {
		if !slices.Contains([]string{"spin", "mem", "net", "jvm"}, l) {
			return usagef("interference: --loads: %q is none of spin, mem, net, jvm", l)
		}
	}
	if *spell <= 0 || *nWarm < 0 {
		return usagef("interference: --spell must be positive, --neighbour-warm not negative")
	}
	if runtime.GOOS != "linux" {
		return errors.New("interference pins processes with taskset: Linux only")
	}
	if runtime.NumCPU() < 2 {
		return errors.New("interference needs two processors")
	}
	st := newStory(out)
	tmp, err := os.MkdirTemp("", "preheat-bench-jvm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	neighbour, err := launch(ctx, &jvmfixture.Options{CPUs: *nCPUs})
	if err != nil {
		return err
	}
	defer neighbour.Close()
	st.drive(ctx, neighbour.URL(), *nWarm, nil, 76) // warm
	nc, err := startNeighbour(tmp, neighbour.URL(), 2, 200, 77, true, false, *nCPUs)
	if err != nil {
		return err
	}
	defer nc.kill()
	type phase struct {
		load     string
		from, to time.Time
		did      string // what the load counted
	}
	var phases []phase
	idle := func() error {
		p := phase{load: "idle", from: time.Now()}
		if err := sleep(ctx, *spell); err != nil {
			return err
		}
		p.to = time.Now()
		phases = append(phases, p)
		return nc.check()
	}
	// jvmLoad is the second JVM: its first wave off the clock, then a
	// spell at 1,000 requests/s from a process of its own.
	jvmLoad := func(p *phase) error {
		other, err := launch(ctx, &jvmfixture.Options{CPUs: *loadCPUs})
		if err != nil {
			return err
		}
		defer other.Close()
		st.drive(ctx, other.URL(), 20*time.Second, nil, 90)
		oc, err := startNeighbour(tmp, other.URL(), 4, 1000, 91, true, false, *loadCPUs)
		if err != nil {
			return err
		}
		defer oc.kill()
		p.from = time.Now()
		if err := sleep(ctx, *spell); err != nil {
			return err
		}
		p.to = time.Now()
		ol, err := oc.stop()
		if err != nil {
			return err
		}
		p.did = fmt.Sprintf("%d requests, %d errors", ol.Len(), ol.Errors())
		return nil
	}
	hogLoad := func(p *phase) error {
		h, err := startHog(p.load, *loadCPUs)
		if err != nil {
			return err
		}
		defer h.kill()
		p.from = time.Now()
		if err := sleep(ctx, *spell); err != nil {
			return err
		}
		p.to = time.Now()
		p.did, err = h.stop()
		return err
	}
	st.say("neighbour on CPUs %s warm; spells of %v, loads on CPUs %s: %s", *nCPUs, *spell, *loadCPUs, strings.Join(ls, ", "))
	if err := idle(); err != nil {
		return err
	}
	for _, load := range ls {
		p := phase{load: load}
		run := hogLoad
		if load == "jvm" {
			run = jvmLoad
		}
		if err := run(&p); err != nil {
			return fmt.Errorf("%s: %w", load, err)
		}
		st.say("%s: %s", load, p.did)
		phases = append(phases, p)
		if err := nc.check(); err != nil {
			return err
		}
		if err := idle(); err != nil {
			return err
		}
	}
	nl, err := nc.stop()
	if err != nil {
		return err
	}
	if e := nl.Errors(); e > 0 {
		st.errorf("%d of the neighbour's sessions failed", e)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| load on CPU %s | neighbour requests | p50 | p99 | p99 / idle p99 around it | load's own count |\n|---|---|---|---|---|---|\n", *loadCPUs)
	latencies := func(p phase) (p50, p99 time.Duration, n int) {
		ds := nl.Between(p.from, p.to)
		return demo.NearestRank(ds, 0.5), demo.NearestRank(ds, 0.99), len(ds)
	}
	for i, p := range phases {
		p50, p99, n := latencies(p)
		r := ""
		if p.load != "idle" && i > 0 && i+1 < len(phases) {
			_, a, _ := latencies(phases[i-1])
			_, c, _ := latencies(phases[i+1])
			r = fmt.Sprintf("%.2fx", float64(p99)/(float64(a+c)/2))
		}
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %s | %s |\n", p.load, n, p50.Round(time.Microsecond), p99.Round(time.Microsecond), r, p.did)
	}
	st.say("\n%s", b.String())
	return st.err()
}
