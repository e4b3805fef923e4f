package replayer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/pipenet"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

var quiet = slog.New(slog.DiscardHandler)

func newReplayer(t *testing.T, url string, o replayer.Options) *replayer.Replayer {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	r, err := replayer.New(url, &o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func queries(n int) []string {
	out := []string{`{"type":"connect","id":0,"token":"__preheat_redacted__"}`}
	for i := 1; i < n; i++ {
		out = append(out, fmt.Sprintf(`{"type":"query","id":%d,"op":"tasks.get"}`, i))
	}
	return out
}

// echoID answers every message with its id after d.
func echoID(d time.Duration) func([]byte) ([]byte, time.Duration) {
	return func(msg []byte) ([]byte, time.Duration) {
		var m struct{ ID json.RawMessage }
		if json.Unmarshal(msg, &m) != nil || m.ID == nil {
			return nil, 0
		}
		return fmt.Appendf(nil, `{"type":"result","id":%s}`, m.ID), d
	}
}

func TestReplayPacingAndOrder(t *testing.T) {
	f := func(speed float64, offsets []int) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			tg := &target{protocols: []string{"sync.v3"}, reply: echoID(0)}
			client := pipenet.Serve(t, tg)
			r := newReplayer(t, "ws://pod", replayer.Options{Speed: speed, Rate: -1, HTTPClient: client})
			msgs := queries(len(offsets))
			evs := recorded(time.Now().Add(-time.Hour), msgs, offsets)
			if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
				t.Fatal(err)
			}
			got := tg.received()
			if len(got) != len(msgs) {
				t.Fatalf("speed %v: target got %d messages, want %d", speed, len(got), len(msgs))
			}
			for i, m := range got {
				if m.payload != msgs[i] {
					t.Fatalf("speed %v: message %d is %s, want %s", speed, i, m.payload, msgs[i])
				}
				want := time.Duration(float64(time.Duration(offsets[i])*time.Millisecond) / speed)
				if d := m.at.Sub(got[0].at); d != want {
					t.Fatalf("speed %v: message %d sent at +%v, want +%v", speed, i, d, want)
				}
			}
			if st := r.Stats(); st.SessionsCompleted != 1 || st.MessagesSent != uint64(len(msgs)) {
				t.Fatalf("speed %v: stats %+v", speed, st)
			}
		})
	}
	f(1, []int{0, 100, 250, 1000, 1001, 5000})
	f(2, []int{0, 100, 250, 1000, 1001, 5000})
	f(0.5, []int{0, 40, 80})
}

func TestReplayRateAndConcurrencyLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{}
		client := pipenet.Serve(t, tg)
		const sessions, perSession = 12, 10
		var src [][]session.Event
		for range sessions {
			src = append(src, recorded(time.Now(), queries(perSession), make([]int, perSession)))
		}
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: 20, Burst: 1, Concurrency: 3, NoBackoff: true, HTTPClient: client})
		start := time.Now()
		if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
			t.Fatal(err)
		}
		got := tg.received()
		if len(got) != sessions*perSession {
			t.Fatalf("target got %d messages, want %d", len(got), sessions*perSession)
		}
		// 120 messages at 20/s with a burst of 1: the last goes at 119/20 s.
		if d, want := got[len(got)-1].at.Sub(start), 119*time.Second/20; d < want {
			t.Fatalf("120 messages took %v, want at least %v at 20/s", d, want)
		}
		for i := 1; i < len(got); i++ {
			if gap := got[i].at.Sub(got[i-1].at); gap < 50*time.Millisecond {
				t.Fatalf("messages %d and %d %v apart, faster than 20/s", i-1, i, gap)
			}
		}
		// Sessions at once, from what the target received: a session spans
		// its first message to its last. (The target's own count of open
		// connections can see a closing one beside its replacement for an
		// instant: the client frees its slot when its close handshake is
		// done, before the server's handler has returned.)
		span := map[int][2]time.Time{}
		for _, m := range got {
			sp, ok := span[m.conn]
			if !ok {
				sp[0] = m.at
			}
			sp[1] = m.at
			span[m.conn] = sp
		}
		maxActive := 0
		for _, m := range got {
			n := 0
			for _, sp := range span {
				if !m.at.Before(sp[0]) && !m.at.After(sp[1]) {
					n++
				}
			}
			maxActive = max(maxActive, n)
		}
		if maxActive != 3 {
			t.Fatalf("at most %d sessions at once, want exactly the limit 3", maxActive)
		}
		// Within each connection, order is the recorded order.
		perConn := map[int][]string{}
		for _, m := range got {
			perConn[m.conn] = append(perConn[m.conn], m.payload)
		}
		for c, ms := range perConn {
			if !slices.Equal(ms, queries(perSession)) {
				t.Fatalf("connection %d got %q", c, ms)
			}
		}
	})
}

func TestReplayMeasuresCorrelatedLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(50 * time.Millisecond)}
		client := pipenet.Serve(t, tg)
		var mu sync.Mutex
		var seen []time.Duration
		var kinds []string
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: -1, Correlate: "id", HTTPClient: client,
			OnResponse: func(resp replayer.Response) {
				mu.Lock()
				seen = append(seen, resp.Latency)
				kinds = append(kinds, resp.Kind)
				mu.Unlock()
			}})
		evs := recorded(time.Now(), queries(5), []int{0, 10, 20, 30, 40})
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		st := r.Stats()
		if st.Responses != 5 || st.Timeouts != 0 {
			t.Fatalf("stats %+v", st)
		}
		for _, d := range seen {
			if d != 50*time.Millisecond {
				t.Fatalf("latency %v, want the target's 50ms", d)
			}
		}
		slices.Sort(kinds)
		if want := []string{"connect", "tasks.get", "tasks.get", "tasks.get", "tasks.get"}; !slices.Equal(kinds, want) {
			t.Fatalf("response kinds %q, want %q", kinds, want)
		}
		if st.LatencyP50 < 49*time.Millisecond || st.LatencyP50 > 51*time.Millisecond {
			t.Fatalf("p50 %v", st.LatencyP50)
		}
	})
}

func TestReplayCountsTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Answers only even ids.
		tg := &target{reply: func(msg []byte) ([]byte, time.Duration) {
			var m struct{ ID int }
			_ = json.Unmarshal(msg, &m)
			if m.ID%2 == 1 {
				return nil, 0
			}
			return fmt.Appendf(nil, `{"id":%d}`, m.ID), time.Millisecond
		}}
		client := pipenet.Serve(t, tg)
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: -1, Correlate: "id", ResponseTimeout: 2 * time.Second, HTTPClient: client})
		evs := recorded(time.Now(), queries(6), []int{0, 1, 2, 3, 4, 5})
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.Responses != 3 || st.Timeouts != 3 || st.SessionsCompleted != 1 {
			t.Fatalf("stats %+v, want 3 responses (ids 0, 2, 4) and 3 timeouts", st)
		}
	})
}

func TestReplayUncorrelatedLatencyIsTimeToNextMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(30 * time.Millisecond)}
		client := pipenet.Serve(t, tg)
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Speed: 1, Rate: -1, HTTPClient: client})
		evs := recorded(time.Now(), queries(3), []int{0, 100, 200})
		if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.Responses != 3 || st.LatencyP99 < 29*time.Millisecond || st.LatencyP99 > 31*time.Millisecond {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestReplayHandshake(t *testing.T) {
	tg := &target{protocols: []string{"sync.v3"}, reply: echoID(0)}
	url := serveLoopback(t, tg)
	r := newReplayer(t, url, replayer.Options{Rate: -1, Header: http.Header{"Authorization": {"Bearer warm-up"}}})
	evs := recorded(time.Now(), queries(2), []int{0, 1})
	if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.urls) != 1 || tg.urls[0] != "/sync?client=web" {
		t.Fatalf("target without a path dialled %q, want the recorded route", tg.urls)
	}
	h := tg.headers[0]
	if h.Get("Authorization") != "Bearer warm-up" || h.Get("User-Agent") != "test/1" || h.Get("Cookie") != "" {
		t.Fatalf("handshake headers %v: want the configured credential, the recorded user agent, no redacted cookie", h)
	}
	if tg.protos[0] != "sync.v3" {
		t.Fatalf("subprotocol %q, want the recorded sync.v3", tg.protos[0])
	}
}

