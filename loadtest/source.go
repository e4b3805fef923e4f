package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/streamurl"
)

// SourceError is an error in the name of a source itself (a URL Load
// cannot use), rather than in reading it: a caller with flags reports it as
// a usage error.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return fmt.Sprintf("source %q: %v", e.Source, e.Err) }

func (e *SourceError) Unwrap() error { return e.Err }

// SourceOptions configure Load. The zero value is usable.
type SourceOptions struct {
	// Request selects the sessions of a replay cache or a stream: mode,
	// route, filters, Limit (default 1,000). Default the zero request.
	Request replaycache.SelectRequest
	// Token is the bearer token sent to a replay cache. Default none.
	Token string
	// Window keeps the sessions of a stream that connected this recently.
	// Default 0: a kinesis:// stream's last 15 minutes (the load of now),
	// everything a directory log retains (a log is kept for load tests).
	Window time.Duration
	// Stdin is what the source "-" reads. Default os.Stdin.
	Stdin io.Reader
	// Logger receives a stream consumer's events. Default slog.Default().
	Logger *slog.Logger
}

// Load loads the corpus that source names: "-" (a corpus file on Stdin),
// an http:// or https:// replay cache (LoadCache), a kinesis:// stream or a
// directory log, as file:// or a path (LoadStream), or a corpus file, as
// file:// or a path (ReadCorpus). A source of another scheme, or a cache URL
// that cannot be, is a *SourceError. o may be nil.
func Load(ctx context.Context, source string, o *SourceOptions) (*Corpus, error) {
	var opts SourceOptions
	if o != nil {
		opts = *o
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	switch {
	case strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://"):
		client, err := replaycache.NewClient(source, &replaycache.ClientOptions{Token: opts.Token})
		if err != nil {
			return nil, &SourceError{source, err}
		}
		c, err := LoadCache(ctx, client, opts.Request)
		if err != nil {
			return nil, fmt.Errorf("load from cache: %w", err)
		}
		return c, nil
	case source == "-":
		c, err := ReadCorpus(opts.Stdin)
		if err != nil {
			return nil, fmt.Errorf("load corpus from stdin: %w", err)
		}
		return c, nil
	}
	path := source
	if u, err := url.Parse(source); err == nil && u.Scheme == "file" {
		path = u.Path
	}
	if kinesis := strings.HasPrefix(source, "kinesis://"); kinesis || isDir(path) {
		if !kinesis { // a directory log, perhaps given as a relative path
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, fmt.Errorf("open stream: %w", err)
			}
			source = (&url.URL{Scheme: "file", Path: abs}).String()
		}
		return loadStream(ctx, source, kinesis, &opts)
	}
	if strings.Contains(source, "://") && !strings.HasPrefix(source, "file://") {
		return nil, &SourceError{source, errors.New("want http(s)://, file://, kinesis:// or a corpus file")}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	defer f.Close()
	c, err := ReadCorpus(f)
	if err != nil {
		return nil, fmt.Errorf("load corpus %s: %w", path, err)
	}
	return c, nil
}

// loadStream loads from the stream at source, a Kinesis stream or a
// directory log.
func loadStream(ctx context.Context, source string, kinesis bool, o *SourceOptions) (*Corpus, error) {
	window := o.Window
	if window == 0 && kinesis {
		window = 15 * time.Minute
	}
	start := stream.Start{StopAtEnd: true} // zero Time: the oldest record
	if window > 0 {
		start.Time = time.Now().Add(-window)
	} else {
		window = -1 // every session the log retains
	}
	set := metrics.NewSet()
	cons, err := streamurl.OpenConsumer(ctx, source, start, &streamurl.ConsumerOptions{Logger: o.Logger, Metrics: set})
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	defer cons.Close()
	c, err := LoadStream(ctx, cons, &StreamOptions{Window: window, Request: o.Request,
		Cache: &replaycache.Options{Logger: o.Logger, Metrics: set}})
	if err != nil {
		return nil, fmt.Errorf("load from stream: %w", err)
	}
	return c, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
