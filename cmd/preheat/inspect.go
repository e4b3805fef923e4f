package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/inspect"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/streamurl"
)

type inspectOptions struct {
	stream  string
	since   time.Duration
	session string
	json    bool
	limit   int
	timeout time.Duration
}

func inspectCommand() *command {
	return &command{
		name:    "inspect",
		summary: "list the sessions in a stream, or print one session's events",
		usage:   "--stream URL [--since 10m] [--session ID] [--json]",
		help: `Reads a stream from --since ago (or everything it retains) to its current end and
lists the sessions found: start, route, frames each way, bytes, duration and state.
With --session it prints that session's events in order instead, payloads as text
where they are UTF-8. --json writes one JSON object per line for scripts.

States: closed (connect to close, nothing missing), open (no close seen yet),
gaps (events missing), no-connect (the open event is not in the range read; such a
session is never replayed).`,
		setup: withFlags(inspectFlags, runInspect),
	}
}

// inspectFlags declares the inspect command's flags into a new inspectOptions.
func inspectFlags(fs *flag.FlagSet) *inspectOptions {
	o := &inspectOptions{}
	fs.StringVar(&o.stream, "stream", "", "stream URL to read (file:///path or kinesis://STREAM); required")
	fs.DurationVar(&o.since, "since", 0, "read records accepted this long ago and later; 0 reads everything the stream retains")
	fs.StringVar(&o.session, "session", "", "print the events of the session with this id instead of the list")
	fs.BoolVar(&o.json, "json", false, "write JSON lines instead of a table")
	fs.IntVar(&o.limit, "limit", 0, "list only the newest N sessions; 0 lists all")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up reading after this long")
	return o
}

func runInspect(ctx context.Context, e *env, o *inspectOptions, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if o.stream == "" {
		return usagef("--stream is required")
	}
	if _, err := streamurl.Parse(o.stream); err != nil {
		return usagef("%v", err)
	}
	if o.since < 0 || o.limit < 0 || o.timeout <= 0 {
		return usagef("--since and --limit must not be negative, --timeout must be positive")
	}
	var want session.ID
	if o.session != "" {
		id, err := session.ParseID(o.session)
		if err != nil {
			return usagef("%v", err)
		}
		want = id
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	start := stream.Start{StopAtEnd: true}
	if o.since > 0 {
		start.Time = time.Now().Add(-o.since)
	}
	c, err := openConsumer(ctx, o.stream, start, e.log, metrics.NewSet())
	if err != nil {
		return err
	}
	defer c.Close()

	ins := inspect.New(want)
	if err := ins.ReadAll(ctx, c); err != nil {
		return fmt.Errorf("read %s: %w", o.stream, err)
	}
	if n, first := ins.Corrupt(); n > 0 {
		fmt.Fprintf(e.stderr, "preheat inspect: skipped %d corrupt records (first: %v)\n", n, first)
	}
	if o.session != "" {
		return ins.WriteSession(e.stdout, o.json)
	}
	return ins.WriteList(e.stdout, &inspect.ListOptions{JSON: o.json, Limit: o.limit})
}