// TestReplayDoesNotOfferARedactedSubprotocol: a subprotocol the tap
// redacted (a token sent as one) is not offered to the target.
func TestReplayDoesNotOfferARedactedSubprotocol(t *testing.T) {
	tg := &target{protocols: []string{"sync.v3", "__preheat_redacted__"}, reply: echoID(0)}
	url := serveLoopback(t, tg)
	r := newReplayer(t, url, replayer.Options{Rate: -1})
	evs := recorded(time.Now(), queries(2), []int{0, 1})
	evs[0].Open.Subprotocol = "__preheat_redacted__"
	if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.protos) != 1 || tg.protos[0] != "" {
		t.Fatalf("subprotocols negotiated %q, want none", tg.protos)
	}
}

// mutatingCorpus returns n corpus sessions of 15 client messages, about a
// third of them mutations, and how many mutations they hold.
func mutatingCorpus(seed uint64, n int) (src [][]session.Event, mutations int) {
	g := corpus.New(seed)
	g.MutateRate = 0.3
	for range n {
		evs := g.Session(time.Now(), 15)
		for _, ev := range evs {
			if ev.Direction == session.ClientToServer && isMutation(ev.Payload) {
				mutations++
			}
		}
		src = append(src, evs)
	}
	return src, mutations
}

func TestReplayNeverSendsMutatingMessages(t *testing.T) {
	tg := &target{reply: echoID(0)}
	url := serveLoopback(t, tg)
	src, mutations := mutatingCorpus(7, 20)
	if mutations < 20 {
		t.Fatalf("corpus has only %d mutations", mutations)
	}
	r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Concurrency: 4, Correlate: "id"})
	if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
		t.Fatal(err)
	}
	got := tg.received()
	for _, m := range got {
		if isMutation([]byte(m.payload)) {
			t.Fatalf("target received a mutating message: %s", m.payload)
		}
	}
	st := r.Stats()
	if st.MessagesSkipped["mutating"] != uint64(mutations) {
		t.Fatalf("skipped %v, want %d mutating", st.MessagesSkipped, mutations)
	}
	if st.SessionsCompleted != 20 || st.MessagesSent != uint64(len(got)) || len(got) == 0 {
		t.Fatalf("stats %+v, target got %d", st, len(got))
	}
}

