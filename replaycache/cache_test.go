package replaycache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// settle lets the producer write and the cache read what was put. Inside a
// bubble the sleep takes no real time.
func settle(t *testing.T, p *dirlog.Producer) {
	t.Helper()
	flush(t, p)
	time.Sleep(200 * time.Millisecond)
	synctest.Wait()
}

// Batches are put out of order, duplicated and overlapping, across
// partitions: every session comes out whole, in order, once.
func TestReassembly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, nil)
		rng := rand.New(rand.NewPCG(1, 2))
		sessions := corpusSessions(1, time.Now(), 40, 15)
		var all [][]session.Event
		dups := 0
		for _, evs := range sessions {
			bs := batches(rng, evs, 6)
			for i, b := range bs {
				all = append(all, b)
				if rng.IntN(5) == 0 { // an exact duplicate
					all = append(all, b)
					dups += len(b)
				}
				if i+1 < len(bs) && rng.IntN(4) == 0 { // overlapping the next batch
					ov := append(slices.Clone(b[len(b)/2:]), bs[i+1][:1]...)
					all = append(all, ov)
					dups += len(ov)
				}
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, b := range all {
			put(t, p, b)
		}
		settle(t, p)

		st := c.Status()
		if st.Sessions != len(sessions) || st.Live != 0 || st.Truncated != 0 || st.Orphans != 0 {
			t.Fatalf("status %+v, want %d complete sessions", st, len(sessions))
		}
		for _, want := range sessions {
			v, ok := c.Get(want[0].Session)
			if !ok {
				t.Fatalf("session %s not cached", want[0].Session)
			}
			if !v.Complete || v.Truncated {
				t.Errorf("session %s: complete %v truncated %v", v.ID, v.Complete, v.Truncated)
			}
			sameEvents(t, decodeView(t, v), want)
		}
		if got := c.counter("preheat_cache_duplicates_total"); got != dups {
			t.Errorf("duplicates %d, want %d", got, dups)
		}
		if got := c.counter("preheat_cache_gaps_cut_total"); got != 0 {
			t.Errorf("gaps cut %d", got)
		}
	})
}

// A missing batch cuts its session at the gap after GapWait, not before.
func TestGapCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		const gapWait = 5 * time.Second
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{GapWait: gapWait})
		evs := corpusSessions(2, time.Now(), 1, 20)[0]
		put(t, p, evs[:10])
		put(t, p, evs[15:])
		settle(t, p)

		v, ok := c.Get(evs[0].Session)
		if !ok || v.Truncated || v.Complete || v.Events != 10 {
			t.Fatalf("before GapWait: %+v", v.Summary)
		}
		time.Sleep(gapWait + time.Second) // GapWait and a tick
		synctest.Wait()
		v, ok = c.Get(evs[0].Session)
		if !ok || !v.Truncated || v.Complete || v.Events != 10 {
			t.Fatalf("after GapWait: %+v", v.Summary)
		}
		sameEvents(t, decodeView(t, v), evs[:10])

		// The missing events arrive late: they are dropped, not appended.
		put(t, p, evs[10:15])
		settle(t, p)
		if v, _ := c.Get(evs[0].Session); v.Events != 10 {
			t.Errorf("late events appended: %+v", v.Summary)
		}
		if got := c.counter("preheat_cache_gaps_cut_total"); got != 1 {
			t.Errorf("gaps cut %d, want 1", got)
		}
		want := len(evs) - 10 // held after the gap, then the late ones
		if got := c.counter(`preheat_cache_events_dropped_total{reason="gap"}`); got != want {
			t.Errorf("dropped at gap %d, want %d", got, want)
		}
		if l := c.List(replaycache.Filter{CompleteOnly: true}); len(l) != 0 {
			t.Errorf("CompleteOnly listed a truncated session: %+v", l)
		}
	})
}

