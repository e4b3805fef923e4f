package demo

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// printer prints the demo's story, each line stamped with the seconds since
// the start.
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	started time.Time
}

// say prints one line of the story.
func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.started).Seconds(), fmt.Sprintf(format, args...))
}

// printf prints without a stamp: the header and the summary.
func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// logger returns a logger that prints the warm-up's lines compactly into
// the story, stamped and indented, without time and level.
func (p *printer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(stampWriter{p}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// stampWriter writes each log line into the story, stamped and indented.
type stampWriter struct{ p *printer }

func (s stampWriter) Write(b []byte) (int, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	fmt.Fprintf(s.p.w, "[%5.1fs]   ", time.Since(s.p.started).Seconds())
	return s.p.w.Write(b)
}

// FormatLatency formats a latency for a table: "-" for none, two decimals
// of a millisecond under 10ms, whole milliseconds under a second, seconds
// above.
func FormatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
