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
// users) for --duration alone, then for --duration beside a canary; the
// users' message rate and latency are compared.
func load(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var c common
	c.register(fs)
	background := fs.Float64("background", 400, "the reference's own traffic, messages a second")
	runs := fs.Int("runs", 3, "pairs of windows, alone then beside a canary")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	ref, cand := serve(nil), serve(nil)
	defer ref.close()
	defer cand.close()

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

	fmt.Fprintf(out, "load: the reference's own traffic at %.0f msg/s, %v alone then %v beside a canary at %.0f msg/s, %d times; %s\n",
		*background, c.duration, c.duration, c.rate, *runs, machine())
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
		var res *canary.Result
		var err error
		window(fmt.Sprintf("%d: with a canary", i+1), func() {
			var cn *canary.Canary
			if cn, err = canary.New(cand.url, ref.url, c.options(i)); err == nil {
				res, err = cn.Run(ctx, replayer.NewSliceSource(corpusSessions(c.seed+uint64(i))))
			}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d: the canary: %s: %s (%s)\n", i+1, res.Outcome, res.Finding, rates(res))
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
