package replayer_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/idtarget"
	"github.com/preheatdev/preheat/replayer"
)

// TestPreparedReplaysManyTimesAtOnce replays one prepared session from
// several goroutines at once over loopback: each replay sends the whole
// session and has every answer, as a replay of the recording does.
func TestPreparedReplaysManyTimesAtOnce(t *testing.T) {
	tg := &idtarget.Handler{}
	r := newReplayer(t, serveLoopback(t, tg), replayer.Options{Rate: -1, Correlate: "id"})
	p := r.Prepare(idtarget.Session(time.Millisecond, "1 answer:1", "2 answer:1", "2 answer:1", "3 answer:0"))
	const n = 4
	var wg sync.WaitGroup
	results := make([]replayer.SessionResult, n)
	for i := range n {
		wg.Go(func() { results[i] = r.ReplayPrepared(t.Context(), p) })
	}
	wg.Wait()
	for _, res := range results {
		if res.Failure != "" || res.Sent != 4 || res.Duration <= 0 {
			t.Fatalf("a replay: %+v, want 4 sent, completed, its duration measured", res)
		}
	}
	st := r.Stats()
	if st.SessionsStarted != n || st.SessionsCompleted != n || st.Requests != 4*n || st.Responses != 4*n {
		t.Fatalf("stats %+v, want %d sessions, %d requests answered", st, n, 4*n)
	}
	if received, _ := tg.Counts(); received != 4*n {
		t.Fatalf("the target received %d messages, want %d", received, 4*n)
	}
}

// TestPreparedPlansAnewForFreshValues checks that a session prepared under
// a rule that makes fresh values gets new ones at each replay.
func TestPreparedPlansAnewForFreshValues(t *testing.T) {
	fresh, err := replayer.ParseRewriteRule("id=fresh")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{}
	r := newReplayer(t, serveLoopback(t, tg), replayer.Options{Rate: -1, Rewrite: []replayer.RewriteRule{fresh}})
	p := r.Prepare(idtarget.Session(time.Millisecond, "123456789012 hold"))
	for range 2 {
		if res := r.ReplayPrepared(t.Context(), p); res.Sent != 1 {
			t.Fatalf("replay: %+v", res)
		}
	}
	var ids []string
	for _, m := range tg.received() {
		var v struct{ ID json.RawMessage }
		if err := json.Unmarshal([]byte(m.payload), &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, string(v.ID))
	}
	if len(ids) != 2 || ids[0] == ids[1] || ids[0] == "123456789012" {
		t.Fatalf("ids sent %q: want two fresh values", ids)
	}
}