// Events of a session whose connect never comes are never served; a connect
// that comes late, within GapWait, is.
func TestNoConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		const gapWait = 5 * time.Second
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{GapWait: gapWait})
		ss := corpusSessions(3, time.Now(), 2, 10)
		orphan, late := ss[0], ss[1]
		put(t, p, orphan[1:])
		put(t, p, late[5:])
		put(t, p, late[1:5])
		settle(t, p)
		if st := c.Status(); st.Sessions != 0 || st.Orphans != 2 {
			t.Fatalf("status %+v, want 2 orphans", st)
		}
		time.Sleep(gapWait / 2)
		put(t, p, late[:1])
		settle(t, p)
		time.Sleep(gapWait + time.Second)
		synctest.Wait()

		if _, ok := c.Get(orphan[0].Session); ok {
			t.Error("session without connect is served")
		}
		v, ok := c.Get(late[0].Session)
		if !ok || !v.Complete {
			t.Fatalf("late connect: %+v %v", v.Summary, ok)
		}
		sameEvents(t, decodeView(t, v), late)
		if got := c.counter("preheat_cache_no_connect_total"); got != 1 {
			t.Errorf("no connect %d, want 1", got)
		}
		if got := c.counter(`preheat_cache_events_dropped_total{reason="no_connect"}`); got != len(orphan)-1 {
			t.Errorf("dropped without connect %d, want %d", got, len(orphan)-1)
		}
		// The orphan's connect and later events are dropped too.
		put(t, p, orphan[:1])
		settle(t, p)
		if _, ok := c.Get(orphan[0].Session); ok {
			t.Error("session served after its events were dropped")
		}
		if st := c.Status(); st.Sessions != 1 || st.Orphans != 0 || st.OrphanBytes != 0 {
			t.Errorf("status %+v", st)
		}
	})
}

// Sessions whose connect leaves the window are evicted even while they
// still receive events, and their later events are not kept.
func TestWindowEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		const window = time.Minute
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{Window: window, GapWait: time.Second})
		t0 := time.Now()
		a := opSession(t0, "/sync", "a", "b", "c", "d")
		put(t, p, a[:3])
		settle(t, p)
		time.Sleep(window / 2)
		b := opSession(time.Now(), "/sync", "a")
		put(t, p, b)
		put(t, p, a[3:5])
		settle(t, p)
		if st := c.Status(); st.Sessions != 2 || st.Live != 1 {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(window/2 + time.Second)
		synctest.Wait()
		if _, ok := c.Get(a[0].Session); ok {
			t.Fatal("session older than the window still cached")
		}
		if _, ok := c.Get(b[0].Session); !ok {
			t.Fatal("session inside the window evicted")
		}
		put(t, p, a[5:])
		settle(t, p)
		if _, ok := c.Get(a[0].Session); ok {
			t.Fatal("evicted session came back")
		}
		if got := c.counter(`preheat_cache_evictions_total{reason="age"}`); got != 1 {
			t.Errorf("age evictions %d, want 1", got)
		}
		if got := c.counter("preheat_cache_no_connect_total"); got != 0 {
			t.Errorf("no connect %d, want 0", got)
		}
		st := c.Status()
		if !st.Oldest.Equal(b[0].Open.Start) || st.Sessions != 1 {
			t.Errorf("status %+v", st)
		}
	})
}

