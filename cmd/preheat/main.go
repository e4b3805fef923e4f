// Command preheat warms cold instances of a stateful websocket backend by
// replaying real, recently captured client sessions against them.
//
// One binary serves every role: the tap in the router, the replay cache, the
// warmer beside a new pod, the load generator, and the operator's inspect
// tool. Run `preheat help` for the subcommands.
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
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	// usage is the argument synopsis after the command name.
	usage string
	// help is the long description shown by --help.
	help string
	// setup declares the command's flags on fs and returns the function
	// that runs the command once they are parsed (see withFlags).
	setup func(fs *flag.FlagSet) runFunc
}

// runFunc runs a command, its flags parsed, with the arguments after them.
type runFunc func(ctx context.Context, e *env, args []string) error

// withFlags is a command's setup from two functions over its own options
// type O: declare, which declares the flags into a new O, and run, which
// runs the command with that O once the flags are parsed.
func withFlags[O any](declare func(fs *flag.FlagSet) *O, run func(ctx context.Context, e *env, o *O, args []string) error) func(fs *flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		o := declare(fs)
		return func(ctx context.Context, e *env, args []string) error { return run(ctx, e, o, args) }
	}
}

// env is what a command gets from the process.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// usageError is a bad command line; run prints the command's usage with it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitCode lets a command choose its exit status without printing an error.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func commands() []*command {
	return []*command{
		tapCommand(),
		cacheCommand(),
		warmCommand(),
		loadtestCommand(),
		demoCommand(),
		inspectCommand(),
		versionCommand(),
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			for _, c := range cmds {
				if c.name == args[1] {
					printCommandHelp(stdout, c, nil)
					return 0
				}
			}
		}
		printHelp(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	for _, c := range cmds {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "preheat: unknown command %q\n\n", args[0])
		printHelp(stderr, cmds)
		return 2
	}

	fs := flag.NewFlagSet("preheat "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runCmd := cmd.setup(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, cmd, fs)
			return 0
		}
		fmt.Fprintf(stderr, "preheat %s: %v\n\n", cmd.name, err)
		printCommandHelp(stderr, cmd, fs)
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "preheat %s: %v\n", cmd.name, err)
		return 2
	}
	err = runCmd(ctx, &env{stdout: stdout, stderr: stderr, log: logger}, fs.Args())
	var code exitCode
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "preheat %s: %v\n\n", cmd.name, err)
		printCommandHelp(stderr, cmd, fs)
		return 2
	default:
		fmt.Fprintf(stderr, "preheat %s: %v\n", cmd.name, err)
		return 1
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("parse --log-level %q: %w", level, err)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("parse --log-format %q: want text or json", format)
}

func printHelp(w io.Writer, cmds []*command) {
	fmt.Fprint(w, `preheat warms cold websocket backends with real, recently captured sessions.

Usage:
  preheat <command> [flags]

Commands:
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'preheat <command> --help' for a command's flags.

Stream URLs:
  file:///var/lib/preheat/stream   a local directory log (one machine, demos, tests)
  kinesis://STREAM                 Amazon Kinesis Data Streams, configured by the AWS
                                   default chain (AWS_REGION, credentials, profiles;
                                   AWS_ENDPOINT_URL_KINESIS for a local endpoint)
`)
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: preheat %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
	if fs == nil {
		fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fs)
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		help:    "Prints preheat's version, the Go version it was built with and its VCS revision when known.",
		setup:   func(*flag.FlagSet) runFunc { return runVersion },
	}
}

func runVersion(ctx context.Context, e *env, args []string) error {
	v, goVersion, rev := version, "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	fmt.Fprintf(e.stdout, "preheat %s %s", v, goVersion)
	if rev != "" {
		fmt.Fprintf(e.stdout, " %s", rev)
	}
	fmt.Fprintln(e.stdout)
	return nil
}
