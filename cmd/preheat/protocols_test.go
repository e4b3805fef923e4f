package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/protopeer"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/session"
)

// TestWarmReplaysRealProtocolsWithoutWrites captures real client sessions
// of each protocol (the npm libraries' own clients, reads and writes)
// through the real tap, then warms a fresh server of the same kind from the
// cache with default safety. The fresh server's own counters must show no
// write executed, every handshake acknowledged, no session closed for a
// protocol error, and reads answered.
func TestWarmReplaysRealProtocolsWithoutWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("real protocol peers: about a minute")
	}
	for _, kind := range protopeer.Kinds {
		t.Run(kind, func(t *testing.T) {
			res := warmProtocol(t, kind)
			t.Logf("%s: recorded %+v; replay %+v; fresh server %+v", kind, res.recorded, res.stats, res.fresh)
			// The figures of docs/benchmarks.md: each recorded session
			// replayed once, with default safety, against a fresh server.
			t.Logf("figure %s: writes executed %d of %d recorded; reads answered %d of %d recorded (%.1f%%); subscriptions completed %d of %d; sessions failed %v; protocol errors %d",
				kind, res.once.Writes, res.recorded.Writes, res.once.Reads, res.recorded.Reads, 100*float64(res.once.Reads)/float64(res.recorded.Reads),
				res.once.SubscriptionsCompleted, res.recorded.SubscriptionsCompleted, res.onceStats.SessionsFailed, res.once.ProtocolErrors)
			if res.once.Writes != 0 || res.once.ProtocolErrors != 0 || len(res.onceStats.SessionsFailed) != 0 {
				t.Errorf("replayed once: %d writes, %d protocol errors, sessions failed %v", res.once.Writes, res.once.ProtocolErrors, res.onceStats.SessionsFailed)
			}
			// Subscriptions complete before their session closes. (The
			// JSON-RPC peer starts its ticks with "ticks.start", and "start"
			// is a write verb: not replayed.)
			if kind != protopeer.JSONRPC && res.once.SubscriptionsCompleted != res.recorded.SubscriptionsCompleted {
				t.Errorf("replayed once: %d of the %d recorded subscriptions completed", res.once.SubscriptionsCompleted, res.recorded.SubscriptionsCompleted)
			}
			if float64(res.once.Reads) < 0.95*float64(res.recorded.Reads) {
				t.Errorf("replayed once: %d of the %d recorded reads answered, want at least 95%%", res.once.Reads, res.recorded.Reads)
			}
			if res.fresh.Writes != 0 {
				t.Errorf("%d writes executed on the warmed server (%v)", res.fresh.Writes, res.fresh.WritesByKind)
			}
			// A session the deadline stopped may have its connection
			// dropped after the stop's grace (the socket.io server counts
			// that as a transport error); nothing else may count.
			errs := res.fresh.ProtocolErrors - min(res.fresh.ProtocolErrorsByKind["engine transport error"], int(res.stats.SessionsStopped))
			if errs != 0 {
				t.Errorf("the warmed server saw %d protocol errors: %v", res.fresh.ProtocolErrors, res.fresh.ProtocolErrorsByKind)
			}
			// Sessions that the warm-up's end stopped may not have had
			// their handshake acknowledged; every other one must.
			if unacked := res.fresh.Connections - res.fresh.Handshakes; res.fresh.Connections == 0 || unacked < 0 || unacked > int(res.stats.SessionsStopped) {
				t.Errorf("handshakes acknowledged %d of %d connections, %d sessions stopped at the end", res.fresh.Handshakes, res.fresh.Connections, res.stats.SessionsStopped)
			}
			if res.fresh.Reads == 0 {
				t.Errorf("no read answered")
			}
			if failed := res.stats.SessionsFailed; len(failed) != 0 {
				t.Errorf("replayed sessions failed: %v", failed)
			}
			if res.stats.MessagesSkipped["mutating"] == 0 {
				t.Errorf("no write recognised and skipped: %v", res.stats.MessagesSkipped)
			}
			if n := res.stats.MessagesSkipped["unknown"]; n != 0 {
				t.Errorf("%d messages of real clients judged unknown: %v", n, res.stats.SkippedByKind["unknown"])
			}
		})
	}
}

// protocolRun is what one protocol's capture and warm-up produced.
type protocolRun struct {
	recorded, fresh protopeer.Counters
	stats           replayer.Stats
	sessions        int // client sessions recorded
	// once and onceStats are a fresh server's counters and the replay's
	// after each recorded session was replayed exactly once.
	once      protopeer.Counters
	onceStats replayer.Stats
}

// warmProtocol records client sessions of kind through the tap into a
// directory log, serves them from the cache, and warms a fresh server of
// kind with them until the warm-up's deadline.
func warmProtocol(t *testing.T, kind string) protocolRun {
	t.Helper()
	const sessions = 12
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cacheAddr, rc := recordProtocol(ctx, t, kind, nil, protopeer.ClientOptions{Sessions: sessions, Concurrency: 4, Writes: true})
	once, onceStats := replayOnce(ctx, t, kind, nil, cacheAddr, sessions)

	fresh := protopeer.Start(t, kind)
	fu, err := url.Parse(fresh.URL)
	if err != nil {
		t.Fatal(err)
	}
	readyAddr, stopWarm := startCommand(t, "warm: serving /readyz", "warm", "--target", "ws://"+fu.Host,
		"--cache", "http://"+cacheAddr, "--no-jit", "--ready-addr", "127.0.0.1:0",
		"--window", "10s", "--min-warm", "0s", "--deadline", "12s", "--min-responses", "0",
		"--rate", "200", "--concurrency", "4", "--progress", "0", "--correlate", "")
	st := waitWarmEnd(t, readyAddr, 40*time.Second)
	fc, err := fresh.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopWarm()
	return protocolRun{recorded: rc, fresh: fc, stats: st, sessions: sessions, once: once, onceStats: onceStats}
}

