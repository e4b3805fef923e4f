package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

type demoOptions struct {
	dir      string
	sessions int
	queries  int
	batch    int
	keep     bool
}

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run preheat end to end on one machine with embedded defaults",
		usage:   "[--sessions 200] [--dir DIR]",
		help: `Runs what preheat has built so far on this machine, with nothing to install.

Today that is the capture format and the stream: synthetic clients' sessions of a
sync protocol are encoded into event batches as the tap will write them, put into a
local directory log, read back by a consumer, checked event by event against what
was written, and listed as 'preheat inspect' would list them.

The full demo (clients through the tap, the replay cache, a cold server warmed and
released, compared with an unwarmed one) grows here as issues #3 to #5 land.`,
		flags: func(fs *flag.FlagSet) any {
			o := &demoOptions{}
			fs.StringVar(&o.dir, "dir", "", "directory for the demo's stream; default a new temporary directory, removed afterwards")
			fs.IntVar(&o.sessions, "sessions", 200, "number of synthetic sessions")
			fs.IntVar(&o.queries, "queries", 40, "client queries per session")
			fs.IntVar(&o.batch, "batch", 16, "events per batch, as the tap flushes them")
			fs.BoolVar(&o.keep, "keep", false, "keep the temporary stream directory for 'preheat inspect'")
			return o
		},
		run: runDemo,
	}
}

func runDemo(ctx context.Context, e *env, args []string) error {
	o := e.opts.(*demoOptions)
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if o.sessions <= 0 || o.queries < 0 || o.batch <= 0 {
		return usagef("--sessions and --batch must be positive, --queries not negative")
	}
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !o.keep {
			defer os.RemoveAll(tmp)
		}
	}
	out := e.stdout
	fmt.Fprintf(out, "preheat demo: %d synthetic sessions into the directory log %s\n\n", o.sessions, dir)

	// Capture side: encode each session in batches and put them.
	set := metrics.NewSet()
	prod, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: e.log, Metrics: set})
	if err != nil {
		return err
	}
	g := corpus.New(uint64(time.Now().UnixNano()))
	start := time.Now().Add(-time.Duration(o.sessions) * time.Second)
	want := make(map[session.ID][]session.Event, o.sessions)
	var events, payload, encoded int
	var encodeTime time.Duration
	buf := make([]byte, 0, 64<<10)
	for i := range o.sessions {
		evs := g.Session(start.Add(time.Duration(i)*time.Second), o.queries)
		want[evs[0].Session] = evs
		for rest := evs; len(rest) > 0; {
			n := min(o.batch, len(rest))
			t0 := time.Now()
			buf, err = session.AppendBatch(buf[:0], rest[:n])
			encodeTime += time.Since(t0)
			if err != nil {
				prod.Close(ctx)
				return err
			}
			if err := prod.Put(ctx, evs[0].Session.String(), buf); err != nil {
				prod.Close(ctx)
				return fmt.Errorf("put: %w", err)
			}
			for _, ev := range rest[:n] {
				payload += len(ev.Payload)
			}
			events += n
			encoded += len(buf)
			rest = rest[n:]
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = prod.Close(closeCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	fmt.Fprintf(out, "capture:  %d events, %s of payload encoded to %s (%.2f stream bytes per payload byte), %.0f events/s on one core\n",
		events, humanBytes(int64(payload)), humanBytes(int64(encoded)), float64(encoded)/float64(payload), float64(events)/encodeTime.Seconds())

	// Reading side: read everything back and compare.
	cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: e.log, Metrics: set})
	if err != nil {
		return err
	}
	defer cons.Close()
	ins := newInspector(session.ID{})
	got := make(map[session.ID][]session.Event, o.sessions)
	records := 0
	for {
		rec, err := cons.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		records++
		ins.add(rec)
		evs, err := session.DecodeBatch(rec.Data, nil)
		if err != nil {
			return fmt.Errorf("record %s/%s: %w", rec.Partition, rec.Position, err)
		}
		got[evs[0].Session] = append(got[evs[0].Session], evs...)
	}
	if err := compareSessions(want, got); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	fmt.Fprintf(out, "stream:   %d records in %d partitions read back; every event of every session matches what was written\n\n",
		records, len(cons.Positions()))

	if err := ins.printList(out, false, 8); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n(the newest 8 of %d sessions)\n", o.sessions)
	if o.keep || o.dir != "" {
		fmt.Fprintf(out, "\nThe stream is kept: preheat inspect --stream file://%s\n", dir)
	}
	fmt.Fprint(out, `
Next: the tap (issue #3), the replay cache (#4) and warming a cold server (#5) join
this demo as they land.
`)
	return nil
}

// compareSessions checks that got holds exactly the events of want, in order.
func compareSessions(want, got map[session.ID][]session.Event) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d sessions, want %d", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if len(g) != len(w) {
			return fmt.Errorf("session %s: %d events, want %d", id, len(g), len(w))
		}
		for i := range w {
			if g[i].Seq != w[i].Seq || g[i].Kind != w[i].Kind || g[i].Offset != w[i].Offset || !bytes.Equal(g[i].Payload, w[i].Payload) {
				return fmt.Errorf("session %s: event %d differs", id, i)
			}
		}
	}
	return nil
}
