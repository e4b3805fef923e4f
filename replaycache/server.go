package replaycache

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/preheatdev/preheat/session"
)

// ServerOptions configure a Server. The zero value is usable.
type ServerOptions struct {
	// Token, when set, must be presented as "Authorization: Bearer TOKEN"
	// on every request but /healthz. Default none.
	Token string
	// SessionsPerSecond bounds the sessions served per second to all
	// clients together. Every session a response holds is charged, so a
	// selection of many sessions streams at this rate. Default 5,000.
	SessionsPerSecond float64
	// ClientSessionsPerSecond bounds the sessions served per second to one
	// client: one IP address, or one /64 prefix of IPv6 addresses, which a
	// single host may hold. Not the token, which every warmer shares, nor
	// a header, which a client chooses. Default 200.
	ClientSessionsPerSecond float64
	// MaxRateWait is how long a request may wait for the rate limits to
	// allow its first session before it is refused with 429; later sessions
	// of a response wait as long as the client stays. Default 2s.
	MaxRateWait time.Duration
	// WriteTimeout bounds each write to a client, so a client that stops
	// reading is dropped instead of holding a goroutine. Default 30s.
	WriteTimeout time.Duration
	// Heartbeat is how often a follow stream that has nothing to send says
	// it is alive. Default 15s.
	Heartbeat time.Duration
	// WriteMetrics writes Prometheus text exposition for /metrics; nil
	// serves the cache's and the server's sets.
	WriteMetrics func(w io.Writer)
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the server's metrics. Default a new set.
	Metrics *metrics.Set
}

// Server serves a Cache over HTTP/1.1 and HTTP/2:
//
//	GET  /healthz                    200 while the process runs
//	GET  /metrics                    Prometheus metrics
//	GET  /v1/status                  Status as JSON
//	GET  /v1/sessions                summaries as JSON; filters as query parameters
//	GET  /v1/sessions/{id}           one session's events; ?follow=1 streams a live one
//	GET  /v1/select, POST /v1/select many sessions' events, picked by Select
//
// Events come in the framed batch format (docs/format.md, "Replay cache
// stream"; the default) or, with ?format=jsonl, as JSON lines of
// session.JSON. A slow client never blocks others or ingestion: it reads
// immutable snapshots, each write has a deadline, and rate limits bound
// what one client and all clients together are served.
type Server struct {
	cache *Cache
	opts  ServerOptions
	log   *slog.Logger
	mux   *http.ServeMux

	global  *rate.Limiter
	mu      sync.Mutex
	clients map[string]*clientLimiter

	served   *metrics.Counter
	limited  *metrics.Counter
	refused  *metrics.Counter
	requests func(route string) *metrics.Counter
}

// NewServer returns a server for cache.
func NewServer(cache *Cache, opts *ServerOptions) *Server {
	o := ServerOptions{}
	if opts != nil {
		o = *opts
	}
	if o.SessionsPerSecond <= 0 {
		o.SessionsPerSecond = 5000
	}
	if o.ClientSessionsPerSecond <= 0 {
		o.ClientSessionsPerSecond = 200
	}
	if o.MaxRateWait <= 0 {
		o.MaxRateWait = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.WriteMetrics == nil {
		o.WriteMetrics = func(w io.Writer) {
			cache.Metrics().WritePrometheus(w)
			o.Metrics.WritePrometheus(w)
		}
	}
	s := &Server{
		cache:   cache,
		opts:    o,
		log:     o.Logger,
		mux:     http.NewServeMux(),
		global:  rate.NewLimiter(rate.Limit(o.SessionsPerSecond), max(1, int(o.SessionsPerSecond/10))),
		clients: make(map[string]*clientLimiter),
		served:  o.Metrics.NewCounter(`preheat_cache_sessions_served_total`),
		limited: o.Metrics.NewCounter(`preheat_cache_requests_rate_limited_total`),
		refused: o.Metrics.NewCounter(`preheat_cache_requests_unauthorized_total`),
	}
	s.requests = func(route string) *metrics.Counter {
		return o.Metrics.GetOrCreateCounter(`preheat_cache_requests_total{route="` + route + `"}`)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		o.WriteMetrics(w)
	})
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/sessions", s.list)
	s.mux.HandleFunc("GET /v1/sessions/{id}", s.one)
	s.mux.HandleFunc("GET /v1/select", s.selectSessions)
	s.mux.HandleFunc("POST /v1/select", s.selectSessions)
	return s
}

// Metrics returns the set the server's metrics are registered in.
func (s *Server) Metrics() *metrics.Set { return s.opts.Metrics }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && r.URL.Path != "/healthz" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
			s.refused.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="preheat"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.requests("status").Inc()
	writeJSON(w, http.StatusOK, s.cache.Status())
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.requests("sessions").Inc()
	f, err := parseFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []Summary `json:"sessions"`
	}{s.cache.List(f)})
}

