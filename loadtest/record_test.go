package loadtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/idtarget"
	"github.com/preheatdev/preheat/loadtest"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// TestRequestsEndAnsweredTimedOutOrClosed runs a load test over loopback of
// sessions that reuse ids against a target that answers some late, some
// never and drops some connections mid-wait: the result and both reports
// count every request as exactly one of answered, timed out or closed.
func TestRequestsEndAnsweredTimedOutOrClosed(t *testing.T) {
	ss := [][]session.Event{
		idtarget.Session(10*time.Millisecond, "1 answer:60", "1 answer:60", "1 answer:60", "2 answer:60", "2 answer:60"),
		idtarget.Session(10*time.Millisecond, "1 answer:60", "1 answer:1500", "2 answer:60"), // 1500ms: past the timeout
		idtarget.Session(50*time.Millisecond, "5 answer:0", "5 hold", "6 close"),
	}
	url, _ := serveLoopback(t, &idtarget.Handler{})
	// 9 arrivals, 3 of each session.
	res := run(t, &loadtest.Corpus{Sessions: ss}, url, loadtest.Options{SessionsPerSecond: 10, Duration: 900 * time.Millisecond,
		Replay: &replayer.Options{Correlate: "id", ResponseTimeout: time.Second, OrderTimeout: 100 * time.Millisecond}})
	tr := res.Targets[0]
	// Per session: 5 answered; 2 answered and 1 timed out; 1 answered and
	// 2 closed (the held one and the one that closed).
	got := fmt.Sprintf("sent %d, requests %d: %d answered, %d timed out, %d closed (%d cut); errors %v",
		tr.Sent, tr.Requests, tr.Responses, tr.Timeouts, tr.Closed, tr.ClosedCut, tr.Errors)
	want := "sent 33, requests 33: 24 answered, 3 timed out, 6 closed (0 cut); errors map[closed_by_target:3 response_closed:6 response_timeout:3]"
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
	if tr.ErrorCount != 12 {
		t.Fatalf("error count %d, want 3 sessions + 3 timeouts + 6 closed", tr.ErrorCount)
	}
	var sum loadtest.Interval
	for _, iv := range tr.Intervals {
		sum.Sent += iv.Sent
		sum.Responses += iv.Responses
		sum.Timeouts += iv.Timeouts
		sum.Closed += iv.Closed
	}
	if sum.Sent != 33 || sum.Responses != 24 || sum.Timeouts != 3 || sum.Closed != 6 {
		t.Fatalf("intervals add up to %+v", sum)
	}

	var js bytes.Buffer
	if err := loadtest.WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Targets []struct {
			Requests  uint64 `json:"requests"`
			Responses uint64 `json:"responses"`
			Timeouts  uint64 `json:"timeouts"`
			Closed    uint64 `json:"requests_closed"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if b := back.Targets[0]; b.Requests != 33 || b.Responses != 24 || b.Timeouts != 3 || b.Closed != 6 {
		t.Fatalf("JSON report counts %+v", b)
	}
	var html bytes.Buffer
	if err := loadtest.WriteHTML(&html, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "<td>33: 24 / 3 / 6</td>") {
		t.Fatal("the HTML report does not show 33 requests: 24 answered / 3 timed out / 6 closed")
	}
}

// TestRequestCutAtTheEndIsClosedNotAnError cuts a session at the end of the
// drain while its request waits: the request is counted closed by the
// cut, and not as the target's error.
func TestRequestCutAtTheEndIsClosedNotAnError(t *testing.T) {
	url, _ := serveLoopback(t, &idtarget.Handler{})
	ss := [][]session.Event{idtarget.Session(10*time.Millisecond, "1 answer:0", "2 hold")}
	res := run(t, &loadtest.Corpus{Sessions: ss}, url, loadtest.Options{SessionsPerSecond: 2, Duration: 500 * time.Millisecond,
		Drain: 300 * time.Millisecond, Replay: &replayer.Options{Correlate: "id", ResponseTimeout: time.Minute}})
	tr := res.Targets[0]
	if tr.Sessions.Cut != 1 || tr.Requests != 2 || tr.Responses != 1 || tr.Closed != 1 || tr.ClosedCut != 1 || tr.ErrorCount != 0 {
		t.Fatalf("sessions %+v; requests %d: %d answered, %d closed (%d cut); errors %v; want 1 cut, 2: 1 answered, 1 closed by the cut, no error",
			tr.Sessions, tr.Requests, tr.Responses, tr.Closed, tr.ClosedCut, tr.Errors)
	}
}