func TestReplayRehearsesMutatingMessages(t *testing.T) {
	tg := &target{reply: echoID(0)}
	url := serveLoopback(t, tg)
	src, mutations := mutatingCorpus(11, 12)
	// One mutation the rehearsal cannot be sure of: a Go server decoding
	// into a struct would read DRYRUN, not the dryRun the rule adds.
	src = append(src, recorded(time.Now(), []string{`{"type":"connect","id":0}`, `{"type":"write","id":1,"DRYRUN":false}`, `{"type":"query","id":2}`}, []int{0, 1, 2}))
	if mutations < 10 {
		t.Fatalf("corpus has only %d mutations", mutations)
	}
	set := metrics.NewSet()
	r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Concurrency: 4, Correlate: "id", Metrics: set,
		Rehearse: []replayer.RehearseRule{mustRehearse(t, "dryRun=true"), mustRehearse(t, `params.workspace="warmup"`)}})
	if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
		t.Fatal(err)
	}
	rehearsed := 0
	for _, m := range tg.received() {
		if !isMutation([]byte(m.payload)) {
			if strings.Contains(m.payload, "dryRun") {
				t.Fatalf("a query was rehearsed: %s", m.payload)
			}
			continue
		}
		var msg struct {
			DryRun bool
			Params struct{ Workspace string }
		}
		if err := json.Unmarshal([]byte(m.payload), &msg); err != nil || !msg.DryRun || msg.Params.Workspace != "warmup" {
			t.Fatalf("target received a mutation not in its rehearsal form: %s (%v)", m.payload, err)
		}
		rehearsed++
	}
	st := r.Stats()
	if rehearsed != mutations || st.MessagesRehearsed != uint64(mutations) || st.MessagesSkipped["mutating"] != 1 {
		t.Fatalf("target got %d rehearsals of %d mutations; stats rehearsed %d, skipped %v",
			rehearsed, mutations, st.MessagesRehearsed, st.MessagesSkipped)
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if want := fmt.Sprintf("preheat_replay_messages_rehearsed_total %d\n", mutations); !strings.Contains(b.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, b.String())
	}

	// A dry run shows which messages would go as rehearsals.
	var out bytes.Buffer
	dry := newReplayer(t, "ws://127.0.0.1:1/sync", replayer.Options{DryRun: &out, Rehearse: []replayer.RehearseRule{mustRehearse(t, "dryRun=true")}})
	evs := recorded(time.Now(), []string{`{"type":"connect"}`, `{"type":"mutate","id":1}`}, []int{0, 1})
	if err := dry.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
		t.Fatal(err)
	}
	if want := `rehearse {"dryRun":true,"type":"mutate","id":1}`; !strings.Contains(out.String(), want) {
		t.Fatalf("dry run printed %q, want a line ending %s", out.String(), want)
	}
}

func mustRehearse(t *testing.T, s string) replayer.RehearseRule {
	t.Helper()
	r, err := replayer.ParseRehearseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isMutation(msg []byte) bool {
	var m struct{ Type string }
	if json.Unmarshal(msg, &m) != nil {
		return false
	}
	return slices.Contains(corpus.MutatingTypes, m.Type)
}

// TestReplayDryRunPrintsPlanWithoutConnecting: a dry run prints each
// client message's fate and verdict, touches no target, and never prints a
// value a rewrite rule puts in (a credential, say).
func TestReplayDryRunPrintsPlanWithoutConnecting(t *testing.T) {
	var out bytes.Buffer
	rw, err := replayer.ParseRewriteRule("token=set:s3cret-warmup")
	if err != nil {
		t.Fatal(err)
	}
	r := newReplayer(t, "ws://127.0.0.1:1/sync", replayer.Options{DryRun: &out,
		Safety: []replayer.SafetyRule{mustSafety(t, "type=mutate")}, Rewrite: []replayer.RewriteRule{rw}})
	evs := recorded(time.Now(), []string{`{"type":"connect","token":"__preheat_redacted__"}`, `{"type":"mutate","id":1}`, `{"type":"query","id":2,"op":"tasks.list"}`, `not json`, `{"type":"frob","token":"x"}`}, []int{0, 1, 2, 3, 4})
	if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{evs})); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Fatalf("the dry run printed a value a rewrite rule put in:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		`send {"type":"connect","token":"[set by --rewrite]"} (control`,
		`skip mutating {"type":"mutate","id":1} (mutating: a --mutating rule)`,
		`send {"type":"query","id":2,"op":"tasks.list"} (read`,
		`skip unknown not json (unknown`,
		`skip unknown {"type":"frob","token":"[set by --rewrite]"} (unknown`,
	}
	if len(lines) != len(want) {
		t.Fatalf("dry run printed %q", lines)
	}
	for i, l := range lines {
		if !strings.Contains(l, want[i]) || !strings.HasPrefix(l, evs[0].Session.String()) {
			t.Fatalf("line %d %q, want ...%s", i, l, want[i])
		}
	}
	if st := r.Stats(); st.MessagesSent != 0 || len(st.SessionsFailed) != 0 {
		t.Fatalf("dry run stats %+v", st)
	}
}