// parseFilter reads a Filter from query parameters: route,
// min_client_frames, max_age (a Go duration), complete (true/false), limit.
func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Route: q.Get("route")}
	var err error
	if v := q.Get("min_client_frames"); v != "" {
		if f.MinClientFrames, err = strconv.Atoi(v); err != nil || f.MinClientFrames < 0 {
			return f, fmt.Errorf("min_client_frames %q: want a whole number", v)
		}
	}
	if v := q.Get("max_age"); v != "" {
		if f.MaxAge, err = time.ParseDuration(v); err != nil || f.MaxAge < 0 {
			return f, fmt.Errorf("max_age %q: want a duration such as 5m", v)
		}
	}
	if v := q.Get("complete"); v != "" {
		if f.CompleteOnly, err = strconv.ParseBool(v); err != nil {
			return f, fmt.Errorf("complete %q: want true or false", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 0 {
			return f, fmt.Errorf("limit %q: want a whole number", v)
		}
	}
	return f, nil
}

// selectBody is the JSON body of POST /v1/select.
type selectBody struct {
	Mode            string   `json:"mode"`
	Limit           int      `json:"limit"`
	Covered         []string `json:"covered"`
	Exclude         []string `json:"exclude"`
	Route           string   `json:"route"`
	MinClientFrames int      `json:"min_client_frames"`
	MaxAge          string   `json:"max_age"`
	CompleteOnly    bool     `json:"complete"`
}

// maxSelectBody bounds POST /v1/select's body.
const maxSelectBody = 1 << 20

func (s *Server) parseSelect(r *http.Request) (SelectRequest, error) {
	var req SelectRequest
	if r.Method == http.MethodPost {
		var b selectBody
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxSelectBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return req, fmt.Errorf("select body: %w", err)
		}
		mode, err := ParseMode(b.Mode)
		if err != nil {
			return req, err
		}
		req = SelectRequest{Mode: mode, Covered: b.Covered, Filter: Filter{
			Route: b.Route, MinClientFrames: b.MinClientFrames, CompleteOnly: b.CompleteOnly, Limit: b.Limit,
		}}
		if b.MaxAge != "" {
			if req.MaxAge, err = time.ParseDuration(b.MaxAge); err != nil {
				return req, fmt.Errorf("max_age %q: %w", b.MaxAge, err)
			}
		}
		for _, x := range b.Exclude {
			id, err := session.ParseID(x)
			if err != nil {
				return req, err
			}
			req.Exclude = append(req.Exclude, id)
		}
		return req, nil
	}
	f, err := parseFilter(r)
	if err != nil {
		return req, err
	}
	q := r.URL.Query()
	mode, err := ParseMode(q.Get("mode"))
	if err != nil {
		return req, err
	}
	req = SelectRequest{Filter: f, Mode: mode}
	if v := q.Get("covered"); v != "" {
		req.Covered = strings.Split(v, ",")
	}
	return req, nil
}

func (s *Server) selectSessions(w http.ResponseWriter, r *http.Request) {
	s.requests("select").Inc()
	req, err := s.parseSelect(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	format, err := parseFormat(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	refs := s.cache.Select(req)
	if len(refs) == 0 {
		return
	}
	lim := s.clientLimiter(r)
	if err := s.admit(r.Context(), lim); err != nil {
		s.refuse(w, err)
		return
	}
	out := newEventWriter(w, format, s.opts.WriteTimeout)
	for i, ref := range refs {
		if i > 0 {
			// Each session is charged as it is served, so a large limit
			// streams at the rate instead of passing it by.
			if err := s.charge(r.Context(), lim); err != nil {
				return // the client went away
			}
		}
		v, ok := s.cache.Get(ref.ID)
		if !ok {
			continue // evicted since it was picked
		}
		if err := out.session(v); err != nil {
			s.log.Debug("select: client write failed", "err", err)
			return
		}
		s.served.Inc()
	}
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	s.requests("session").Inc()
	id, err := session.ParseID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	format, err := parseFormat(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	q := r.URL.Query()
	follow, _ := strconv.ParseBool(q.Get("follow"))
	var from uint64
	if v := q.Get("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("from %q: want a sequence number", v))
			return
		}
	}
	v, ok := s.cache.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("session %s is not cached", id))
		return
	}
	if err := s.admit(r.Context(), s.clientLimiter(r)); err != nil {
		s.refuse(w, err)
		return
	}
	out := newEventWriter(w, format, s.opts.WriteTimeout)
	s.served.Inc()
	if !follow {
		if from > 0 {
			if err := s.fromSeq(out, v, from); err != nil {
				out.fail(err)
			}
			return
		}
		out.session(v)
		return
	}
	s.follow(r.Context(), out, id, from)
}

// fromSeq writes a snapshot's events from sequence number from on.
func (s *Server) fromSeq(out *eventWriter, v View, from uint64) error {
	var evs []session.Event
	var buf []byte
	for _, b := range v.Batches {
		var err error
		if evs, err = session.DecodeBatch(b, evs[:0]); err != nil {
			return err
		}
		i := 0
		for i < len(evs) && evs[i].Seq < from {
			i++
		}
		if i == len(evs) {
			continue
		}
		if i > 0 {
			if buf, err = session.AppendBatch(buf[:0], evs[i:]); err != nil {
				return err
			}
			b = buf
		}
		if err := out.batch(b); err != nil {
			return err
		}
	}
	return out.end(v.Summary)
}

// follow streams a live session until it ends, is evicted or the client
// goes away, with heartbeats while nothing happens.
func (s *Server) follow(ctx context.Context, out *eventWriter, id session.ID, from uint64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	beats := time.NewTicker(s.opts.Heartbeat)
	defer beats.Stop()
	var wmu sync.Mutex // the heartbeat goroutine and Follow's calls write
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-beats.C:
				wmu.Lock()
				err := out.heartbeat()
				wmu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		}
	})
	err := s.cache.Follow(ctx, id, from, func(b Batch) error {
		wmu.Lock()
		defer wmu.Unlock()
		return out.batch(b.Data)
	})
	close(done)
	wg.Wait()
	switch {
	case err == nil:
		v, _ := s.cache.Get(id)
		out.end(v.Summary)
	case errors.Is(err, context.Canceled):
	default:
		out.fail(err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{err.Error()})
}
