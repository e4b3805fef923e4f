package warmup

import (
	"context"
	"fmt"
	"time"

	"github.com/preheatdev/preheat/internal/counts"
)

// logProgress logs a line on the replay and the signals every
// Options.Progress until ctx ends.
func (w *Warmup) logProgress(ctx context.Context) {
	if w.cfg.progress <= 0 {
		return
	}
	t := time.NewTicker(w.cfg.progress)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ws := w.watcher.Status()
		st := w.replay.Stats()
		attrs := []any{"elapsed", ws.Elapsed.Round(time.Second), "sessions", st.SessionsCompleted, "active", st.Active,
			"failed", counts.Format(st.SessionsFailed), "sent", st.MessagesSent, "skipped", counts.Format(st.MessagesSkipped), "rate", fmtRate(st.RateLimit),
			"flat_for", ws.FlatFor.Round(time.Second)}
		if st.CPUPressure >= 0 {
			attrs = append(attrs, "cpu_pressure", fmt.Sprintf("%.3f", st.CPUPressure))
		}
		for _, s := range ws.Signals {
			if s.Present {
				attrs = append(attrs, s.Signal.String(), fmt.Sprintf("%.4g flat=%v", s.Value, s.Flat))
			}
		}
		w.log.Info("warm: progress", attrs...)
	}
}
