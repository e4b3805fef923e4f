package replayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
)

// Source yields the sessions to replay.
type Source interface {
	// Next returns the events of the next session, its open event first.
	// It returns io.EOF when there are no more; any other error ends Run.
	Next(ctx context.Context) ([]session.Event, error)
}

// SliceSource replays a fixed list of sessions once each, in order.
type SliceSource struct {
	mu       sync.Mutex
	sessions [][]session.Event
}

// NewSliceSource returns a source of the given sessions, each its events
// with the open event first.
func NewSliceSource(sessions [][]session.Event) *SliceSource {
	return &SliceSource{sessions: sessions}
}

// Next returns the next session, or io.EOF after the last.
func (s *SliceSource) Next(ctx context.Context) ([]session.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) == 0 {
		return nil, io.EOF
	}
	evs := s.sessions[0]
	s.sessions = s.sessions[1:]
	return evs, nil
}

// CacheSourceOptions configures a CacheSource. The zero value is usable.
type CacheSourceOptions struct {
	// Request is the selection asked of the cache each time: mode, route,
	// age and size filters. Limit is the sessions fetched per request,
	// default 20. CompleteOnly is what most warmers want: set it.
	// Covered and Exclude are managed by the source.
	Request replaycache.SelectRequest
	// Max ends the source (io.EOF) after this many sessions. Default 0:
	// no end; sessions already served are served again once the cache has
	// nothing new.
	Max int
	// Remember bounds how many served session ids are sent as Exclude, so
	// that the cache serves new sessions first. Default 1,000.
	Remember int
	// Poll is how long to wait before asking again when the cache has no
	// sessions to give. Default 1s.
	Poll time.Duration
	// RetryMax caps the back-off between failed requests to the cache
	// (200ms doubling). Default 5s.
	RetryMax time.Duration
	// Logger receives one line per streak of failed requests. Default
	// slog.Default().
	Logger *slog.Logger
	// Metrics receives the source's counters. Default a new set.
	Metrics *metrics.Set
}

// CacheSource yields sessions from a replay cache: it asks for sessions in
// batches, coverage first (the cache picks sessions with message kinds this
// warmer has not replayed yet), and keeps asking until its context ends.
// When the cache is unreachable or empty it waits and asks again; only ctx
// (or Max) ends it.
type CacheSource struct {
	client *replaycache.Client
	opts   CacheSourceOptions
	log    *slog.Logger

	requests, errs, served *metrics.Counter

	mu      sync.Mutex
	buf     []*replaycache.Session
	covered map[string]bool
	exclude []session.ID // ring of the last Remember served
	next    int
	total   int
	failing int
}

// NewCacheSource returns a source that reads from client.
func NewCacheSource(client *replaycache.Client, opts *CacheSourceOptions) *CacheSource {
	var o CacheSourceOptions
	if opts != nil {
		o = *opts
	}
	if o.Request.Limit <= 0 {
		o.Request.Limit = 20
	}
	if o.Remember <= 0 {
		o.Remember = 1000
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	return &CacheSource{
		client:   client,
		opts:     o,
		log:      o.Logger,
		requests: o.Metrics.NewCounter("preheat_replay_cache_requests_total"),
		errs:     o.Metrics.NewCounter("preheat_replay_cache_errors_total"),
		served:   o.Metrics.NewCounter("preheat_replay_cache_sessions_total"),
		covered:  map[string]bool{},
	}
}

// KindsCovered returns how many message kinds the sessions served so far hold.
func (s *CacheSource) KindsCovered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.covered)
}

// Next returns the next session. It waits (polling the cache) while the
// cache is unreachable or empty, until ctx ends.
func (s *CacheSource) Next(ctx context.Context) ([]session.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Max > 0 && s.total >= s.opts.Max {
		return nil, io.EOF
	}
	for len(s.buf) == 0 {
		wait, err := s.fetch(ctx)
		if err != nil {
			return nil, err
		}
		if len(s.buf) > 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	ss := s.buf[0]
	s.buf = s.buf[1:]
	s.total++
	s.served.Inc()
	for _, k := range ss.Kinds {
		s.covered[k] = true
	}
	if len(s.exclude) < s.opts.Remember {
		s.exclude = append(s.exclude, ss.ID)
	} else {
		s.exclude[s.next] = ss.ID
		s.next = (s.next + 1) % len(s.exclude)
	}
	return ss.Events, nil
}

// fetch asks the cache for a batch of sessions into buf. It returns how long
// to wait before asking again when buf stays empty; err only when ctx ends.
func (s *CacheSource) fetch(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := s.opts.Request
	req.Covered = req.Covered[:0:0]
	for k := range s.covered {
		req.Covered = append(req.Covered, k)
	}
	req.Exclude = append([]session.ID(nil), s.exclude...)
	s.requests.Inc()
	got, err := s.read(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		s.errs.Inc()
		s.failing++
		if s.failing == 1 {
			s.log.Warn("replay cache request failed; retrying", "err", err)
		}
		d := min(200*time.Millisecond<<min(s.failing-1, 8), s.opts.RetryMax)
		return d/2 + rand.N(d/2+1), nil
	}
	if s.failing > 0 {
		s.log.Info("replay cache reachable again", "failed_requests", s.failing)
		s.failing = 0
	}
	if len(got) == 0 && len(s.exclude) > 0 {
		// Everything in the window was served: start over.
		s.exclude, s.next = s.exclude[:0], 0
		return 0, nil
	}
	s.buf = got
	return s.opts.Poll, nil
}

func (s *CacheSource) read(ctx context.Context, req replaycache.SelectRequest) ([]*replaycache.Session, error) {
	r, err := s.client.Select(ctx, req)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*replaycache.Session
	for {
		ss, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			if len(out) > 0 {
				return out, nil // keep the whole sessions read before the failure
			}
			return nil, fmt.Errorf("select: %w", err)
		}
		if len(ss.Events) > 0 && ss.Events[0].Kind == session.KindOpen {
			out = append(out, ss)
		}
	}
}
