package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// load measures what a canary costs the reference: the reference serves
// its own traffic (a replay at --background msg/s, standing in for its
// users) for --duration in each of three windows, in turn: alone; while a
// canary runs between the candidate and a third server (the machine does
// the canary's work, the reference does none of it); and beside a canary
// against it. Everything shares this machine's cores, so the second window
// is the control: what the third adds over it is the canary's load on the
// reference, what the second adds over the first is the machine's.
func load(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var c common
	c.register(fs)
	background := fs.Float64("background", 400, "the reference's own traffic, messages a second")
	runs := fs.Int("runs", 3, "pairs of windows, alone then beside a canary")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	ref, cand, other := serve(nil), serve(nil), serve(nil)
	defer ref.close()
	defer cand.close()
	defer other.close()

	var mu sync.Mutex
	hist := hdrhistogram.New(1000, int64(time.Minute), 3)
	users, err := replayer.New(ref.url, &replayer.Options{Rate: *background, NoBackoff: true, Concurrency: 64, Correlate: "id",
		Logger: slog.New(slog.DiscardHandler), OnResponse: func(r replayer.Response) {
			mu.Lock()
			_ = hist.RecordValue(min(max(int64(r.Latency), 1000), int64(time.Minute)))
			mu.Unlock()
		}})
	if err != nil {
		return err
	}
	uctx, stopUsers := context.WithCancel(ctx)
	defer stopUsers()
	done := make(chan error, 1)
	go func() { done <- users.Run(uctx, &cycle{sessions: corpusSessions(c.seed + 1000)}) }()
	defer func() {
		users.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			stopUsers()
			<-done
		}
	}()

	fmt.Fprintf(out, "load: the reference's own traffic at %.0f msg/s, %v alone, %v while a canary at %.0f msg/s runs elsewhere, %v beside it, %d times; %s\n",
		*background, c.duration, c.duration, c.rate, c.duration, *runs, machine())
	// A warm-up of the users' traffic is not measured.
	if !sleep(ctx, 5*time.Second) {
		return ctx.Err()
	}
	window := func(name string, during func()) {
		mu.Lock()
		hist.Reset()
		mu.Unlock()
		sent := users.Stats().MessagesSent
		start := time.Now()
		during()
		secs := time.Since(start).Seconds()
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%-18s users %6.1f msg/s, p50 %6.2f ms, p99 %6.2f ms, p99.9 %6.2f ms over %d responses\n", name,
			float64(users.Stats().MessagesSent-sent)/secs, float64(hist.ValueAtQuantile(50))/1e6, float64(hist.ValueAtQuantile(99))/1e6,
			float64(hist.ValueAtQuantile(99.9))/1e6, hist.TotalCount())
	}
	for i := range *runs {
		window(fmt.Sprintf("%d: alone", i+1), func() { sleep(ctx, c.duration) })
		for _, w := range []struct {
			name    string
			against *server // the canary's reference
		}{{"canary elsewhere", other}, {"canary on it", ref}} {
			var res *canary.Result
			var err error
			window(fmt.Sprintf("%d: %s", i+1, w.name), func() {
				var cn *canary.Canary
				if cn, err = canary.New(cand.url, w.against.url, c.options(i)); err == nil {
					res, err = cn.Run(ctx, replayer.NewSliceSource(corpusSessions(c.seed+uint64(i))))
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d: the canary %s: %s: %s (%s)\n", i+1, w.name, res.Outcome, res.Finding, rates(res))
		}
	}
	fmt.Fprintf(out, "load: done; load average now %s\n", loadAverage())
	return ctx.Err()
}

// cycle is a replayer.Source of its sessions over and over.
type cycle struct {
	mu       sync.Mutex
	sessions [][]session.Event
	next     int
}

// Next returns the next session, cycling.
func (c *cycle) Next(ctx context.Context) ([]session.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	evs := c.sessions[c.next%len(c.sessions)]
	c.next++
	return evs, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
