package replaycache

import (
	"log/slog"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
)

func TestTopLevelField(t *testing.T) {
	fields := []string{"op", "type"}
	f := func(msg, want string) {
		t.Helper()
		v, ok := topLevelField([]byte(msg), fields, 1<<10)
		if string(v) != want || ok != (want != "") {
			t.Errorf("topLevelField(%s) = %q, %v; want %q", msg, v, ok, want)
		}
	}
	f(`{"type":"query","id":1,"op":"tasks.list"}`, "tasks.list")
	f(`{"type":"connect","id":0}`, "connect")
	f(` { "params" : {"op":"nested","type":"x"}, "list":["op",{"op":1}], "type" : "query" } `, "query")
	f(`{"s":"a \"quoted\" op","op":"x"}`, "x")
	f(`{"op":7}`, "7")
	f(`{"op":true,"type":"t"}`, "true")
	f(`{"op":{"a":1},"type":"t"}`, "t")
	f(`{"op":["a"]}`, "")
	f(`{"op":""}`, "")
	f(`{"o\u0070":"escaped key","type":"t"}`, "t")
	f(`["op","x"]`, "")
	f(`not json`, "")
	f(``, "")
	f(`{"type":"query","op":"cut`, "query")
	f(`{"type":"q","op":12`, "q") // a number cut by the scan limit
	f(`{"a":1 "op":"x"}`, "")
	f(`{"type":,`, "")
	f(`{"a":,"op":"x"}`, "")

	long := `{"pad":"` + string(make([]byte, 2000)) + `","op":"far"}`
	if _, ok := topLevelField([]byte(long), fields, 1000); ok {
		t.Error("found a field past the scan limit")
	}
}

func FuzzTopLevelField(f *testing.F) {
	g := corpus.New(1)
	f.Add(g.Connect())
	f.Add(g.Query("tasks.list"))
	f.Add([]byte(`{"op":"a\"b","type":[1,{"x":"}"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := topLevelField(b, []string{"op", "type", "kind"}, 256)
		if ok && len(v) == 0 {
			t.Fatal("empty kind reported")
		}
	})
}

func TestKindTable(t *testing.T) {
	var kt kindTable
	kt.init(3)
	a := kt.intern([]byte("a"))
	if kt.intern([]byte("a")) != a || kt.names[a] != "a" {
		t.Fatal("intern is not stable")
	}
	b := kt.intern([]byte("b"))
	if c := kt.intern([]byte("c")); c != 0 || kt.names[c] != otherKind || b == a {
		t.Errorf("kinds past the bound: %d %q", c, kt.names[c])
	}
	if k := kt.intern(make([]byte, maxKindLen+1)); kt.names[k] != otherKind {
		t.Errorf("long kind interned as %q", kt.names[k])
	}
}

// FuzzApply feeds arbitrary batches to the reassembly and checks that the
// cache stays consistent: every cached session decodes, starts with its
// open event, has no repeated or decreasing sequence numbers, and the bytes
// accounted add up.
func FuzzApply(f *testing.F) {
	// Small batches: the fuzzer minimizes every input that finds new
	// coverage, which takes long for kilobytes of compressed data.
	start := time.Now().Truncate(time.Microsecond)
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: "/s", Start: start}}}
	for i, msg := range []string{`{"op":"a"}`, `{"type":"r"}`, `{"op":"b"}`, `{"type":"r"}`, `{"op":"a"}`} {
		evs = append(evs, session.Event{Session: id, Seq: uint64(i + 1), Kind: session.KindFrame,
			Direction: session.Direction(1 + i%2), Opcode: session.Text, Offset: time.Millisecond, Payload: []byte(msg)})
	}
	evs = append(evs, session.Event{Session: id, Seq: 6, Kind: session.KindClose, Code: 1000})
	enc := func(evs []session.Event) []byte {
		b, err := session.AppendBatch(nil, evs)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(enc(evs[:3]), enc(evs[5:]), enc(evs[2:6]))
	f.Add(enc(evs[4:]), enc(evs[:1]), enc(evs[1:5]))
	f.Add(enc(evs[1:]), []byte{0xb7, 1}, enc(evs[:2]))
	f.Fuzz(fuzzApply)
}

func fuzzApply(t *testing.T, b1, b2, b3 []byte) {
	start := time.Now().Truncate(time.Microsecond)
	{
		now := start.Add(time.Second)
		c := New(nil, &Options{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
			MaxPendingEvents: 4, MaxOrphanBytes: 4 << 10, MaxBytes: 64 << 10, SealBytes: 512})
		for _, b := range [][]byte{b1, b2, b3} {
			evs, err := session.DecodeBatch(b, nil)
			if err != nil {
				continue
			}
			c.apply(decoded{partition: "0", at: now, events: evs})
			now = now.Add(3 * time.Second)
			c.tick()
		}
		now = now.Add(time.Minute) // every timer but the window's is due
		c.tick()
		c.mu.Lock()
		var total int64
		for _, e := range c.sessions {
			total += e.bytes
		}
		if total != c.bytes || c.bytes > c.opts.MaxBytes {
			t.Fatalf("bytes %d, sessions hold %d, max %d", c.bytes, total, c.opts.MaxBytes)
		}
		ids := make([]session.ID, 0, len(c.sessions))
		for id := range c.sessions {
			ids = append(ids, id)
		}
		c.mu.Unlock()
		for _, id := range ids {
			v, ok := c.Get(id)
			if !ok {
				continue
			}
			var got []session.Event
			for _, b := range v.Batches {
				var err error
				if got, err = session.DecodeBatch(b, got); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) == 0 || got[0].Kind != session.KindOpen || got[0].Seq != 0 {
				t.Fatalf("session %s does not start with its open event: %+v", id, got)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatalf("session %s: seq %d after %d", id, got[i].Seq, got[i-1].Seq)
				}
			}
		}
	}
}
