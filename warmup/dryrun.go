package warmup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/preheatdev/preheat/internal/counts"
	"github.com/preheatdev/preheat/replayer"
)

// dryRunWait bounds how long a dry run waits for its sessions.
const dryRunWait = 30 * time.Second

// DryRun shows what a warm-up would send to its target and what it would
// skip, without connecting to the target: each session's plan, every
// client message with its verdict (replayer.Options.DryRun), then a
// count. Create it with NewDryRun.
type DryRun struct {
	r *replayer.Replayer
	w io.Writer
}

// NewDryRun returns a dry run of the replay options ropts against target
// that writes to w; ropts is not modified. target may be "": nothing is
// dialed.
func NewDryRun(target string, ropts *replayer.Options, w io.Writer) (*DryRun, error) {
	ro := replayer.Options{}
	if ropts != nil {
		ro = *ropts
	}
	ro.DryRun = w
	if target == "" {
		target = "ws://dry-run.invalid"
	}
	r, err := replayer.New(target, &ro)
	if err != nil {
		return nil, err
	}
	return &DryRun{r: r, w: w}, nil
}

// Run plays the sessions src gives until it has no more, for 30s at most,
// then writes the count of sessions and of messages skipped by reason. A
// run still waiting for sessions at 30s is an error.
func (d *DryRun) Run(ctx context.Context, src replayer.Source) error {
	dctx, cancel := context.WithTimeout(ctx, dryRunWait)
	defer cancel()
	err := d.r.Run(dctx, src)
	st := d.r.Stats()
	fmt.Fprintf(d.w, "dry run: %d sessions, %d messages skipped %v\n", st.SessionsCompleted, counts.Sum(st.MessagesSkipped), st.MessagesSkipped)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("dry run: the cache gave no sessions within 30s")
	}
	return err
}
