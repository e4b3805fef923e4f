package loadtest_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func jsonLines(t testing.TB, evs ...session.Event) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range evs {
		if err := enc.Encode(evs[i].ToJSON()); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestReadCorpus(t *testing.T) {
	ss := sessions(3, 2, 2)
	a, b, c := ss[0], ss[1], ss[2]
	var in bytes.Buffer
	// a whole; b interleaved with a duplicate and out of order; c without
	// its open event; blank lines as a cache's heartbeats.
	in.Write(jsonLines(t, a...))
	in.WriteString("\n\n")
	in.Write(jsonLines(t, b[2], b[0], b[1], b[1]))
	in.Write(jsonLines(t, c[1:]...))
	in.Write(jsonLines(t, b[3:]...))
	got, err := loadtest.ReadCorpus(&in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions) != 2 || got.Dropped != 1 {
		t.Fatalf("%d sessions, %d dropped; want 2, 1", len(got.Sessions), got.Dropped)
	}
	for i, want := range [][]session.Event{a, b} {
		if len(got.Sessions[i]) != len(want) {
			t.Fatalf("session %d: %d events, want %d", i, len(got.Sessions[i]), len(want))
		}
		for j := range want {
			g := got.Sessions[i][j]
			if g.Seq != want[j].Seq || g.Kind != want[j].Kind || string(g.Payload) != string(want[j].Payload) {
				t.Fatalf("session %d event %d: %+v, want %+v", i, j, g, want[j])
			}
		}
	}
	if got.Rate != 1/0.5 {
		t.Errorf("rate %v, want 2", got.Rate)
	}

	f := func(in, want string) {
		t.Helper()
		if _, err := loadtest.ReadCorpus(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadCorpus(%q) error %v, want %q", in, err, want)
		}
	}
	f(string(jsonLines(t, a[0]))+`{"error":"cache stopped"}`+"\n", `line 2: the cache reported an error: cache stopped`)
	f("not json\n", "line 1")
	f(`{"session":"00000000000000000000000000000000","seq":0,"kind":"frame","direction":"up"}`, `direction "up"`)
}

// readCorpusJSON is ReadCorpus as it was before it had a decoder of its
// own: each line decoded by encoding/json, the whole file's events held,
// then put in sessions. It keeps of each server message its skeleton, as
// ReadCorpus does, so that the two must return the same.
func readCorpusJSON(r io.Reader) (*loadtest.Corpus, error) {
	br := bufio.NewReader(r)
	bySession := map[session.ID][]session.Event{}
	var order []session.ID
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(b) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var j session.JSON
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		if j.Kind == "" {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(b, &e) == nil && e.Error != "" {
				return nil, fmt.Errorf("read corpus line %d: the cache reported an error: %s", line, e.Error)
			}
		}
		ev, err := j.Event()
		if err != nil {
			return nil, fmt.Errorf("read corpus line %d: %w", line, err)
		}
		if ev.Kind == session.KindFrame && ev.Direction == session.ServerToClient && ev.Payload != nil {
			ev.Payload = append([]byte{}, protocol.ServerSkeleton(nil, ev.Payload)...)
		}
		if _, ok := bySession[ev.Session]; !ok {
			order = append(order, ev.Session)
		}
		bySession[ev.Session] = append(bySession[ev.Session], ev)
	}
	c := &loadtest.Corpus{}
	for _, id := range order {
		evs := bySession[id]
		slices.SortStableFunc(evs, func(a, b session.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		evs = slices.CompactFunc(evs, func(a, b session.Event) bool { return a.Seq == b.Seq })
		if evs[0].Kind != session.KindOpen || evs[0].Open == nil {
			c.Dropped++
			continue
		}
		c.Sessions = append(c.Sessions, evs)
	}
	c.Rate = loadtest.ArrivalRate(c.Sessions)
	return c, nil
}

// checkReadCorpus fails unless ReadCorpus returns what readCorpusJSON
// does: the same corpus, or the same error.
func checkReadCorpus(t *testing.T, in []byte) *loadtest.Corpus {
	t.Helper()
	got, err := loadtest.ReadCorpus(bytes.NewReader(in))
	want, wantErr := readCorpusJSON(bytes.NewReader(in))
	switch {
	case err != nil || wantErr != nil:
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%.300q: error %v, encoding/json's reader %v", in, err, wantErr)
		}
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%.300q: ReadCorpus and encoding/json's reader differ:\n%+v\n%+v", in, got, want)
	}
	return got
}

// mixedCorpus is a corpus of every kind of line: sessions of results and
// updates, one whole, one interleaved with duplicates and out of order,
// one without its open event, binary and empty payloads, a header.
func mixedCorpus(t testing.TB) []byte {
	g := corpus.New(9)
	start := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	a, b, c := g.Session(start, 5), g.Session(start.Add(time.Second), 4), g.Session(start.Add(2*time.Second), 3)
	a[0].Open.Header = map[string][]string{"Origin": {"https://app.example"}, "X-Empty": {}}
	b[2].Opcode, b[2].Payload = session.Binary, []byte{0, 0xff, '"'}
	b[3].Payload = nil
	a[1].Payload = []byte{}
	var in bytes.Buffer
	in.Write(jsonLines(t, a...))
	in.WriteString("\n  \r\n")
	in.Write(jsonLines(t, b[2], b[0], b[1], b[1]))
	in.Write(jsonLines(t, c[1:]...))
	in.Write(jsonLines(t, b[3:]...))
	in.Write(jsonLines(t, b[2]))
	return in.Bytes()
}

func TestReadCorpusAgreesWithEncodingJSON(t *testing.T) {
	in := mixedCorpus(t)
	c := checkReadCorpus(t, in)
	if len(c.Sessions) != 2 || c.Dropped != 1 {
		t.Fatalf("%d sessions, %d dropped; want 2, 1", len(c.Sessions), c.Dropped)
	}
	checkReadCorpus(t, pacedCorpus(t, 3, 20))
	checkReadCorpus(t, bytes.TrimSuffix(in, []byte("\n")))
	for _, bad := range []string{"not json", `{"error":"cache stopped"}`, `{"kind":"frame","direction":"up","opcode":"text"}`,
		`{"session":"00112233445566778899aabbccddeeff","seq":1,"kind":"frame","direction":"client","opcode":"text","payload":"\x"}`,
		`{"session":"00112233445566778899aabbccddeeff","seq":1,"kind":"frame","direction":"client","opcode":"text","payload_hex":"0"}`} {
		checkReadCorpus(t, append(append([]byte{}, in...), bad...))
	}
}

// TestReadCorpusKeepsClientMessagesAndServerSkeletons checks what a
// corpus holds of each frame: the client's messages as recorded, the
// server's as their skeletons.
func TestReadCorpusKeepsClientMessagesAndServerSkeletons(t *testing.T) {
	evs := corpus.New(5).Session(time.Now().Add(-time.Minute), 6)
	c, err := loadtest.ReadCorpus(bytes.NewReader(jsonLines(t, evs...)))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sessions[0]
	if len(got) != len(evs) {
		t.Fatalf("%d events, want %d", len(got), len(evs))
	}
	server := 0
	for i := range evs {
		want := evs[i].Payload
		if evs[i].Direction == session.ServerToClient {
			want = protocol.ServerSkeleton(nil, want)
			server++
		}
		if string(got[i].Payload) != string(want) {
			t.Errorf("event %d: payload %q, want %q", i, got[i].Payload, want)
		}
	}
	if server == 0 {
		t.Fatal("no server messages")
	}
}

// TestReadCorpusMemoryIsLinearInRepeatedCloses reads a session followed
// by its close event 5,000 times more: a reader that copied the session at
// each close would allocate 5,000 times its size (1.4 GB), not a few MB.
func TestReadCorpusMemoryIsLinearInRepeatedCloses(t *testing.T) {
	evs := sessions(1, 2, 1)[0]
	in := jsonLines(t, evs...)
	in = append(in, bytes.Repeat(jsonLines(t, evs[len(evs)-1]), 5000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := loadtest.ReadCorpus(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if err != nil || len(c.Sessions) != 1 || len(c.Sessions[0]) != len(evs) {
		t.Fatalf("%v, %+v", err, c)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Fatalf("reading %d bytes allocated %d MB", len(in), n>>20)
	}
}

func FuzzReadCorpus(f *testing.F) {
	ss := sessions(2, 2, 1)
	f.Add(jsonLines(f, ss[0]...))
	f.Add(append(jsonLines(f, ss[1][1:]...), "\n{\"error\":\"x\"}"...))
	f.Add([]byte(`{"session":"00000000000000000000000000000000","seq":0,"kind":"open"}`))
	f.Add(mixedCorpus(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := checkReadCorpus(t, b)
		if c == nil {
			return
		}
		for _, evs := range c.Sessions {
			if len(evs) == 0 || evs[0].Kind != session.KindOpen || evs[0].Open == nil {
				t.Fatalf("a session without its open event: %+v", evs)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq <= evs[i-1].Seq {
					t.Fatalf("events out of order")
				}
			}
		}
		if c.Rate < 0 || c.Rate != c.Rate {
			t.Fatalf("rate %v", c.Rate)
		}
	})
}

// writeEventLog writes n sessions of results and updates to a directory
// log, an event a record (the cache puts each session together), started
// 500ms apart a minute ago, and returns them by id.
func writeEventLog(t *testing.T, dir string, n int) map[session.ID][]session.Event {
	t.Helper()
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	g := corpus.New(3)
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	out := map[session.ID][]session.Event{}
	for i := range n {
		evs := g.Session(start.Add(time.Duration(i)*500*time.Millisecond), 4)
		out[evs[0].Session] = evs
		for j := range evs {
			b, err := session.AppendBatch(nil, evs[j:j+1])
			if err == nil {
				err = p.Put(context.Background(), evs[j].Session.String(), b)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkKept fails unless every loaded session is one of want, whole, with
// the client's payloads as recorded and the server's as their skeletons.
func checkKept(t *testing.T, got [][]session.Event, want map[session.ID][]session.Event) {
	t.Helper()
	for _, evs := range got {
		w := want[evs[0].Session]
		if len(evs) != len(w) {
			t.Fatalf("session %s: %d events, want %d", evs[0].Session, len(evs), len(w))
		}
		for i := range w {
			p := w[i].Payload
			if w[i].Direction == session.ServerToClient {
				p = protocol.ServerSkeleton(nil, p)
			}
			if evs[i].Seq != w[i].Seq || evs[i].Kind != w[i].Kind || string(evs[i].Payload) != string(p) {
				t.Fatalf("session %s event %d: %+v, want payload %q of %+v", evs[0].Session, i, evs[i], p, w[i])
			}
		}
	}
}

// TestLoadStream reassembles sessions written event by event to a
// directory log, and keeps of them what ReadCorpus keeps.
func TestLoadStream(t *testing.T) {
	dir := t.TempDir()
	const n = 12
	want := writeEventLog(t, dir, n)
	cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := loadtest.LoadStream(ctx, cons, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sessions) != n || c.Rate < 1.99 || c.Rate > 2.01 {
		t.Fatalf("%d sessions at %v/s, want %d at 2/s", len(c.Sessions), c.Rate, n)
	}
	checkKept(t, c.Sessions, want)
}

// TestLoadCache reads sessions from a replay cache served over HTTP, and
// keeps of them what ReadCorpus keeps.
func TestLoadCache(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	want := writeEventLog(t, dir, n)
	cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cache := replaycache.New(cons, &replaycache.Options{Logger: quiet})
	if err := cache.Run(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(replaycache.NewServer(cache, &replaycache.ServerOptions{Logger: quiet}))
	defer srv.Close()
	client, err := replaycache.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadtest.LoadCache(ctx, client, replaycache.SelectRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sessions) != n || c.Rate < 1.99 || c.Rate > 2.01 {
		t.Fatalf("%d sessions at %v/s, want %d at 2/s", len(c.Sessions), c.Rate, n)
	}
	checkKept(t, c.Sessions, want)
}

// writeOldLog writes n sessions to a directory log as a tap that ran at
// then would have: connected 500ms apart from then, appended then.
func writeOldLog(t *testing.T, dir string, then time.Time, n int) {
	t.Helper()
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: quiet, MaxAge: -1, Now: func() time.Time { return then }})
	if err != nil {
		t.Fatal(err)
	}
	g := corpus.New(4)
	for i := range n {
		evs := g.Session(then.Add(time.Duration(i)*500*time.Millisecond), 3)
		b, err := session.AppendBatch(nil, evs)
		if err == nil {
			err = p.Put(context.Background(), evs[0].Session.String(), b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLoadStreamReadsAWholeOldLog loads a directory log whose records and
// sessions are three hours old: the default window finds none of them, a
// negative one every one.
func TestLoadStreamReadsAWholeOldLog(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	writeOldLog(t, dir, time.Now().Add(-3*time.Hour).Truncate(time.Microsecond), n)
	load := func(window time.Duration, from time.Time) int {
		t.Helper()
		cons, err := dirlog.NewConsumer(dir, stream.Start{Time: from, StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		c, err := loadtest.LoadStream(t.Context(), cons, &loadtest.StreamOptions{Window: window})
		if err != nil {
			t.Fatal(err)
		}
		return len(c.Sessions)
	}
	if got := load(0, time.Now().Add(-15*time.Minute)); got != 0 {
		t.Fatalf("the default 15m window of a 3h old log found %d sessions, want none", got)
	}
	// The consumer from the oldest record, the window left at its default.
	if got := load(0, time.Time{}); got != 0 {
		t.Fatalf("a consumer from the oldest record, default window: %d sessions, want none (older than 15m)", got)
	}
	if got := load(-1, time.Time{}); got != n {
		t.Fatalf("the whole log: %d sessions, want %d", got, n)
	}
}

// pacedCorpus returns the JSON lines of n paced sessions of q queries,
// each query's recorded result 1ms after it, as bench/loadgen writes them.
func pacedCorpus(tb testing.TB, n, q int) []byte {
	var b bytes.Buffer
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range n {
		evs := corpus.New(uint64(1+i)).PacedSession(start.Add(time.Duration(i)*time.Millisecond),
			time.Duration(i)*50*time.Millisecond/time.Duration(n), 50*time.Millisecond, q, true)
		b.Write(jsonLines(tb, evs...))
	}
	return b.Bytes()
}

// BenchmarkReadCorpus reads a corpus of 20 paced sessions of 600 queries
// and their recorded results (25 MB of JSON lines, what bench/loadgen
// writes with --sessions 20), and with /plan also plans it for a run as
// loadtest.New does: the CPU and memory a load test spends before its
// first session.
func BenchmarkReadCorpus(b *testing.B) {
	data := pacedCorpus(b, 20, 600)
	for _, plan := range []bool{false, true} {
		name := "read"
		if plan {
			name = "plan"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				c, err := loadtest.ReadCorpus(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if plan {
					if _, err := loadtest.New(c, "ws://127.0.0.1:1", &loadtest.Options{Concurrency: 1, Logger: quiet}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