func mustSafety(t *testing.T, s string) replayer.SafetyRule {
	t.Helper()
	r, err := replayer.ParseSafetyRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReplayFailingSessionsAreReplaced(t *testing.T) {
	// Every third connection is dropped on its second message.
	tg := &target{reply: echoID(0), drop: func(conn, n int) bool { return conn%3 == 0 && n == 2 }}
	url := serveLoopback(t, tg)
	var src [][]session.Event
	for range 9 {
		src = append(src, recorded(time.Now(), queries(4), []int{0, 1, 2, 3}))
	}
	src = append(src, []session.Event{{Kind: session.KindFrame}}) // no open event
	r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Concurrency: 2, Correlate: "id"})
	if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	failed := uint64(0)
	for _, n := range st.SessionsFailed {
		failed += n
	}
	if st.SessionsStarted != 10 || st.SessionsCompleted+failed != 10 || st.SessionsFailed["no_open"] != 1 || failed < 3 {
		t.Fatalf("stats %+v: want 10 started, the no-open one and the dropped ones failed, the rest completed", st)
	}
}

// TestReplayStopClosesSessionsNormally: Stop ends sessions in flight with a
// close handshake, as clients leave; cancelling the context drops them,
// which is what a warm-up's end used to do to the pod it released.
func TestReplayStopClosesSessionsNormally(t *testing.T) {
	run := func(stop func(r *replayer.Replayer, cancel context.CancelFunc)) (*target, replayer.Stats, error, int) {
		t.Helper()
		tg := &target{reply: echoID(0)}
		url := serveLoopback(t, tg)
		var src [][]session.Event
		for range 8 {
			src = append(src, recorded(time.Now(), queries(200), make([]int, 200)))
		}
		// 40 msg/s over 4 sessions: far from done when stopped.
		r := newReplayer(t, url+"/sync", replayer.Options{Rate: 40, NoBackoff: true, Concurrency: 4, Correlate: "id"})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, replayer.NewSliceSource(src)) }()
		deadline := time.Now().Add(10 * time.Second)
		for len(tg.received()) < 12 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		stop(r, cancel)
		atStop := r.Stats().MessagesSent
		err := <-done
		// The target hears each connection's end after Run returns.
		for len(tg.ended()) < 4 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		st := r.Stats()
		return tg, st, err, int(st.MessagesSent - atStop)
	}

	tg, st, err, after := run(func(r *replayer.Replayer, _ context.CancelFunc) { r.Stop() })
	if err != nil {
		t.Fatalf("Run after Stop: %v, want nil", err)
	}
	ends := tg.ended()
	if len(ends) != 4 {
		t.Fatalf("%d connections ended, want the 4 in flight: %q", len(ends), ends)
	}
	for i, e := range ends {
		if e != "normal" {
			t.Errorf("connection %d ended %q, want a normal close handshake", i+1, e)
		}
	}
	// At most the message each session was writing when Stop returned.
	if after > 4 {
		t.Errorf("%d messages sent after Stop, want at most 4", after)
	}
	if st.SessionsStarted != 4 || st.SessionsStopped != 4 || st.SessionsCompleted != 0 || len(st.SessionsFailed) != 0 {
		t.Errorf("stats %+v: want 4 started and stopped, none completed, none counted as failed", st)
	}

	// The contrast: cancelling drops the connections.
	tg, _, err, _ = run(func(_ *replayer.Replayer, cancel context.CancelFunc) { cancel() })
	if err == nil {
		t.Fatal("Run after cancel: nil error")
	}
	if ends := tg.ended(); len(ends) != 4 || slices.Contains(ends, "normal") {
		t.Fatalf("a cancelled run's 4 connections ended %q: want all dropped", ends)
	}
}

