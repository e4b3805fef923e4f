package replaycache_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// served is a cache over a directory log holding sessions, served over
// HTTP with a token.
type served struct {
	run      *cacheRun
	srv      *httptest.Server
	client   *replaycache.Client
	sessions map[session.ID][]session.Event
}

func serveSessions(t *testing.T, n int, sopts *replaycache.ServerOptions) *served {
	t.Helper()
	dir, p := newLog(t, nil)
	want := make(map[session.ID][]session.Event)
	for _, evs := range corpusSessions(3, time.Now().Add(-time.Minute), n, 6) {
		want[evs[0].Session] = evs
		for i := 0; i < len(evs); i += 5 {
			put(t, p, evs[i:min(i+5, len(evs))])
		}
	}
	flush(t, p)
	run := startCache(t, dir, stream.Start{Time: time.Now().Add(-time.Hour)}, nil)
	deadline := time.Now().Add(20 * time.Second)
	for run.Status().Sessions < n || run.Status().Live > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %+v, want %d complete sessions", run.Status(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	o := replaycache.ServerOptions{Token: "tok", Logger: quiet}
	if sopts != nil {
		o = *sopts
		o.Token, o.Logger = "tok", quiet
	}
	srv := httptest.NewServer(replaycache.NewServer(run.Cache, &o))
	t.Cleanup(srv.Close)
	client, err := replaycache.NewClient(srv.URL, &replaycache.ClientOptions{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return &served{run: run, srv: srv, client: client, sessions: want}
}

func TestServerAuth(t *testing.T) {
	s := serveSessions(t, 3, nil)
	anon, _ := replaycache.NewClient(s.srv.URL, nil)
	_, err := anon.Status(context.Background())
	var se *replaycache.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated status: %v", err)
	}
	if _, err := anon.Select(context.Background(), replaycache.SelectRequest{}); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated select: %v", err)
	}
	resp, err := http.Get(s.srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestServerListSelectSession(t *testing.T) {
	const n = 20
	s := serveSessions(t, n, nil)
	ctx := context.Background()
	st, err := s.client.Status(ctx)
	if err != nil || st.Sessions != n {
		t.Fatalf("status: %+v %v", st, err)
	}
	list, err := s.client.List(ctx, replaycache.Filter{Limit: 5})
	if err != nil || len(list) != 5 {
		t.Fatalf("list: %d %v", len(list), err)
	}

	r, err := s.client.Select(ctx, replaycache.SelectRequest{Mode: replaycache.Coverage, Filter: replaycache.Filter{Limit: n}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seen := map[session.ID]bool{}
	for {
		got, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[got.ID] {
			t.Fatalf("session %s served twice in one request", got.ID)
		}
		seen[got.ID] = true
		if !got.Complete || got.Truncated {
			t.Fatalf("session %s: complete %v truncated %v", got.ID, got.Complete, got.Truncated)
		}
		sameEvents(t, got.Events, s.sessions[got.ID])
		if want := kindsOf(t, got.Events); !slices.Equal(got.Kinds, want) {
			t.Fatalf("session %s: kinds %q, want %q", got.ID, got.Kinds, want)
		}
	}
	if len(seen) != n {
		t.Fatalf("select served %d sessions, want %d", len(seen), n)
	}

	for id, want := range s.sessions {
		r, err := s.client.Session(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Next()
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		sameEvents(t, got.Events, want)
		break
	}
	var se *replaycache.StatusError
	if _, err := s.client.Session(ctx, session.NewID(), false); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestServerJSONLines(t *testing.T) {
	s := serveSessions(t, 2, nil)
	for id, want := range s.sessions {
		req, _ := http.NewRequest("GET", s.srv.URL+"/v1/sessions/"+id.String()+"?format=jsonl", nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != replaycache.JSONLinesContentType {
			t.Fatalf("content type %q", ct)
		}
		var got []session.Event
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e session.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			got = append(got, e)
		}
		sameEvents(t, got, want)
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/v1/select?format=xml", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad format: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestServerFollow follows a live session while its events are put.
func TestServerFollow(t *testing.T) {
	dir, p := newLog(t, nil)
	evs := corpusSessions(9, time.Now(), 1, 20)[0]
	half := len(evs) / 2
	put(t, p, evs[:half])
	flush(t, p)
	run := startCache(t, dir, stream.Start{Time: time.Now().Add(-time.Hour)}, nil)
	id := evs[0].Session
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, ok := run.Get(id); ok && v.Events == half {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first half not cached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv := httptest.NewServer(replaycache.NewServer(run.Cache, &replaycache.ServerOptions{Logger: quiet, Heartbeat: 20 * time.Millisecond}))
	defer srv.Close()
	client, _ := replaycache.NewClient(srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := client.Session(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []session.Event
	for len(got) < half {
		f, err := r.NextBatch()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Events...)
	}
	for i := half; i < len(evs); i += 3 {
		put(t, p, evs[i:min(i+3, len(evs))])
		flush(t, p)
	}
	for {
		f, err := r.NextBatch()
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if f.End {
			if !f.Complete {
				t.Fatal("end of a followed session not marked complete")
			}
			break
		}
		got = append(got, f.Events...)
	}
	sameEvents(t, got, evs)
}

// TestServerManyClientsAndASlowOne serves many concurrent clients while one
// stops reading: the others are all served.
func TestServerManyClientsAndASlowOne(t *testing.T) {
	s := serveSessions(t, 30, &replaycache.ServerOptions{ClientSessionsPerSecond: 1e6, SessionsPerSecond: 1e6, WriteTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The slow client asks for everything and reads nothing.
	slow, err := s.client.Select(ctx, replaycache.SelectRequest{Filter: replaycache.Filter{Limit: 30}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			c, _ := replaycache.NewClient(s.srv.URL, &replaycache.ClientOptions{Token: "tok"})
			r, err := c.Select(ctx, replaycache.SelectRequest{Mode: replaycache.Random, Filter: replaycache.Filter{Limit: 3}})
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			for range 3 {
				got, err := r.Next()
				if err != nil {
					errs <- err
					return
				}
				if len(got.Events) != len(s.sessions[got.ID]) {
					errs <- errors.New("short session")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestServerRateLimit(t *testing.T) {
	s := serveSessions(t, 5, &replaycache.ServerOptions{ClientSessionsPerSecond: 1, MaxRateWait: 50 * time.Millisecond})
	ctx := context.Background()
	limited := false
	for range 5 {
		r, err := s.client.Select(ctx, replaycache.SelectRequest{Filter: replaycache.Filter{Limit: 1}})
		var se *replaycache.StatusError
		if errors.As(err, &se) && se.Code == http.StatusTooManyRequests {
			limited = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if !limited {
		t.Fatal("a client asking 5 times at 1 session/s was never refused")
	}
}

// kindsOf names the kinds of a corpus session's client messages, as the
// plain JSON profile does.
func kindsOf(t *testing.T, evs []session.Event) []string {
	t.Helper()
	set := map[string]bool{}
	for _, ev := range evs {
		if ev.Kind != session.KindFrame || ev.Direction != session.ClientToServer {
			continue
		}
		// A corpus query's kind is its op; the connect message, which has
		// none, is protocol control and no kind.
		var m struct{ Op string }
		if err := json.Unmarshal(ev.Payload, &m); err != nil {
			t.Fatal(err)
		}
		if m.Op != "" {
			set[m.Op] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// serveDirect serves one request from remote (an "IP:port") with the
// given X-Preheat-Client header, without a network, so that it can run in
// a synctest bubble.
func serveDirect(h http.Handler, target, remote, clientHeader string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = remote
	req.Header.Set("Authorization", "Bearer tok")
	if clientHeader != "" {
		req.Header.Set("X-Preheat-Client", clientHeader)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// sessionsIn counts the sessions of a framed batch stream: its end frames.
func sessionsIn(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	for len(b) > 0 {
		typ := b[0]
		size, w := binary.Uvarint(b[1:])
		if w <= 0 || uint64(len(b)-1-w) < size {
			t.Fatalf("malformed frame stream")
		}
		b = b[1+w+int(size):]
		if typ == 2 {
			n++
		}
	}
	return n
}

// The rate limits charge every session a response holds: one request for
// 100 sessions under 5 sessions/s takes 20 s, as 100 requests would.
func TestServerRateLimitChargesEverySessionServed(t *testing.T) {
	const n, perSecond = 100, 5
	s := serveSessions(t, n, nil)
	synctest.Test(t, func(t *testing.T) {
		h := replaycache.NewServer(s.run.Cache, &replaycache.ServerOptions{Token: "tok", Logger: quiet, SessionsPerSecond: perSecond})
		start := time.Now()
		w := serveDirect(h, "/v1/select?limit=900", "192.0.2.1:1000", "")
		took := time.Since(start)
		if w.Code != http.StatusOK {
			t.Fatalf("select: %d %s", w.Code, w.Body)
		}
		if got := sessionsIn(t, w.Body.Bytes()); got != n {
			t.Fatalf("served %d sessions, want %d", got, n)
		}
		// The first session is the burst; each other one waits its turn.
		if want := time.Duration(n-1) * time.Second / perSecond; took < want || took > want+time.Second {
			t.Errorf("served %d sessions in %v at %d/s, want about %v", n, took, perSecond, want)
		}
	})
}

// The per-client limit keys on the client's address: a new X-Preheat-Client
// header does not buy a fresh budget, and neither does another address in
// the same IPv6 /64; another address does.
func TestServerClientRateLimitIgnoresClientChosenHeader(t *testing.T) {
	s := serveSessions(t, 3, nil)
	synctest.Test(t, func(t *testing.T) {
		h := replaycache.NewServer(s.run.Cache, &replaycache.ServerOptions{Token: "tok", Logger: quiet,
			ClientSessionsPerSecond: 1, MaxRateWait: 50 * time.Millisecond})
		f := func(remote, header string, want int) {
			t.Helper()
			if w := serveDirect(h, "/v1/select?limit=1", remote, header); w.Code != want {
				t.Errorf("from %s as %q: %d, want %d", remote, header, w.Code, want)
			}
		}
		f("192.0.2.1:1000", "a", http.StatusOK)
		f("192.0.2.1:1001", "b", http.StatusTooManyRequests)
		f("192.0.2.1:1002", "", http.StatusTooManyRequests)
		f("192.0.2.2:1000", "a", http.StatusOK)
		f("[2001:db8::1]:1000", "", http.StatusOK)
		f("[2001:db8::2]:1000", "", http.StatusTooManyRequests)
		f("[2001:db8:0:1::1]:1000", "", http.StatusOK)
		time.Sleep(time.Second)
		f("192.0.2.1:1003", "b", http.StatusOK)
	})
}