// Past MaxBytes the least recently used sessions go first.
func TestSizeEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ss := corpusSessions(4, time.Now(), 4, 30)
		// Measure each session's footprint in a cache large enough.
		dir, p := newLog(t, nil)
		big := startCache(t, dir, stream.Start{}, nil)
		for _, s := range ss {
			put(t, p, s)
		}
		settle(t, p)
		size := make([]int64, len(ss))
		for i, s := range ss {
			v, ok := big.Get(s[0].Session)
			if !ok {
				t.Fatal("not cached")
			}
			size[i] = v.Bytes
		}

		dir, p = newLog(t, nil)
		max := size[0] + size[2] + size[3]
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{MaxBytes: max})
		for _, s := range ss[:3] {
			put(t, p, s)
			settle(t, p)
		}
		c.Get(ss[0][0].Session) // now used more recently than 1
		put(t, p, ss[3])
		settle(t, p)
		for i, want := range []bool{true, false, true, true} {
			if _, ok := c.Get(ss[i][0].Session); ok != want {
				t.Errorf("session %d cached %v, want %v", i, ok, want)
			}
		}
		if got := c.counter(`preheat_cache_evictions_total{reason="size"}`); got != 1 {
			t.Errorf("size evictions %d, want 1", got)
		}
		if st := c.Status(); st.Bytes > max {
			t.Errorf("bytes %d, max %d", st.Bytes, max)
		}
	})
}

// A live session is followed while the producer appends to it, and a slow
// follower holds up nobody.
func TestFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, nil)
		evs := corpusSessions(5, time.Now(), 1, 40)[0]
		id := evs[0].Session
		put(t, p, evs[:5])
		settle(t, p)

		var wg sync.WaitGroup
		var fast []session.Event
		var calls int
		wg.Go(func() {
			err := c.Follow(context.Background(), id, 0, func(b replaycache.Batch) error {
				calls++
				var err error
				fast, err = session.DecodeBatch(b.Data, fast)
				return err
			})
			if err != nil {
				t.Errorf("Follow: %v", err)
			}
		})
		release := make(chan struct{})
		var slow []session.Event
		wg.Go(func() {
			err := c.Follow(context.Background(), id, 3, func(b replaycache.Batch) error {
				<-release
				var err error
				slow, err = session.DecodeBatch(b.Data, slow)
				return err
			})
			if err != nil {
				t.Errorf("slow Follow: %v", err)
			}
		})
		synctest.Wait()
		rng := rand.New(rand.NewPCG(5, 5))
		for _, b := range batches(rng, evs[5:], 8) {
			put(t, p, b)
			settle(t, p)
		}
		// The slow follower has not taken its first batch: ingestion went on.
		others := corpusSessions(6, time.Now(), 20, 5)
		for _, s := range others {
			put(t, p, s)
		}
		settle(t, p)
		if st := c.Status(); st.Sessions != 21 || st.Live != 0 || st.Followers != 1 {
			t.Fatalf("status while a follower is stuck: %+v", st)
		}
		close(release)
		wg.Wait()
		sameEvents(t, fast, evs)
		sameEvents(t, slow, evs[3:])
		if calls < 3 {
			t.Errorf("fast follower called %d times: not live", calls)
		}
		// Followers cut the live session into small batches; once complete
		// it is compacted.
		v, _ := c.Get(id)
		if len(v.Batches) > 2 {
			t.Errorf("followed session in %d batches after its close", len(v.Batches))
		}
		sameEvents(t, decodeView(t, v), evs)
		var late []session.Event
		err := c.Follow(context.Background(), id, 17, func(b replaycache.Batch) error {
			var err error
			late, err = session.DecodeBatch(b.Data, late)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sameEvents(t, late, evs[17:])
		if err := c.Follow(context.Background(), session.NewID(), 0, nil); !errors.Is(err, replaycache.ErrNotFound) {
			t.Errorf("Follow of an unknown session: %v", err)
		}
	})
}

// A follower of a session that is evicted is told so.
func TestFollowEvicted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{Window: time.Minute})
		evs := opSession(time.Now(), "/sync", "a", "b")
		put(t, p, evs[:2])
		settle(t, p)
		err := c.Follow(context.Background(), evs[0].Session, 0, func(replaycache.Batch) error { return nil })
		if !errors.Is(err, replaycache.ErrEvicted) {
			t.Errorf("Follow: %v, want ErrEvicted", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Follow(ctx, session.NewID(), 0, nil); !errors.Is(err, replaycache.ErrNotFound) {
			t.Errorf("Follow: %v", err)
		}
	})
}

