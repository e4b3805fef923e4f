package loadtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/loadtest"
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

func FuzzReadCorpus(f *testing.F) {
	ss := sessions(2, 2, 1)
	f.Add(jsonLines(f, ss[0]...))
	f.Add(append(jsonLines(f, ss[1][1:]...), "\n{\"error\":\"x\"}"...))
	f.Add([]byte(`{"session":"00000000000000000000000000000000","seq":0,"kind":"open"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := loadtest.ReadCorpus(bytes.NewReader(b))
		if err != nil {
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

// TestLoadStream reassembles sessions written event by event to a
// directory log.
func TestLoadStream(t *testing.T) {
	dir := t.TempDir()
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	g := corpus.New(3)
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	const n = 12
	for i := range n {
		// One record per event: the cache puts each session together.
		evs := g.Session(start.Add(time.Duration(i)*500*time.Millisecond), 4)
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
	for _, evs := range c.Sessions {
		if evs[0].Kind != session.KindOpen || evs[len(evs)-1].Kind != session.KindClose {
			t.Fatalf("session %s not whole", evs[0].Session)
		}
	}
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