// TestReplayEndsSessionsAsRecorded: a session whose client hung up without
// a close frame is replayed hanging up too; the others close with a
// handshake.
func TestReplayEndsSessionsAsRecorded(t *testing.T) {
	tg := &target{reply: echoID(0)}
	url := serveLoopback(t, tg)
	normal := recorded(time.Now(), queries(3), []int{0, 1, 2})
	dropped := recorded(time.Now(), queries(3), []int{0, 1, 2})
	last := &dropped[len(dropped)-1]
	last.Code, last.ClosedBy = 0, session.SideClient // no close frame: the client hung up
	byServer := recorded(time.Now(), queries(3), []int{0, 1, 2})
	last = &byServer[len(byServer)-1]
	last.Code, last.ClosedBy = 0, session.SideServer // the server hung up: the replay closes normally
	r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Concurrency: 1, Correlate: "id"})
	if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{normal, dropped, byServer})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(tg.ended()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ends := tg.ended()
	if len(ends) != 3 || ends[0] != "normal" || ends[1] == "normal" || ends[2] != "normal" {
		t.Fatalf("endings %q: want normal, dropped, normal", ends)
	}
	if st := r.Stats(); st.SessionsCompleted != 3 || st.MessagesSent != 9 || st.Responses != 9 {
		t.Fatalf("stats %+v: want 3 completed sessions, 9 messages and 9 responses", st)
	}
}

func TestReplayTargetDownEndsByContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Nothing listens: every dial fails, backs off, and the run ends
		// when its context does.
		p := pipenet.NewListener()
		p.Close()
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: -1, HTTPClient: &http.Client{Transport: &http.Transport{DialContext: p.DialContext}}})
		var src [][]session.Event
		for range 100 {
			src = append(src, recorded(time.Now(), queries(2), []int{0, 1}))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := r.Run(ctx, replayer.NewSliceSource(src))
		if err == nil {
			t.Fatal("run against a dead target ended without its context")
		}
		st := r.Stats()
		if n := st.SessionsFailed["connect"]; n == 0 || n > 20 {
			t.Fatalf("%d dial failures in 10s: want some, backed off (not a hot loop)", n)
		}
	})
}

func TestReplayBacksOffWhenLatencyClimbs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One message at a time, 20ms each: at 200 messages/s the queue grows
		// and latency climbs.
		var mu sync.Mutex
		busyUntil := time.Now()
		tg := &target{reply: func(msg []byte) ([]byte, time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			if busyUntil.Before(now) {
				busyUntil = now
			}
			busyUntil = busyUntil.Add(20 * time.Millisecond)
			resp, _ := echoID(0)(msg)
			return resp, busyUntil.Sub(now)
		}}
		client := pipenet.Serve(t, tg)
		// Pipelined sessions: each client sent its messages without
		// waiting for answers, so the replay does not either.
		var src [][]session.Event
		for range 40 {
			src = append(src, pipelined(recorded(time.Now(), queries(50), make([]int, 50))))
		}
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: 200, Concurrency: 4, Correlate: "id", ResponseTimeout: time.Minute, HTTPClient: client})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		_ = r.Run(ctx, replayer.NewSliceSource(src))
		if st := r.Stats(); st.RateLimit >= 100 {
			t.Fatalf("rate limit %v after 20s of a queueing target, want backed off below 100", st.RateLimit)
		}
	})
}

func TestReplayHoldsRateForAFastTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(time.Millisecond)}
		client := pipenet.Serve(t, tg)
		var src [][]session.Event
		for range 20 {
			src = append(src, recorded(time.Now(), queries(50), make([]int, 50)))
		}
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: 100, Concurrency: 4, Correlate: "id", HTTPClient: client})
		if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.RateLimit != 100 || st.MessagesSent != 1000 {
			t.Fatalf("stats %+v: want 1000 sent and the rate held at 100", st)
		}
	})
}