// A cache restarted at now - Window over the same log rebuilds the same
// sessions; sessions whose connect is older are not counted as missing it.
func TestRestart(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t0 time.Time) { mu.Lock(); now = t0; mu.Unlock() }
	end := now
	dir, p := newLog(t, &dirlog.ProducerOptions{Partitions: 4, Now: clock})

	// Thirty sessions connecting a minute apart over the last half hour,
	// each lasting two minutes, put as the tap would, in time order.
	type rec struct {
		at  time.Time
		evs []session.Event
	}
	var recs []rec
	rng := rand.New(rand.NewPCG(7, 7))
	ss := corpusSessions(7, time.Time{}, 30, 6)
	for i, evs := range ss {
		start := end.Add(-30*time.Minute + time.Duration(i)*time.Minute)
		evs[0].Open.Start = start
		for j := range evs {
			evs[j].Offset = (time.Duration(j) * 2 * time.Minute / time.Duration(len(evs))).Truncate(time.Microsecond)
		}
		for _, b := range batches(rng, evs, 4) {
			recs = append(recs, rec{at: start.Add(b[len(b)-1].Offset + time.Second), evs: b})
		}
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return a.at.Compare(b.at) })
	for _, r := range recs {
		set(r.at)
		put(t, p, r.evs)
		flush(t, p)
	}
	set(end)

	const window = 15 * time.Minute
	opts := &replaycache.Options{Window: window, Now: clock}
	var got [2][]replaycache.Summary
	for i := range got {
		c := startCache(t, dir, stream.Start{Time: end.Add(-window), StopAtEnd: true}, opts)
		c.wait(t)
		got[i] = c.List(replaycache.Filter{})
		if n := c.counter("preheat_cache_no_connect_total"); n != 0 {
			t.Errorf("cache %d: no connect %d", i, n)
		}
		if n := c.counter(`preheat_cache_events_dropped_total{reason="outside_window"}`); n == 0 {
			t.Errorf("cache %d: nothing dropped outside the window", i)
		}
		for _, want := range ss[15:] {
			v, ok := c.Get(want[0].Session)
			if !ok {
				t.Fatalf("cache %d: session connected at %v not cached", i, want[0].Open.Start)
			}
			sameEvents(t, decodeView(t, v), want)
		}
	}
	if len(got[0]) != 15 {
		t.Fatalf("%d sessions, want 15", len(got[0]))
	}
	for i := range got[0] {
		a, b := got[0][i], got[1][i]
		if a.ID != b.ID || a.Events != b.Events || !a.Complete || !b.Complete {
			t.Errorf("session %d: %+v and %+v", i, a, b)
		}
	}
}

// Corrupt records are counted and skipped; the sessions around them are
// whole.
func TestCorruptRecords(t *testing.T) {
	dir, p := newLog(t, nil)
	ss := corpusSessions(8, time.Now(), 10, 10)
	rng := rand.New(rand.NewPCG(8, 8))
	corrupt := 0
	for _, s := range ss {
		for _, b := range batches(rng, s, 5) {
			put(t, p, b)
			data, _ := session.AppendBatch(nil, b)
			switch rng.IntN(4) {
			case 0:
				data[len(data)-1] ^= 0x40
			case 1:
				data = data[:len(data)/2]
			case 2:
				data = []byte("not a batch at all")
			default:
				continue
			}
			if err := p.Put(context.Background(), s[0].Session.String(), data); err != nil {
				t.Fatal(err)
			}
			corrupt++
		}
	}
	flush(t, p)
	c := startCache(t, dir, stream.Start{StopAtEnd: true}, nil)
	c.wait(t)
	if got := c.counter("preheat_cache_records_corrupt_total"); got != corrupt {
		t.Errorf("corrupt %d, want %d", got, corrupt)
	}
	for _, want := range ss {
		v, ok := c.Get(want[0].Session)
		if !ok || !v.Complete {
			t.Fatalf("session %s: %+v", want[0].Session, v.Summary)
		}
		sameEvents(t, decodeView(t, v), want)
	}
}

