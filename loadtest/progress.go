package loadtest

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ProgressOptions say where Runner.ShowProgress shows a run's progress.
type ProgressOptions struct {
	// Terminal, when set, is a terminal that gets a status line rewritten
	// every second and erased when the progress ends; nothing is logged
	// then. Whether a writer is a terminal is the caller's to know.
	// Default nil: progress lines are logged.
	Terminal io.Writer
	// Interval is how often a progress line is logged to Options.Logger
	// when there is no Terminal. Default 0: never.
	Interval time.Duration
}

// ShowProgress shows the run's progress until ctx ends, as o says. It
// returns when ctx ends; the caller runs it beside Run and cancels ctx
// once Run has returned. o may be nil: nothing is shown.
func (r *Runner) ShowProgress(ctx context.Context, o *ProgressOptions) {
	if o == nil {
		return
	}
	tty, interval := o.Terminal, o.Interval
	if tty != nil {
		interval = time.Second
	}
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty != nil {
				fmt.Fprint(tty, "\r\033[K")
			}
			return
		case <-t.C:
		}
		p := r.Progress()
		if tty != nil {
			fmt.Fprintf(tty, "\r\033[K%6.0fs  %6.1f sessions/s  %5d active  p50 %-8v p99 %-8v errors %d (%.2f%%)",
				p.Elapsed.Seconds(), p.Rate, p.Active, p.P50.Round(10*time.Microsecond), p.P99.Round(10*time.Microsecond), p.Errors, 100*p.ErrorRate)
			continue
		}
		r.log.Info("loadtest: progress", "elapsed", p.Elapsed.Round(time.Second), "rate", fmt.Sprintf("%.1f/s", p.Rate),
			"active", p.Active, "started", p.Started, "p50", p.P50.Round(10*time.Microsecond), "p99", p.P99.Round(10*time.Microsecond),
			"errors", p.Errors, "error_rate", fmt.Sprintf("%.3f%%", 100*p.ErrorRate))
	}
}
