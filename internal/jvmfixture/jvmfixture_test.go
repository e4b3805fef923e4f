package jvmfixture_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/jvmfixture"
	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func dial(t *testing.T, s *jvmfixture.Server) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.URL(), &websocket.DialOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "sync.v3" {
		t.Errorf("subprotocol %q, want sync.v3", got)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

type reply struct {
	Type  string            `json:"type"`
	ID    *int              `json:"id"`
	Op    string            `json:"op"`
	Data  []json.RawMessage `json:"data"`
	Error string            `json:"error"`
}

func roundTrip(t *testing.T, c *websocket.Conn, msg []byte) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return r
}

func scrape(t *testing.T, s *jvmfixture.Server) string {
	t.Helper()
	resp, err := http.Get(s.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func metricValue(t *testing.T, text, name string) (float64, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestProtocol drives the corpus's whole vocabulary through one connection:
// every op with and without a filter and at every limit, mutations and
// bad input, and checks the answers and the metrics.
func TestProtocol(t *testing.T) {
	s := jvmfixture.Start(t, nil)
	c := dial(t, s)

	if r := roundTrip(t, c, []byte(`{"type":"query","id":1,"op":"tasks.list","params":{}}`)); r.Type != "error" || r.Error != "connect first" {
		t.Fatalf("query before connect: %+v", r)
	}
	g := corpus.New(7)
	if r := roundTrip(t, c, g.Connect()); r.Type != "connected" || r.ID == nil || *r.ID != 0 {
		t.Fatalf("connect: %+v", r)
	}
	seen := 0
	for range 40 {
		for _, kind := range corpus.Kinds {
			msg := g.Query(kind)
			r := roundTrip(t, c, msg)
			if r.Type != "result" || r.ID == nil || *r.ID != g.LastID() || r.Op != kind {
				t.Fatalf("%s: %+v", msg, r)
			}
			seen++
		}
	}
	const mutations = 5
	for range mutations {
		msg := g.Mutation()
		if r := roundTrip(t, c, msg); r.Type != "ack" || r.ID == nil || *r.ID != g.LastID() {
			t.Fatalf("%s: %+v", msg, r)
		}
	}
	// Rehearsals: a write to the sandbox workspace, and a dry run.
	sandbox := fmt.Sprintf(`{"type":"write","id":101,"params":{"workspace":%d,"object":5,"changes":{"name":"x"}}}`, jvmfixture.SandboxWorkspace)
	dry := `{"type":"delete","id":102,"dryRun":true,"params":{"workspace":1000003,"object":6,"changes":{"completed":true}}}`
	for _, msg := range []string{sandbox, sandbox, dry} {
		if r := roundTrip(t, c, []byte(msg)); r.Type != "ack" {
			t.Fatalf("%s: %+v", msg, r)
		}
	}
	for _, bad := range []string{`{"type":"query","id":9,"op":"nope.nope","params":{}}`, `{"type":"hello","id":10}`, `{not json`,
		`{"type":"write","id":11,"params":{"object":5,"changes":{"password":"x"}}}`, `{"type":"write","id":12,"params":{"changes":{"name":"x"}}}`} {
		if r := roundTrip(t, c, []byte(bad)); r.Type != "error" {
			t.Fatalf("%s: %+v", bad, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.CloseRead(ctx) // a pong is read by a concurrent reader
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}

	m := scrape(t, s)
	if v, ok := metricValue(t, m, "sync_mutations_total"); !ok || v != mutations {
		t.Fatalf("sync_mutations_total %v %v, want %d", v, ok, mutations)
	}
	for series, want := range map[string]float64{`sync_rehearsals_total{form="sandbox"}`: 2, `sync_rehearsals_total{form="dry_run"}`: 1, `sync_errors_total{kind="bad_write"}`: 2} {
		if v, ok := metricValue(t, m, series); !ok || v != want {
			t.Fatalf("%s %v %v, want %v", series, v, ok, want)
		}
	}
	if v, ok := metricValue(t, m, "jvm_compilation_time_ms_total"); !ok || v <= 0 {
		t.Fatalf("jvm_compilation_time_ms_total %v %v", v, ok)
	}
	for _, want := range []string{`jvm_scheduler_jitter_seconds_bucket{le="+Inf"}`, `sync_request_duration_seconds_bucket{le="0.001"}`, "sync_request_duration_seconds_count"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s:\n%s", want, m)
		}
	}
	resolvers := regexp.MustCompile(`sync_resolver_calls_total\{resolver="[^"]+"\} \d+`).FindAllString(m, -1)
	if len(resolvers) < 40 {
		t.Fatalf("the corpus reached %d resolvers, want at least 40 of %d:\n%s", len(resolvers), jvmfixture.Resolvers, strings.Join(resolvers, "\n"))
	}
	t.Logf("%d queries reached %d of %d resolvers", seen, len(resolvers), jvmfixture.Resolvers)
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestRefusesBadFrames(t *testing.T) {
	s := jvmfixture.Start(t, nil)

	// An oversize message is refused with 1009.
	c := dial(t, s)
	c.SetReadLimit(1 << 22)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := []byte(`{"type":"connect","pad":"` + strings.Repeat("x", 2<<20) + `"}`)
	_ = c.Write(ctx, websocket.MessageText, big)
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversize message: %v, want close 1009", err)
	}

	// A binary message is refused with 1003.
	c = dial(t, s)
	_ = c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("binary message: %v, want close 1003", err)
	}

	// An unmasked client frame is a protocol error (1002), on a raw
	// connection since a websocket client always masks.
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /sync HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", s.Addr())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %+v", err, resp)
	}
	conn.Write([]byte{0x81, 0x02, 'h', 'i'})
	frame := make([]byte, 4)
	if _, err := io.ReadFull(br, frame); err != nil || frame[0] != 0x88 || int(frame[2])<<8|int(frame[3]) != 1002 {
		t.Fatalf("unmasked frame: % x %v, want a 1002 close", frame, err)
	}

	// A plain HTTP request is not an upgrade.
	resp, err = http.Get("http://" + s.Addr() + "/sync")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %d, want 400", resp.StatusCode)
	}
}