// Coverage picks the sessions that add most uncovered kinds first; filters
// and limits are honoured and no session comes twice.
func TestSelect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		// Every kind counts, even one session's: TestOneSessionCannotSteerCoverage
		// checks the default.
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{MinKindSessions: 1})
		old := opSession(time.Now(), "/sync?v=1", "a", "z")
		put(t, p, old)
		settle(t, p)
		time.Sleep(time.Minute)
		now := time.Now()
		s1 := opSession(now, "/sync?v=1", "a")
		s2 := opSession(now.Add(time.Second), "/sync?v=2", "a", "b")
		s3 := opSession(now.Add(2*time.Second), "/sync?v=1", "c", "d", "e", "f", "m")
		s4 := opSession(now.Add(3*time.Second), "/sync?v=1", "a", "b", "c")
		other := opSession(now.Add(4*time.Second), "/other", "x", "y", "w", "v", "u")
		live := opSession(now.Add(5*time.Second), "/sync?v=1", "g", "h", "i", "j", "k", "l")
		for _, s := range [][]session.Event{s1, s2, s3, s4, other, live[:len(live)-1]} {
			put(t, p, s)
		}
		settle(t, p)
		idOf := func(s []session.Event) session.ID { return s[0].Session }
		ids := func(refs []replaycache.SessionRef) []session.ID {
			var out []session.ID
			for _, r := range refs {
				out = append(out, r.ID)
			}
			return out
		}
		base := replaycache.Filter{Route: "/sync", CompleteOnly: true, MaxAge: 30 * time.Second}

		seconds := map[session.ID]bool{}
		for range 40 {
			refs := c.Select(replaycache.SelectRequest{Filter: base, Mode: replaycache.Coverage})
			if len(refs) > 1 {
				seconds[refs[1].ID] = true
			}
			if len(refs) != 4 {
				t.Fatalf("coverage: %d sessions, want 4", len(refs))
			}
			if refs[0].ID != idOf(s3) || !slices.Equal(refs[0].NewKinds, []string{"c", "d", "e", "f", "m"}) {
				t.Fatalf("coverage first %+v, want s3", refs[0])
			}
			if (refs[1].ID != idOf(s2) && refs[1].ID != idOf(s4)) || !slices.Equal(refs[1].NewKinds, []string{"a", "b"}) {
				t.Fatalf("coverage second %+v, want s2 or s4 adding a, b", refs[1])
			}
			got := ids(refs)
			slices.SortFunc(got, func(a, b session.ID) int { return slices.Compare(a[:], b[:]) })
			if len(slices.Compact(got)) != 4 {
				t.Fatalf("coverage returned a session twice: %v", refs)
			}
		}
		if len(seconds) != 2 {
			t.Errorf("coverage always picks the same of two equal sessions")
		}
		refs := c.Select(replaycache.SelectRequest{Filter: base, Mode: replaycache.Coverage,
			Covered: []string{"c", "d", "e", "f", "m", "a"}, Exclude: []session.ID{idOf(s4)}})
		if len(refs) != 3 || refs[0].ID != idOf(s2) || !slices.Equal(refs[0].NewKinds, []string{"b"}) {
			t.Errorf("coverage with covered kinds: %+v", refs)
		}
		f := base
		f.Limit = 2
		if got := ids(c.Select(replaycache.SelectRequest{Filter: f, Mode: replaycache.Newest})); !slices.Equal(got, []session.ID{idOf(s4), idOf(s3)}) {
			t.Errorf("newest: %v", got)
		}
		f = replaycache.Filter{MinClientFrames: 5}
		if got := ids(c.Select(replaycache.SelectRequest{Filter: f, Mode: replaycache.Random})); len(got) != 3 ||
			!slices.Contains(got, idOf(other)) || !slices.Contains(got, idOf(live)) || !slices.Contains(got, idOf(s3)) {
			t.Errorf("random with min frames: %v", got)
		}
		if got := c.Select(replaycache.SelectRequest{Mode: replaycache.Random, Filter: replaycache.Filter{Limit: 100}}); len(got) != 7 {
			t.Errorf("random, no filter: %d sessions, want 7", len(got))
		}
		if l := c.List(replaycache.Filter{Route: "/other"}); len(l) != 1 || l[0].ID != idOf(other) || l[0].ClientFrames != 5 ||
			len(l[0].Kinds) != 5 || l[0].Kinds[0] != (replaycache.KindCount{Kind: "u", Count: 1}) {
			t.Errorf("list /other: %+v", l)
		}
		st := c.Status()
		if st.Routes["/sync"] != 6 || st.Routes["/other"] != 1 || st.Kinds["a"] != 4 || st.Live != 1 {
			t.Errorf("status %+v", st)
		}
		if len(st.Partitions) == 0 {
			t.Error("no partition in status")
		}
	})
}