func TestReplayRewritesBeforeSending(t *testing.T) {
	tg := &target{reply: echoID(0)}
	url := serveLoopback(t, tg)
	rules := []replayer.RewriteRule{}
	for _, s := range []string{"token=unredact:warm-secret", "ts=shift", "req=fresh"} {
		rr, err := replayer.ParseRewriteRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rr)
	}
	start := time.Now().Add(-time.Hour)
	tsRec := start.UnixMilli()
	msgs := []string{
		`{"type":"connect","token":"__preheat_redacted__"}`,
		fmt.Sprintf(`{"type":"query","ts":%d,"req":"r_0123456789"}`, tsRec),
		`{"type":"query","req":"r_0123456789"}`,
	}
	r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Rewrite: rules, ResponseTimeout: 200 * time.Millisecond})
	if err := r.Run(t.Context(), replayer.NewSliceSource([][]session.Event{recorded(start, msgs, []int{0, 1, 2})})); err != nil {
		t.Fatal(err)
	}
	got := tg.received()
	if len(got) != 3 || got[0].payload != `{"type":"connect","token":"warm-secret"}` {
		t.Fatalf("got %+v", got)
	}
	var m1, m2 struct {
		TS  int64
		Req string
	}
	_ = json.Unmarshal([]byte(got[1].payload), &m1)
	_ = json.Unmarshal([]byte(got[2].payload), &m2)
	if shift := time.Duration(m1.TS-tsRec) * time.Millisecond; shift < 59*time.Minute || shift > 61*time.Minute {
		t.Fatalf("timestamp shifted by %v, want about the hour since recording", shift)
	}
	if m1.Req == "r_0123456789" || !strings.HasPrefix(m1.Req, "r_") || len(m1.Req) != len("r_0123456789") || m1.Req != m2.Req {
		t.Fatalf("fresh ids %q and %q: want a new id of the same shape, equal within the session", m1.Req, m2.Req)
	}
}

