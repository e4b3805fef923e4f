package replaycache

import (
	"log/slog"
	"testing"
	"time"

	"github.com/preheatdev/preheat/session"
)

func TestKindTable(t *testing.T) {
	var kt kindTable
	kt.init(3)
	intern := func(name string, mayAdd bool) (uint16, internResult) {
		k, r := kt.intern([]byte(name), mayAdd)
		if r != kindKnown && r != kindFull && r != kindLimited && r != kindTooLong {
			kt.hold(k) // as a session that gets the kind does
		}
		return k, r
	}
	a, r := intern("a", true)
	if r != kindAdded || kt.names[a] != "a" {
		t.Fatalf("intern a: %d %v", a, r)
	}
	if k, r := intern("a", true); k != a || r != kindKnown {
		t.Fatal("intern is not stable")
	}
	if k, r := intern("b", false); k != 0 || r != kindLimited {
		t.Errorf("a new kind was added without leave: %d %v", k, r)
	}
	b, _ := intern("b", true)
	if c, r := intern("c", true); c != 0 || kt.names[c] != otherKind || r != kindFull || b == a {
		t.Errorf("kinds past the bound: %d %q %v", c, kt.names[c], r)
	}
	if k, r := kt.intern(make([]byte, maxKindLen+1), true); kt.names[k] != otherKind || r != kindTooLong {
		t.Errorf("long kind interned as %q", kt.names[k])
	}
}

// When the table is full, a new kind takes the slot of the least recently
// seen kind no session holds, and the forgotten name is no longer known.
func TestKindTableForgetsIdleKindsOldestFirst(t *testing.T) {
	var kt kindTable
	kt.init(4)
	ks := map[string]uint16{}
	for _, name := range []string{"a", "b", "c"} {
		k, _ := kt.intern([]byte(name), true)
		kt.hold(k)
		kt.counts[k]++
		ks[name] = k
	}
	kt.intern([]byte("a"), true) // a is now seen after b and c
	kt.release(ks["a"], 1)
	kt.release(ks["b"], 1)
	k, r := kt.intern([]byte("d"), true)
	if r != kindReused || k != ks["b"] || kt.names[k] != "d" {
		t.Fatalf("d took %d (%q), %v; want b's slot %d", k, kt.names[k], r, ks["b"])
	}
	kt.hold(k)
	if _, ok := kt.lookup("b"); ok {
		t.Error("forgotten kind still known")
	}
	k, r = kt.intern([]byte("e"), true)
	if r != kindReused || k != ks["a"] {
		t.Fatalf("e took %d, %v; want a's slot %d", k, r, ks["a"])
	}
	kt.hold(k)
	if k, r := kt.intern([]byte("f"), true); k != 0 || r != kindFull {
		t.Errorf("f with every kind held: %d %v", k, r)
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
	up, down := session.ClientToServer, session.ServerToClient
	for i, m := range []struct {
		dir session.Direction
		msg string
	}{{up, `{"op":"a"}`}, {down, `{"type":"r"}`}, {up, `{"op":"b"}`}, {down, `{"type":"r"}`}, {up, `{"op":"a"}`}} {
		evs = append(evs, session.Event{Session: id, Seq: uint64(i + 1), Kind: session.KindFrame,
			Direction: m.dir, Opcode: session.Text, Offset: time.Millisecond, Payload: []byte(m.msg)})
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
			MaxPendingEvents: 4, MaxOrphanBytes: 4 << 10, MaxBytes: 64 << 10, SealBytes: 512, MaxKinds: 3})
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
		checkKinds(t, c)
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

// checkKinds fails unless the kind table's counts are those of the cached
// sessions and exactly the kinds no session holds (other aside) are idle.
// It must be called with c.mu held.
func checkKinds(t *testing.T, c *Cache) {
	t.Helper()
	kt := &c.kinds
	holders := make([]int32, len(kt.names))
	counts := make([]int64, len(kt.names))
	for _, e := range c.sessions {
		for i, k := range e.kinds {
			holders[k]++
			counts[k] += int64(e.kindCounts[i])
		}
	}
	for k := range kt.names {
		if holders[k] != kt.holders[k] || counts[k] != kt.counts[k] {
			t.Fatalf("kind %q: %d holders, %d messages; table says %d, %d", kt.names[k], holders[k], counts[k], kt.holders[k], kt.counts[k])
		}
		if idle := kt.idle.pos[k] >= 0; idle != (k != 0 && holders[k] == 0) {
			t.Fatalf("kind %q with %d holders idle %v", kt.names[k], holders[k], idle)
		}
		if i, ok := kt.index[kt.names[k]]; !ok || int(i) != k {
			t.Fatalf("kind %q at %d indexed at %d", kt.names[k], k, i)
		}
	}
	if len(kt.index) != len(kt.names) {
		t.Fatalf("%d names indexed, %d in the table", len(kt.index), len(kt.names))
	}
}
