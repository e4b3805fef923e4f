package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// record encodes evs as one stream record of their session, accepted at at.
func record(t *testing.T, at time.Time, evs ...session.Event) stream.Record {
	t.Helper()
	b, err := session.AppendBatch(nil, evs)
	if err != nil {
		t.Fatal(err)
	}
	return stream.Record{Partition: "0", Position: "1", Key: evs[0].Session.String(), Data: b, Time: at}
}

func open(id session.ID, seq uint64, start time.Time, route string) session.Event {
	return session.Event{Session: id, Seq: seq, Kind: session.KindOpen, Open: &session.Info{Route: route, Start: start, TapID: "tap-1"}}
}

func frame(id session.ID, seq uint64, dir session.Direction, payload string) session.Event {
	return session.Event{Session: id, Seq: seq, Kind: session.KindFrame, Direction: dir, Opcode: session.Text,
		Offset: time.Duration(seq) * 100 * time.Millisecond, Payload: []byte(payload)}
}

func closing(id session.ID, seq uint64) session.Event {
	return session.Event{Session: id, Seq: seq, Kind: session.KindClose, Offset: time.Duration(seq) * 100 * time.Millisecond,
		Code: 1000, ClosedBy: session.SideClient}
}

// list returns WriteList's JSON lines, decoded, by session.
func list(t *testing.T, in *Inspector) map[session.ID]Summary {
	t.Helper()
	var buf bytes.Buffer
	if err := in.WriteList(&buf, &ListOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	got := map[session.ID]Summary{}
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var s Summary
		if err := dec.Decode(&s); err != nil {
			t.Fatal(err)
		}
		got[s.ID] = s
	}
	return got
}

func TestInspectorStates(t *testing.T) {
	closed, open_, gaps, noConnect := session.ID{1}, session.ID{2}, session.ID{3}, session.ID{4}
	in := New(session.ID{})
	in.Add(record(t, t0, open(closed, 0, t0, "/a"), frame(closed, 1, session.ClientToServer, "hi"), frame(closed, 2, session.ServerToClient, "hello")))
	in.Add(record(t, t0, closing(closed, 3)))
	in.Add(record(t, t0, open(open_, 0, t0, "/b"), frame(open_, 1, session.ClientToServer, "q")))
	in.Add(record(t, t0, open(gaps, 0, t0, "/c"), frame(gaps, 3, session.ClientToServer, "late"), closing(gaps, 4)))
	in.Add(record(t, t0, frame(noConnect, 5, session.ServerToClient, "orphan")))
	got := list(t, in)

	f := func(id session.ID, state string, missing int) {
		t.Helper()
		s, ok := got[id]
		if !ok {
			t.Fatalf("session %s not listed", id)
		}
		if s.State != state || s.Missing != missing {
			t.Errorf("session %s: state %q, %d missing; want %q, %d", id, s.State, s.Missing, state, missing)
		}
	}
	f(closed, "closed", 0)
	f(open_, "open", 0)
	f(gaps, "gaps", 2)
	f(noConnect, "no-connect", 5)

	c := got[closed]
	if c.ClientFrames != 1 || c.ServerFrames != 1 || c.ClientBytes != 2 || c.ServerBytes != 5 || c.Events != 4 ||
		c.Route != "/a" || c.TapID != "tap-1" || c.CloseCode != 1000 || c.ClosedBy != "client" || c.Duration != 300*time.Millisecond {
		t.Errorf("closed session summary = %+v", c)
	}
}

func TestInspectorCountsDuplicatesOnce(t *testing.T) {
	id := session.ID{1}
	evs := []session.Event{open(id, 0, t0, "/a"), frame(id, 1, session.ClientToServer, "hi"), closing(id, 2)}
	in := New(session.ID{})
	in.Add(record(t, t0, evs...))
	in.Add(record(t, t0, evs[1:]...)) // redelivered
	s := list(t, in)[id]
	if s.Events != 3 || s.Duplicates != 2 || s.ClientFrames != 1 || s.State != "closed" {
		t.Errorf("summary = %+v; want 3 events, 2 duplicates, 1 client frame, closed", s)
	}
}

