package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/inspect"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/leaktest"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// preheat runs the command line in-process and returns its exit code and
// output.
func preheat(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	code, out, _ := preheat(t, "help")
	if code != 0 {
		t.Fatalf("help exited %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name) {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
		code, out, errOut := preheat(t, c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: preheat "+c.name) || !strings.Contains(out, "Flags:") {
			t.Errorf("%s --help: exit %d\nstdout:\n%s\nstderr:\n%s", c.name, code, out, errOut)
		}
	}
	if code, _, errOut := preheat(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := preheat(t, "inspect", "--no-such-flag"); code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := preheat(t, "version")
	if code != 0 || !strings.HasPrefix(out, "preheat ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// writeSessions puts n corpus sessions into a directory log, in batches of
// four events, and returns them.
func writeSessions(t *testing.T, dir string, n int) [][]session.Event {
	t.Helper()
	p, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := corpus.New(99)
	var all [][]session.Event
	start := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	for i := range n {
		evs := g.Session(start.Add(time.Duration(i)*time.Minute), 3)
		all = append(all, evs)
		for rest := evs; len(rest) > 0; {
			k := min(4, len(rest))
			b, err := session.AppendBatch(nil, rest[:k])
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Put(context.Background(), evs[0].Session.String(), b); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return all
}

func TestInspectList(t *testing.T) {
	dir := t.TempDir()
	sessions := writeSessions(t, dir, 5)
	url := "file://" + dir

	code, out, errOut := preheat(t, "inspect", "--stream", url)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errOut)
	}
	for _, evs := range sessions {
		line := lineWith(out, evs[0].Session.String())
		if line == "" {
			t.Fatalf("session %s not listed:\n%s", evs[0].Session, out)
		}
		if !strings.Contains(line, "/sync?client=web") || !strings.HasSuffix(strings.TrimSpace(line), "closed") {
			t.Errorf("listing line %q lacks route or state", line)
		}
	}
	if !strings.Contains(out, "5 sessions in") {
		t.Errorf("no total line:\n%s", out)
	}

	code, out, errOut = preheat(t, "inspect", "--stream", url, "--json", "--limit", "2")
	if code != 0 {
		t.Fatalf("inspect --json: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("--limit 2 printed %d lines:\n%s", len(lines), out)
	}
	var s inspect.Summary
	if err := json.Unmarshal([]byte(lines[1]), &s); err != nil {
		t.Fatal(err)
	}
	last := sessions[len(sessions)-1]
	frames := 0
	for _, e := range last {
		if e.Kind == session.KindFrame && e.Direction == session.ClientToServer {
			frames++
		}
	}
	if s.ID != last[0].Session || s.State != "closed" || s.ClientFrames != frames || s.Events != len(last) {
		t.Errorf("newest session summary = %+v; want id %s, closed, %d client frames, %d events", s, last[0].Session, frames, len(last))
	}
}

func TestInspectSession(t *testing.T) {
	dir := t.TempDir()
	sessions := writeSessions(t, dir, 3)
	evs := sessions[1]
	url := "file://" + dir

	code, out, errOut := preheat(t, "inspect", "--stream", url, "--session", evs[0].Session.String())
	if code != 0 {
		t.Fatalf("inspect --session: exit %d: %s", code, errOut)
	}
	for _, e := range evs {
		if e.Kind == session.KindFrame && !strings.Contains(out, string(e.Payload)) {
			t.Fatalf("payload of seq %d missing:\n%s", e.Seq, out)
		}
	}

	code, out, errOut = preheat(t, "inspect", "--stream", url, "--session", evs[0].Session.String(), "--json")
	if code != 0 {
		t.Fatalf("inspect --session --json: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d JSON lines for %d events", len(lines), len(evs))
	}
	for i, l := range lines {
		var j session.JSON
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatal(err)
		}
		if j.Seq != evs[i].Seq || j.Kind != evs[i].Kind.String() {
			t.Fatalf("line %d = %+v, want seq %d kind %s", i, j, evs[i].Seq, evs[i].Kind)
		}
		if evs[i].Kind == session.KindFrame && (j.Payload == nil || *j.Payload != string(evs[i].Payload)) {
			t.Fatalf("line %d payload differs", i)
		}
	}

	missing := session.NewID().String()
	if code, _, errOut := preheat(t, "inspect", "--stream", url, "--session", missing); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown session: exit %d, %q", code, errOut)
	}
	if code, _, errOut := preheat(t, "inspect", "--stream", url, "--session", "nope"); code != 2 || !strings.Contains(errOut, "parse session id") {
		t.Errorf("bad session id: exit %d, %q", code, errOut)
	}
}

// TestInspectCorruptRecord checks that a record that is not a valid batch is
// reported and skipped, and the rest still listed.
func TestInspectCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	sessions := writeSessions(t, dir, 2)
	p, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(context.Background(), session.NewID().String(), []byte("not a batch")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := preheat(t, "inspect", "--stream", "file://"+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "skipped 1 corrupt records") {
		t.Errorf("corrupt record not reported: %q", errOut)
	}
	for _, evs := range sessions {
		if lineWith(out, evs[0].Session.String()) == "" {
			t.Errorf("session %s not listed", evs[0].Session)
		}
	}
}

func TestInspectUsage(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := preheat(t, append([]string{"inspect"}, args...)...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("inspect %q: exit %d, stderr %q; want 2 and %q", args, code, errOut, want)
		}
	}
	f("--stream is required")
	f("unknown scheme", "--stream", "ftp://x")
	f("must not be negative", "--stream", "file:///tmp", "--since", "-1m")
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole demo in real time: about a minute")
	}
	dir := filepath.Join(t.TempDir(), "stream")
	report := filepath.Join(t.TempDir(), "report")
	var outb, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, []string{"demo", "--clients", "6", "--queries", "10", "--scale", "0.2", "--capture-max", "10s",
		"--window", "8s", "--min-warm", "3s", "--deadline", "90s",
		// A loaded test machine's scheduler jitter is its own, not the simulator's.
		"--max-jitter", "1",
		"--first-traffic", "2s", "--dir", dir, "--report", report}, &outb, &errb)
	out := outb.String()
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errb.String())
	}
	for _, want := range []string{"capture: 6 clients", "connect tokens arrive redacted", "warm: warm after",
		"server B, warmed by preheat", "server C, not warmed", "server B, steady state", "No mutating message reached server B",
		filepath.Join(report, "warm-report.html")} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = preheat(t, "inspect", "--stream", "file://"+dir)
	if code != 0 || !strings.Contains(out, " sessions in") {
		t.Fatalf("inspect after demo: exit %d\n%s", code, out)
	}
}

