// Command jvm measures preheat against a real JIT compiler: the JVM sync
// server of package jvmfixture, captured, cached and warmed through
// package demo's pieces (capture, replaycache, warmup), then timed under
// real traffic. It makes the figures of docs/benchmarks-jvm.md:
//
//	go run ./bench/jvm figures [flags]          # about 4 minutes a run
//	go run ./bench/jvm whatif --reports DIR     # saved warm reports through other readiness settings
//	go run ./bench/jvm interference [flags]     # about 6 minutes; Linux, two processors
//	go run ./bench/jvm trace [flags]            # a fresh JVM's signals, a line a second; a minute
//
// and two subcommands those run as processes of their own:
//
//	go run ./bench/jvm neighbour --url URL --out FILE [flags]  # timed clients until stdin closes
//	go run ./bench/jvm hog --load spin|mem|net                 # a load until stdin closes
//
// "go run ./bench/jvm SUBCOMMAND -h" lists a subcommand's flags and their
// defaults. figures, interference and trace need a JDK (javac and java on
// PATH). Everything listens on loopback; every JVM and process started
// ends before the command returns, or with it on an interrupt. The story
// goes to standard output, the warm-ups' log lines among it (bench/jvmhold.py
// reads both); the exit status is 1 if a run failed or a check did not
// hold, 2 for a bad command line.
//
// It is a program and not a test because it is an experiment: it takes
// minutes to hours, its results are figures to read, not properties to
// assert, and it is configured by flags. The one real-JVM test,
// TestJVMWarmEndToEnd in cmd/preheat, shares its pieces.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "jvm:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "jvm:", err)
		os.Exit(1)
	}
}

// subcommand is one of the program's experiments, or a process one of
// them runs.
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, out io.Writer, args []string) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"figures", "capture, warm and time fresh JVMs against cold ones and a warm neighbour, run after run", figures},
		{"whatif", "replay saved warm reports' signals through other readiness settings", whatIfReports},
		{"interference", "what a load on one processor costs a JVM pinned to another", interference},
		{"trace", "a fresh JVM's warmth signals, once a second, under real traffic and no warm-up", trace},
		{"neighbour", "timed clients against a JVM until standard input closes (figures and interference run it)", neighbour},
		{"hog", "a load of a known shape until standard input closes (interference runs it)", hog},
	}
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func run(ctx context.Context, args []string, out io.Writer) error {
	cmds := subcommands()
	var b strings.Builder
	b.WriteString("usage: go run ./bench/jvm SUBCOMMAND [flags]   (SUBCOMMAND -h for its flags)\n\nSubcommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	if len(args) == 0 {
		return usageError{b.String()}
	}
	if a := args[0]; a == "help" || a == "-h" || a == "--help" || a == "-help" {
		fmt.Fprint(out, b.String())
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, out, args[1:])
		}
	}
	return usagef("unknown subcommand %q\n\n%s", args[0], b.String())
}

// parse parses a subcommand's flags, which take no arguments; -h prints
// the subcommand's summary and its flags with their defaults to out.
func parse(fs *flag.FlagSet, out io.Writer, args []string) error {
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: go run ./bench/jvm %s [flags]\n\n", fs.Name())
		for _, c := range subcommands() {
			if c.name == fs.Name() {
				fmt.Fprintf(out, "%s.\n\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
			}
		}
		fmt.Fprintln(out, "Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

// story prints a run's lines, each stamped with the seconds since its
// start, and counts the checks that did not hold.
type story struct {
	w        *lockedWriter
	started  time.Time
	log      *slog.Logger // for the warm-ups' own lines
	mu       sync.Mutex
	failures int
}

func newStory(out io.Writer) *story {
	w := &lockedWriter{w: out}
	return &story{w: w, started: time.Now(), log: slog.New(slog.NewTextHandler(w, nil))}
}

// say prints one stamped line.
func (s *story) say(format string, args ...any) {
	fmt.Fprintf(s.w, "[%5.0fs] %s\n", time.Since(s.started).Seconds(), fmt.Sprintf(format, args...))
}

// errorf prints a check that did not hold and counts it; the run goes on.
func (s *story) errorf(format string, args ...any) {
	s.mu.Lock()
	s.failures++
	s.mu.Unlock()
	s.say("error: "+format, args...)
}

// err returns an error if a check did not hold.
func (s *story) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		return fmt.Errorf("%d checks did not hold; see the lines marked error", s.failures)
	}
	return nil
}

// lockedWriter serialises writes from the story and the warm-ups' logs.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