func TestParseMode(t *testing.T) {
	f := func(s string, want replaycache.Mode, ok bool) {
		t.Helper()
		m, err := replaycache.ParseMode(s)
		if m != want || (err == nil) != ok {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	f("", replaycache.Coverage, true)
	f("newest", replaycache.Newest, true)
	f("random", replaycache.Random, true)
	f("coverage", replaycache.Coverage, true)
	f("oldest", "", false)
}

// Reading a live session gives every event so far, without cutting it into
// small batches.
func TestGetLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, nil)
		evs := corpusSessions(10, time.Now(), 1, 30)[0]
		rng := rand.New(rand.NewPCG(10, 10))
		got := 0
		for _, b := range batches(rng, evs[:len(evs)-1], 6) {
			put(t, p, b)
			settle(t, p)
			got += len(b)
			for range 3 {
				v, ok := c.Get(evs[0].Session)
				if !ok || v.Complete {
					t.Fatalf("live session: %+v", v.Summary)
				}
				sameEvents(t, decodeView(t, v), evs[:got])
			}
		}
		put(t, p, evs[len(evs)-1:])
		settle(t, p)
		v, _ := c.Get(evs[0].Session)
		if !v.Complete || len(v.Batches) > 2 {
			t.Errorf("complete %v in %d batches", v.Complete, len(v.Batches))
		}
		sameEvents(t, decodeView(t, v), evs)
	})
}

// Events of sessions without a connect are held within MaxOrphanBytes.
func TestOrphanBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		const bound = 64 << 10
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{MaxOrphanBytes: bound})
		ss := corpusSessions(11, time.Now(), 40, 10)
		for _, s := range ss {
			put(t, p, s[1:])
		}
		settle(t, p)
		st := c.Status()
		if st.OrphanBytes > bound || st.Orphans == 0 || st.Orphans == len(ss) || st.Sessions != 0 {
			t.Errorf("status %+v", st)
		}
		if got := c.counter("preheat_cache_no_connect_total"); got != len(ss)-st.Orphans {
			t.Errorf("no connect %d, want %d", got, len(ss)-st.Orphans)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if st := c.Status(); st.Orphans != 0 || st.OrphanBytes != 0 {
			t.Errorf("after GapWait: %+v", st)
		}
		if got := c.counter("preheat_cache_no_connect_total"); got != len(ss) {
			t.Errorf("no connect %d, want %d", got, len(ss))
		}
	})
}