func TestInspectorSkipsCorruptRecords(t *testing.T) {
	id := session.ID{1}
	in := New(session.ID{})
	in.Add(stream.Record{Partition: "p7", Position: "42", Key: "x", Data: []byte("not a batch")})
	in.Add(record(t, t0, open(id, 0, t0, "/a"), closing(id, 1)))
	in.Add(stream.Record{Partition: "p8", Position: "9", Key: "y", Data: []byte("nor this")})
	n, first := in.Corrupt()
	if n != 2 || first == nil || !strings.Contains(first.Error(), "p7 at 42") {
		t.Errorf("Corrupt() = %d, %v; want 2 and the first naming p7 at 42", n, first)
	}
	var buf bytes.Buffer
	if err := in.WriteList(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), "1 sessions in 3 records\n") || !strings.Contains(buf.String(), id.String()) {
		t.Errorf("list:\n%s", buf.String())
	}
}

func TestWriteListOldestFirstAndLimitKeepsNewest(t *testing.T) {
	in := New(session.ID{})
	ids := []session.ID{{3}, {1}, {2}}
	for i, id := range ids {
		// Connected a minute apart in the order of ids, ids not sorted.
		in.Add(record(t, t0, open(id, 0, t0.Add(time.Duration(i)*time.Minute), "/r"), closing(id, 1)))
	}
	// No connect seen: sorted by when its record was accepted.
	in.Add(record(t, t0.Add(90*time.Second), frame(session.ID{9}, 4, session.ClientToServer, "x")))

	var buf bytes.Buffer
	if err := in.WriteList(&buf, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []session.ID{{3}, {1}, {9}, {2}}
	if len(lines) != 2+len(want) {
		t.Fatalf("%d lines, want a header, %d sessions and a count:\n%s", len(lines), len(want), buf.String())
	}
	for i, id := range want {
		if !strings.HasPrefix(lines[1+i], id.String()) {
			t.Errorf("line %d = %q, want session %s", 1+i, lines[1+i], id)
		}
	}
	if !strings.Contains(lines[3], "no-connect (4 missing)") || !strings.Contains(lines[3], "  -  ") {
		t.Errorf("session without a connect: %q, want no start and its missing events", lines[3])
	}

	buf.Reset()
	if err := in.WriteList(&buf, &ListOptions{JSON: true, Limit: 2}); err != nil {
		t.Fatal(err)
	}
	var s Summary
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("--limit 2 wrote %d lines:\n%s", len(lines), buf.String())
	}
	if err := json.Unmarshal([]byte(lines[1]), &s); err != nil || s.ID != (session.ID{2}) {
		t.Errorf("newest = %+v, %v; want session %s", s, err, session.ID{2})
	}
}

func TestWriteSessionInOrderWithGaps(t *testing.T) {
	id, other := session.ID{1}, session.ID{2}
	in := New(id)
	in.Add(record(t, t0, frame(id, 4, session.ServerToClient, "four"), closing(id, 5)))
	in.Add(record(t, t0, open(other, 0, t0, "/other")))
	in.Add(record(t, t0, open(id, 0, t0, "/mine"), frame(id, 1, session.ClientToServer, "one")))
	in.Add(record(t, t0, frame(id, 1, session.ClientToServer, "one again")))

	var buf bytes.Buffer
	if err := in.WriteSession(&buf, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want a header, 4 events and a gap:\n%s", len(lines), out)
	}
	for i, want := range []string{"SEQ", "0 ", "1 ", "(missing 2-3)", "4 ", "5 "} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want %q", i, lines[i], want)
		}
	}
	if !strings.Contains(out, "route=/mine") || strings.Contains(out, "/other") || strings.Contains(out, "one again") {
		t.Errorf("not the session's events, first of each sequence number:\n%s", out)
	}

	buf.Reset()
	if err := in.WriteSession(&buf, true); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var j session.JSON
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, j.Seq)
	}
	if len(seqs) != 4 || seqs[0] != 0 || seqs[1] != 1 || seqs[2] != 4 || seqs[3] != 5 {
		t.Errorf("JSON sequence numbers %v, want [0 1 4 5] and no gap line", seqs)
	}
}

func TestWriteSessionNotFound(t *testing.T) {
	id := session.ID{1}
	in := New(id)
	in.Add(record(t, t0, open(session.ID{2}, 0, t0, "/other")))
	err := in.WriteSession(&bytes.Buffer{}, false)
	if err == nil || !strings.Contains(err.Error(), "session "+id.String()+" not found") {
		t.Errorf("WriteSession of an absent session: %v", err)
	}
}