func lineWith(out, s string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestInspectEscapesControlCharacters checks that what a client sent cannot
// drive the operator's terminal or forge lines: control characters in
// payloads and routes are printed escaped, one event a line, and printable
// text of any script stays readable.
func TestInspectEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	id := session.NewID()
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	hostile := "before\x1b]0;pwned\x07after\rover\nSEQ 99 fake line\u009b31m\u202eevil\x7f"
	evs := []session.Event{
		{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{Route: "/sync?x=\x1b[2J", Start: start, TapID: "tap\r1"}},
		{Session: id, Seq: 1, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text, Payload: []byte(hostile)},
		{Session: id, Seq: 2, Kind: session.KindFrame, Direction: session.ServerToClient, Opcode: session.Text, Payload: []byte("héllo, 世界 ✓")},
		{Session: id, Seq: 3, Kind: session.KindClose, Offset: time.Second, Code: 1000, ClosedBy: session.SideClient},
	}
	p, err := dirlog.NewProducer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := session.AppendBatch(nil, evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(context.Background(), id.String(), b); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	unsafe := func(out string) string {
		for _, r := range out {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
				return fmt.Sprintf("%U", r)
			}
		}
		return ""
	}
	url := "file://" + dir
	for _, args := range [][]string{
		{"--session", id.String()},
		{"--session", id.String(), "--json"},
		{},
		{"--json"},
	} {
		code, out, errOut := preheat(t, append([]string{"inspect", "--stream", url}, args...)...)
		if code != 0 {
			t.Fatalf("inspect %q: exit %d: %s", args, code, errOut)
		}
		if r := unsafe(out); r != "" {
			t.Errorf("inspect %q printed %s raw:\n%q", args, r, out)
		}
	}
	code, out, _ := preheat(t, "inspect", "--stream", url, "--session", id.String())
	if code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1+len(evs) {
		t.Errorf("%d lines for %d events, want one each and a header:\n%s", len(lines), len(evs), out)
	}
	for _, want := range []string{`before\x1b]0;pwned\x07after\rover\nSEQ 99 fake line\u009b31m\u202eevil\x7f`, "héllo, 世界 ✓", `/sync?x=\x1b[2J`, `tap=tap\r1`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = preheat(t, "inspect", "--stream", url, "--session", id.String(), "--json")
	var j session.JSON
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[1]), &j); err != nil || j.Payload == nil || *j.Payload != hostile {
		t.Errorf("--json does not carry the payload exactly: %v %q", err, out)
	}
}