// A session with 200 made-up op values is not what warmers are served
// first: its kinds are held by no other session, so they do not count for
// coverage, and it may add only MaxNewKindsPerSession kinds to the table.
// Kinds that three sessions hold are covered.
func TestOneSessionCannotSteerCoverage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, nil)
		now := time.Now()
		made := make([]string, 200)
		for i := range made {
			made[i] = fmt.Sprintf("made.up.%03d", i)
		}
		steer := opSession(now, "/sync", made...)
		put(t, p, steer)
		for i, ops := range [][]string{
			{"tasks.list", "user.me", "inbox.list"},
			{"tasks.list", "user.me", "inbox.list", "goals.progress"},
			{"tasks.list", "inbox.list", "projects.get"},
			{"user.me", "projects.get", "goals.progress"},
			{"tasks.list", "projects.get"},
			{"user.me"},
		} {
			put(t, p, opSession(now.Add(time.Duration(i+1)*time.Second), "/sync", ops...))
		}
		settle(t, p)

		want := []string{"inbox.list", "projects.get", "tasks.list", "user.me"} // held by 3 or more
		for range 40 {
			refs := c.Select(replaycache.SelectRequest{Mode: replaycache.Coverage})
			if len(refs) != 7 {
				t.Fatalf("coverage: %d sessions, want 7", len(refs))
			}
			if refs[0].ID == steer[0].Session {
				t.Fatalf("coverage served the made-up session first: %+v", refs[0])
			}
			var covered []string
			for _, r := range refs {
				if r.ID == steer[0].Session && len(r.NewKinds) > 0 {
					t.Fatalf("made-up session adds %q", r.NewKinds)
				}
				covered = append(covered, r.NewKinds...)
			}
			slices.Sort(covered)
			if !slices.Equal(covered, want) {
				t.Fatalf("coverage covers %q, want %q", covered, want)
			}
		}

		// The made-up kinds still show, up to the session's share of the
		// table; the rest count as other.
		const perSession = 64 // the default MaxNewKindsPerSession
		l := c.List(replaycache.Filter{Route: "/sync", MinClientFrames: 200})
		if len(l) != 1 || len(l[0].Kinds) != perSession+1 {
			t.Fatalf("made-up session listed as %+v", l)
		}
		st := c.Status()
		if st.Kinds["other"] != int64(len(made)-perSession) || st.Kinds["made.up.000"] != 1 || st.Kinds["goals.progress"] != 2 {
			t.Errorf("status kinds %v", st.Kinds)
		}
		if got := c.counter(`preheat_cache_messages_kind_other_total{reason="session_limit"}`); got != len(made)-perSession {
			t.Errorf("other for the session limit %d, want %d", got, len(made)-perSession)
		}
	})
}

// A session's coverage score counts at most MaxSessionWeight new kinds: a
// session with 12 is not preferred to one with 9.
func TestCoverageCapsSessionWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{MinKindSessions: 1})
		now := time.Now()
		ops := func(prefix string, n int) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = fmt.Sprintf("%s.%d", prefix, i)
			}
			return out
		}
		wide := opSession(now, "/sync", ops("a", 12)...)
		narrow := opSession(now.Add(time.Second), "/sync", ops("b", 9)...)
		put(t, p, wide)
		put(t, p, narrow)
		settle(t, p)
		firsts := map[session.ID]bool{}
		for range 40 {
			refs := c.Select(replaycache.SelectRequest{Mode: replaycache.Coverage})
			if len(refs) != 2 || len(refs[0].NewKinds)+len(refs[1].NewKinds) != 21 {
				t.Fatalf("coverage: %+v", refs)
			}
			firsts[refs[0].ID] = true
		}
		if len(firsts) != 2 {
			t.Error("the session with more kinds is always first")
		}
	})
}

