package replayer_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/idtarget"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// TestWaiterEndsEveryRequestOnce replays, over loopback, sessions that reuse
// ids against a target that answers some late, some never and drops some
// connections mid-wait: every request ends as exactly one of answered (the
// oldest of its id first), timed out or closed, in Stats and the metrics.
func TestWaiterEndsEveryRequestOnce(t *testing.T) {
	const answerMS = 60
	dups := idtarget.Session(10*time.Millisecond, "1 answer:60", "1 answer:60", "1 answer:60", "2 answer:60", "2 answer:60")
	slow := idtarget.Session(10*time.Millisecond, "1 answer:60", "1 answer:1500", "2 answer:60") // 1500ms: past the timeout
	drop := idtarget.Session(50*time.Millisecond, "5 answer:0", "5 hold", "6 close")
	var corpus [][]session.Event
	for range 3 {
		corpus = append(corpus, dups, slow, drop)
	}
	url := serveLoopback(t, &idtarget.Handler{})
	set := metrics.NewSet()
	var mu sync.Mutex
	var latencies []time.Duration
	r := newReplayer(t, url, replayer.Options{Rate: -1, Speed: 1, Concurrency: 4, Correlate: "id",
		ResponseTimeout: time.Second, OrderTimeout: 100 * time.Millisecond, Metrics: set,
		OnResponse: func(resp replayer.Response) {
			mu.Lock()
			latencies = append(latencies, resp.Latency)
			mu.Unlock()
		}})
	if err := r.Run(t.Context(), replayer.NewSliceSource(corpus)); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	// Per session: dups 5 answered; slow 2 answered, 1 timed out; drop 1
	// answered, 2 closed (the held one and the one that closed).
	want := replayer.Stats{MessagesSent: 33, Requests: 33, Responses: 24, Timeouts: 3, Closed: 6}
	got := replayer.Stats{MessagesSent: st.MessagesSent, Requests: st.Requests, Responses: st.Responses, Timeouts: st.Timeouts,
		Closed: st.Closed, Awaiting: st.Awaiting, Evicted: st.Evicted, ClosedCut: st.ClosedCut}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts %+v\nwant   %+v", got, want)
	}
	if st.Requests != st.Responses+st.Timeouts+st.Closed {
		t.Fatalf("requests %d != answered %d + timed out %d + closed %d", st.Requests, st.Responses, st.Timeouts, st.Closed)
	}
	// Answered first in, first out: no answer is taken for a request sent
	// after the one it answers, so none is faster than the target's delay.
	slowAnswered := 0
	for _, d := range latencies {
		if d >= answerMS*time.Millisecond {
			slowAnswered++
		}
	}
	if len(latencies) != 24 || slowAnswered != 21 {
		t.Fatalf("%d latencies, %d of them at least %dms; want 24, 21 (the drop sessions' answers are immediate)", len(latencies), slowAnswered, answerMS)
	}
	var prom bytes.Buffer
	set.WritePrometheus(&prom)
	for _, line := range []string{
		"preheat_replay_requests_total 33",
		"preheat_replay_response_seconds_count 24",
		"preheat_replay_response_timeouts_total 3",
		"preheat_replay_requests_closed_total 6",
		"preheat_replay_requests_awaiting 0",
	} {
		if !strings.Contains(prom.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, prom.String())
		}
	}
}

// TestWaiterBoundsTheRequestsASessionKeeps sends a session more requests
// than a session keeps waiting, to a target that answers none: the oldest
// are given up and counted as timeouts (and evicted), the rest closed with
// the connection.
func TestWaiterBoundsTheRequestsASessionKeeps(t *testing.T) {
	const n = 4101 // the window holds 4,096
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: "/", Start: time.Now()}}}
	for i := 1; i <= n; i++ {
		do := "hold"
		if i == n {
			do = "close"
		}
		evs = append(evs, session.Event{Session: id, Seq: uint64(i), Kind: session.KindFrame, Direction: session.ClientToServer,
			Opcode: session.Text, Payload: fmt.Appendf(nil, `{"op":"tasks.get","id":%d,"do":%q}`, i, do)})
	}
	r := newReplayer(t, serveLoopback(t, &idtarget.Handler{}), replayer.Options{Rate: -1, Correlate: "id", ResponseTimeout: time.Minute})
	res := r.Replay(t.Context(), evs)
	st := r.Stats()
	if res.Sent != n || st.Requests != n || st.Evicted != 5 || st.Timeouts != 5 || st.Closed != 4096 || st.Responses != 0 || st.Awaiting != 0 {
		t.Fatalf("sent %d; stats %+v\nwant %d requests: 5 evicted as timeouts, 4096 closed", res.Sent, st, n)
	}
}