// TestInterpreterHasNoCompileMetric checks the control the end-to-end test
// relies on: under -Xint the compile metric is absent.
func TestInterpreterHasNoCompileMetric(t *testing.T) {
	s := jvmfixture.Start(t, &jvmfixture.Options{JVMFlags: []string{"-Xint", "-Xmx256m"}, Tasks: 200})
	c := dial(t, s)
	g := corpus.New(1)
	roundTrip(t, c, g.Connect())
	if r := roundTrip(t, c, g.Query("tasks.list")); r.Type != "result" {
		t.Fatalf("query: %+v", r)
	}
	m := scrape(t, s)
	if strings.Contains(m, "jvm_compilation_time_ms_total") {
		t.Fatalf("-Xint exposes a compile metric:\n%s", m)
	}
	if !strings.Contains(m, "jvm_scheduler_jitter_seconds_count") {
		t.Fatalf("-Xint lacks the jitter metric:\n%s", m)
	}
}

// TestCloseLeavesNoProcess checks that Close ends the JVM and its process
// group, and is safe to call twice, whether the JVM shares the test's
// session (the default) or leads one of its own (one scheduling group
// under autogroup), and that CPUs restricts it to those processors with
// Pid still the JVM's.
func TestCloseLeavesNoProcess(t *testing.T) {
	own, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	mine := allowedCPUs(t, "self")
	for _, o := range []jvmfixture.Options{{}, {OwnSession: true}, {CPUs: mine[0]}} {
		o.Tasks = 100
		s, err := jvmfixture.Launch(context.Background(), &o)
		if err == jvmfixture.ErrNoJDK {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		pid := s.Pid()
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "java" {
			t.Errorf("%+v: Pid %d is %q (%v), not java", o, pid, comm, err)
		}
		if sid, err := unix.Getsid(pid); err != nil {
			t.Error(err)
		} else if want := map[bool]int{false: own, true: pid}[o.OwnSession]; sid != want {
			t.Errorf("OwnSession %v: the JVM's session is %d, want %d (the test's is %d)", o.OwnSession, sid, want, own)
		}
		if pgid, err := unix.Getpgid(pid); err != nil || pgid != pid {
			t.Errorf("%+v: the JVM's process group is %d (%v), want its own, %d", o, pgid, err, pid)
		}
		if got := allowedCPUs(t, strconv.Itoa(pid)); o.CPUs != "" && len(mine) > 1 && (len(got) != 1 || got[0] != o.CPUs) {
			t.Errorf("CPUs %q: the JVM may run on %v", o.CPUs, got)
		} else if o.CPUs == "" && len(got) != len(mine) {
			t.Errorf("no CPUs: the JVM may run on %v, the test on %v", got, mine)
		}
		s.Close()
		s.Close()
		if err := unix.Kill(-pid, 0); err != unix.ESRCH {
			t.Fatalf("process group %d after Close: %v, want ESRCH", pid, err)
		}
	}
}

// allowedCPUs returns the processors process pid ("self" or a number) may
// run on, from Cpus_allowed_list in /proc/PID/status, one entry each.
func allowedCPUs(t *testing.T, pid string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		list, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		var cpus []string
		for r := range strings.SplitSeq(strings.TrimSpace(list), ",") {
			lo, hi, _ := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if hi != "" {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("Cpus_allowed_list %q", list)
			}
			for c := a; c <= b; c++ {
				cpus = append(cpus, strconv.Itoa(c))
			}
		}
		return cpus
	}
	t.Fatalf("/proc/%s/status has no Cpus_allowed_list", pid)
	return nil
}