func TestSourceErrorEndsRun(t *testing.T) {
	r := newReplayer(t, "ws://127.0.0.1:1/sync", replayer.Options{})
	err := r.Run(t.Context(), failingSource{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("run: %v", err)
	}
}

type failingSource struct{}

func (failingSource) Next(context.Context) ([]session.Event, error) {
	return nil, errors.New("boom")
}

func TestReplayResultClassifiesFailures(t *testing.T) {
	evs := func() []session.Event { return recorded(time.Now(), queries(3), []int{0, 1, 2}) }
	f := func(tg *target, wantFailure string, check func(replayer.SessionResult) bool) {
		t.Helper()
		url := serveLoopback(t, tg)
		r := newReplayer(t, url+"/sync", replayer.Options{Rate: -1, Correlate: "id", ResponseTimeout: time.Second})
		res := r.Replay(t.Context(), evs())
		if res.Failure != wantFailure || !check(res) {
			t.Fatalf("result %+v, want failure %q", res, wantFailure)
		}
		if st := r.Stats(); st.SessionsStarted != 1 || (wantFailure != "" && st.SessionsFailed[wantFailure] != 1) {
			t.Fatalf("stats %+v", st)
		}
	}
	f(&target{reply: echoID(0)}, "", func(r replayer.SessionResult) bool { return r.Sent == 3 && r.CloseCode == -1 })
	f(&target{refuse: http.StatusForbidden}, "handshake", func(r replayer.SessionResult) bool { return r.Status == http.StatusForbidden })
	f(&target{reply: echoID(0), dropCode: websocket.StatusInternalError, drop: func(_, n int) bool { return n == 3 }}, "closed_by_target",
		func(r replayer.SessionResult) bool { return r.CloseCode == int(websocket.StatusInternalError) })

	r := newReplayer(t, "ws://127.0.0.1:1/sync", replayer.Options{Rate: -1})
	if res := r.Replay(t.Context(), evs()); res.Failure != "connect" || res.Err == nil {
		t.Fatalf("dead target: %+v", res)
	}
}

func TestReplayBacksOffUnderCPUPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A PSI file whose "some" stall share is half the wall time for 10s,
		// then none: a contended node that frees up.
		file := filepath.Join(t.TempDir(), "cpu")
		start := time.Now()
		writePSI := func(total uint64) {
			tmp := file + ".tmp"
			line := fmt.Sprintf("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", total)
			if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
				t.Error(err)
			}
			if err := os.Rename(tmp, file); err != nil { // whole, never half written
				t.Error(err)
			}
		}
		writePSI(0)
		ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		wg.Go(func() {
			var total uint64
			for ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				if time.Since(start) <= 10*time.Second {
					total += 50_000 // µs: half of 100ms
				}
				writePSI(total)
			}
		})
		tg := &target{reply: echoID(time.Millisecond)}
		client := pipenet.Serve(t, tg)
		var src [][]session.Event
		for range 100 {
			src = append(src, recorded(time.Now(), queries(50), make([]int, 50)))
		}
		set := metrics.NewSet()
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: 100, MinRate: 5, StartRate: 10, MaxCPUPressure: 0.2,
			PressureFile: file, Concurrency: 4, Correlate: "id", HTTPClient: client, Metrics: set})
		wg.Go(func() { _ = r.Run(ctx, replayer.NewSliceSource(src)) })

		time.Sleep(500 * time.Millisecond)
		if st := r.Stats(); st.RateLimit != 10 || st.CPUPressure != -1 {
			t.Fatalf("at 0.5s: rate %v pressure %v; want the start rate 10 and no pressure read yet", st.RateLimit, st.CPUPressure)
		}
		time.Sleep(9 * time.Second)
		if st := r.Stats(); st.RateLimit != 5 || st.CPUPressure < 0.4 || st.CPUPressure > 0.6 {
			t.Fatalf("at 9.5s of a node stalled half the time: rate %v pressure %v; want backed off to the floor 5 and pressure about 0.5", st.RateLimit, st.CPUPressure)
		}
		var out bytes.Buffer
		set.WritePrometheus(&out)
		if !strings.Contains(out.String(), "preheat_replay_cpu_pressure 0.") {
			t.Fatalf("metrics lack the pressure gauge:\n%s", out.String())
		}
		time.Sleep(15 * time.Second)
		if st := r.Stats(); st.RateLimit != 100 || st.CPUPressure != 0 {
			t.Fatalf("at 24.5s, the node free for 14s: rate %v pressure %v; want back at 100 and pressure 0", st.RateLimit, st.CPUPressure)
		}
	})
}

func TestReplayUnreadablePressureIsCountedNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{reply: echoID(time.Millisecond)}
		client := pipenet.Serve(t, tg)
		src := [][]session.Event{recorded(time.Now(), queries(50), make([]int, 50))}
		set := metrics.NewSet()
		r := newReplayer(t, "ws://pod/sync", replayer.Options{Rate: 20, MaxCPUPressure: 0.1,
			PressureFile: filepath.Join(t.TempDir(), "missing"), Correlate: "id", HTTPClient: client, Metrics: set})
		if err := r.Run(t.Context(), replayer.NewSliceSource(src)); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.MessagesSent != 50 || st.RateLimit != 20 || st.CPUPressure != -1 {
			t.Fatalf("stats %+v: want all 50 sent at the rate 20, pressure unknown (-1)", st)
		}
		var out bytes.Buffer
		set.WritePrometheus(&out)
		if !strings.Contains(out.String(), "preheat_replay_cpu_pressure_errors_total 1") {
			t.Fatalf("metrics lack one pressure error:\n%s", out.String())
		}
	})
}