// A record past the decoding bounds (a few kilobytes of zstd declaring
// millions of empty events) is counted as corrupt and skipped like any
// other; the cache goes on with the sessions around it.
func TestRecordsPastDecodeBoundsAreCountedCorrupt(t *testing.T) {
	dir, p := newLog(t, nil)
	ss := corpusSessions(11, time.Now(), 4, 5)
	bomb := emptyEventsRecord(session.NewID())
	for _, s := range ss {
		put(t, p, s)
		if err := p.Put(context.Background(), s[0].Session.String(), bomb); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p)
	c := startCache(t, dir, stream.Start{StopAtEnd: true}, nil)
	c.wait(t)
	if got := c.counter("preheat_cache_records_corrupt_total"); got != len(ss) {
		t.Errorf("corrupt %d, want %d", got, len(ss))
	}
	for _, want := range ss {
		v, ok := c.Get(want[0].Session)
		if !ok || !v.Complete {
			t.Fatalf("session %s: %+v", want[0].Session, v.Summary)
		}
		sameEvents(t, decodeView(t, v), want)
	}
}

// emptyEventsRecord returns a batch of id whose body is MaxBatchBytes of
// empty events (8 million of them), compressed as a writer would into a
// record of a few tens of kilobytes, with random unknown fields now and
// then to keep its compression ratio within what a decoder allows.
func emptyEventsRecord(id session.ID) []byte {
	rng := rand.New(rand.NewPCG(1, 1))
	body := protowire.AppendTag(nil, 1, protowire.BytesType)
	body = protowire.AppendBytes(body, id[:])
	for i := 0; len(body) < session.MaxBatchBytes-16; i++ {
		body = append(body, 0x12, 0) // field 2 (an event), length 0
		if i%4096 == 0 {
			body = protowire.AppendTag(body, 15, protowire.VarintType)
			body = protowire.AppendVarint(body, rng.Uint64())
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	out := []byte{0xB7, 1, 1} // marker, version, zstd
	out = protowire.AppendVarint(out, uint64(len(body)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return enc.EncodeAll(body, out)
}

// gauge returns the value of a series of the cache's set, and whether the
// set exports it.
func (r *cacheRun) gauge(name string) (float64, bool) {
	var buf bytes.Buffer
	r.metrics.WritePrometheus(&buf)
	for line := range bytes.Lines(buf.Bytes()) {
		if rest, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			var v float64
			_, err := fmt.Sscan(string(rest), &v)
			return v, err == nil
		}
	}
	return 0, false
}

// TestCacheExportsStaleness: the cache exports the age of the newest record
// it applied, by the record's stream time (from the start of Run until the
// first), growing while nothing comes; and how far behind the stream it
// applied the latest record, which a cache reading a backlog is by the
// backlog's age.
func TestCacheExportsStaleness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const age, lag = `preheat_cache_newest_record_age_seconds`, `preheat_cache_stream_lag_seconds`
		dir, p := newLog(t, nil)
		follower := startCache(t, dir, stream.Start{}, nil)
		time.Sleep(40 * time.Second)
		synctest.Wait()
		if got, ok := follower.gauge(age); !ok || got != 40 {
			t.Errorf("no record yet, 40 s after the start: age %v (exported %v), want 40", got, ok)
		}

		put(t, p, corpusSessions(1, time.Now(), 1, 3)[0])
		settle(t, p)
		cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		rec, err := cons.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got, want := follower.gauge(age); got != time.Since(rec.Time).Seconds() || !want {
			t.Errorf("age %v, want %v: the record's", got, time.Since(rec.Time).Seconds())
		}
		if got, _ := follower.gauge(lag); got < 0 || got > 0.25 {
			t.Errorf("a following cache's lag %v s, want at most the settling time", got)
		}

		// A cache started now reads the 20 s old record as a backlog.
		late := startCache(t, dir, stream.Start{}, nil)
		settle(t, p)
		if got, _ := late.gauge(lag); got < 20 || got > 20.25 {
			t.Errorf("lag of a cache reading a 20 s backlog: %v s", got)
		}
		if got, _ := late.gauge(age); got != time.Since(rec.Time).Seconds() {
			t.Errorf("age %v, want %v: the record's", got, time.Since(rec.Time).Seconds())
		}
	})
}