// recordProtocol captures client sessions of kind, run with copts against a
// server started with sopts, through the tap into a directory log, and
// serves them from a cache. It returns the cache's address and the
// recorded server's counters.
func recordProtocol(ctx context.Context, t *testing.T, kind string, sopts *protopeer.ServerOptions, copts protopeer.ClientOptions) (string, protopeer.Counters) {
	t.Helper()
	dir := t.TempDir()
	recorded := protopeer.StartWithOptions(t, kind, sopts)
	u, err := url.Parse(recorded.URL)
	if err != nil {
		t.Fatal(err)
	}
	tapAddr, stopTap := startCommand(t, "tap listening", "tap", "--listen", "127.0.0.1:0", "--admin-listen", "",
		"--upstream", "http://"+u.Host, "--stream", "file://"+dir, "--sample", "1", "--shutdown-timeout", "2s")
	through := "ws://" + tapAddr + u.RequestURI()
	sum, err := protopeer.RunClients(ctx, t, kind, through, copts)
	if err != nil {
		t.Fatalf("clients through the tap: %v (%+v)", err, sum)
	}
	rc, err := recorded.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Reads == 0 || (copts.Writes && rc.Writes == 0) {
		t.Fatalf("the recorded clients did %d writes and %d reads: nothing to prove", rc.Writes, rc.Reads)
	}
	if code := stopTap(); code != 0 {
		t.Fatalf("tap exited %d", code)
	}
	cacheAddr, _ := startCommand(t, "cache listening", "cache", "--listen", "127.0.0.1:0", "--stream", "file://"+dir, "--window", "10m")
	waitCacheSessions(t, cacheAddr, copts.Sessions)
	return cacheAddr, rc
}

// TestReplayAnswersSocketIOPingsItself: sessions recorded while the
// Socket.IO server pinged every 100ms hold the recorded client's pongs;
// replayed against a server that pings as often and closes a connection
// whose ping goes unanswered for 100ms, the replay sends none of the
// recorded pongs and answers the live pings itself.
func TestReplayAnswersSocketIOPingsItself(t *testing.T) {
	if testing.Short() {
		t.Skip("real protocol peers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sopts := &protopeer.ServerOptions{PingInterval: 100 * time.Millisecond}
	const sessions = 4
	cacheAddr, _ := recordProtocol(ctx, t, protopeer.SocketIO, sopts, protopeer.ClientOptions{Sessions: sessions, Concurrency: 2, Ticks: 30})
	c, st := replayOnce(ctx, t, protopeer.SocketIO, sopts, cacheAddr, sessions)
	t.Logf("server %+v; replay %+v", c, st)
	if c.ProtocolErrors != 0 || len(st.SessionsFailed) != 0 || c.SubscriptionsCompleted != sessions {
		t.Fatalf("protocol errors %v, sessions failed %v, subscriptions completed %d of %d",
			c.ProtocolErrorsByKind, st.SessionsFailed, c.SubscriptionsCompleted, sessions)
	}
	if st.Answered == 0 || st.MessagesSkipped["reply"] == 0 {
		t.Fatalf("answered %d live pings, skipped %d recorded pongs: want both", st.Answered, st.MessagesSkipped["reply"])
	}
}

// replayOnce replays each of the n sessions the cache at addr holds once,
// with default safety, against a fresh server of kind started with sopts,
// and returns the server's counters and the replay's.
func replayOnce(ctx context.Context, t *testing.T, kind string, sopts *protopeer.ServerOptions, addr string, n int) (protopeer.Counters, replayer.Stats) {
	t.Helper()
	client, err := replaycache.NewClient("http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := client.Select(ctx, replaycache.SelectRequest{Filter: replaycache.Filter{Limit: n, CompleteOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var sessions [][]session.Event
	for {
		s, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s.Events)
	}
	if len(sessions) != n {
		t.Fatalf("the cache served %d sessions, want %d", len(sessions), n)
	}
	srv := protopeer.StartWithOptions(t, kind, sopts)
	su, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := replayer.New("ws://"+su.Host, &replayer.Options{Rate: -1, Concurrency: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.Run(ctx, replayer.NewSliceSource(sessions)); err != nil {
		t.Fatal(err)
	}
	c, err := srv.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, rp.Stats()
}

// waitCacheSessions waits until the cache at addr holds n whole sessions.
func waitCacheSessions(t *testing.T, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Sessions int `json:"sessions"`
			Live     int `json:"live"`
		}
		err := getJSON("http://"+addr+"/v1/status", &st)
		if err == nil && st.Sessions >= n && st.Live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %+v (%v), want %d whole sessions", st, err, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitWarmEnd polls a warm-up's /status until it has decided, and returns
// the replay's counters then.
func waitWarmEnd(t *testing.T, addr string, limit time.Duration) replayer.Stats {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var st struct {
			Decision struct {
				Outcome string `json:"outcome"`
			} `json:"decision"`
			Replay replayer.Stats `json:"replay"`
		}
		err := getJSON("http://"+addr+"/status", &st)
		if err == nil && st.Decision.Outcome != "" {
			// The replay stops at the decision; its counters settle once
			// its sessions have closed.
			time.Sleep(replayStopGrace + 500*time.Millisecond)
			if err := getJSON("http://"+addr+"/status", &st); err != nil {
				t.Fatal(err)
			}
			return st.Replay
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm-up undecided after %v (%v)", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getJSON(u string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
