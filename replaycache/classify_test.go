package replaycache_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// msg is one message of a session built by protoSession: from the client
// unless server is set.
type msg struct {
	text   string
	server bool
	binary bool
}

// protoSession builds a whole session of the given subprotocol and route.
func protoSession(start time.Time, subprotocol, route string, msgs ...msg) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Kind: session.KindOpen,
		Open: &session.Info{Route: route, Subprotocol: subprotocol, Start: start.Truncate(time.Microsecond)}}}
	for i, m := range msgs {
		ev := session.Event{Session: id, Seq: uint64(i + 1), Kind: session.KindFrame, Direction: session.ClientToServer,
			Opcode: session.Text, Offset: time.Duration(i+1) * time.Millisecond, Payload: []byte(m.text)}
		if m.server {
			ev.Direction = session.ServerToClient
		}
		if m.binary {
			ev.Opcode = session.Binary
		}
		evs = append(evs, ev)
	}
	return append(evs, session.Event{Session: id, Seq: uint64(len(msgs) + 1), Kind: session.KindClose,
		Offset: time.Duration(len(msgs)+1) * time.Millisecond, Code: 1000, ClosedBy: session.SideClient})
}

// Each session's kinds are the operations its protocol profile names:
// a GraphQL operation's name, a Socket.IO event, a JSON-RPC method.
// Protocol control messages are not kinds. Every client message is judged
// once, in sequence order, however its records arrive.
func TestKindsComeFromProtocolProfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{KindFields: []string{"action"}})
		now := time.Now()
		f := func(want []replaycache.KindCount, evs []session.Event) {
			t.Helper()
			rng := rand.New(rand.NewPCG(uint64(len(evs)), 1))
			var bs [][]session.Event
			for _, b := range batches(rng, evs, 2) {
				bs = append(bs, b, b) // each twice
			}
			rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
			for _, b := range bs {
				put(t, p, b)
			}
			settle(t, p)
			v, ok := c.Get(evs[0].Session)
			if !ok || !v.Complete {
				t.Fatalf("session %s: %+v", v.Route, v.Summary)
			}
			if !slices.Equal(v.Kinds, want) {
				t.Errorf("session %s %s: kinds %v, want %v", evs[0].Open.Subprotocol, v.Route, v.Kinds, want)
			}
		}
		f([]replaycache.KindCount{{Kind: "TaskList", Count: 1}}, protoSession(now, "graphql-transport-ws", "/graphql",
			msg{text: `{"type":"connection_init","payload":{}}`},
			msg{text: `{"type":"connection_ack"}`, server: true},
			msg{text: `{"id":"1","type":"subscribe","payload":{"query":"query TaskList { tasks { id } }","operationName":"TaskList"}}`},
			msg{text: `{"id":"1","type":"next","payload":{"data":{"tasks":[]}}}`, server: true},
			msg{text: `{"id":"1","type":"complete"}`, server: true},
		))
		// A binary attachment takes its packet's judgement: judged before
		// the packet, it would be no operation.
		f([]replaycache.KindCount{{Kind: "tasks:list", Count: 2}, {Kind: "tasks:upload", Count: 2}},
			protoSession(now, "", "/socket.io/?EIO=4&transport=websocket",
				msg{text: `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`, server: true},
				msg{text: `40`},
				msg{text: `40{"sid":"def"}`, server: true},
				msg{text: `42["tasks:list",{}]`},
				msg{text: `2`, server: true},
				msg{text: `3`},
				msg{text: `451-["tasks:upload",{"_placeholder":true,"num":0}]`},
				msg{text: "\x00\x01", binary: true},
				msg{text: `42["tasks:list",{"page":2}]`},
			))
		f([]replaycache.KindCount{{Kind: "getTask", Count: 1}}, protoSession(now, "", "/rpc",
			msg{text: `{"jsonrpc":"2.0","method":"getTask","id":1}`},
			msg{text: `{"jsonrpc":"2.0","result":{},"id":1}`, server: true},
		))
		// Plain JSON: the key fields given as KindFields name operations.
		f([]replaycache.KindCount{{Kind: "tasks.move", Count: 1}}, protoSession(now, "", "/sync",
			msg{text: `{"action":"tasks.move","id":7}`},
		))
		st := c.Status()
		for _, k := range []string{"connection_init", "40", "3", "subscribe"} {
			if _, ok := st.Kinds[k]; ok {
				t.Errorf("control message %q counted as a kind: %v", k, st.Kinds)
			}
		}
	})
}

// Options.Protocol fixes the profile for every session; an unknown name
// makes Run fail.
func TestFixedProtocolProfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{Protocol: "socket.io"})
		evs := protoSession(time.Now(), "", "/ws", msg{text: `40`}, msg{text: `42["tasks:list",{}]`})
		put(t, p, evs)
		settle(t, p)
		if v, _ := c.Get(evs[0].Session); !slices.Equal(v.Kinds, []replaycache.KindCount{{Kind: "tasks:list", Count: 1}}) {
			t.Errorf("kinds %v", v.Kinds)
		}
	})
	c := replaycache.New(nil, &replaycache.Options{Protocol: "carrier-pigeon", Logger: quiet})
	if err := c.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Run with an unknown protocol: %v", err)
	}
}

// Once the table is full, the kinds of evicted sessions are forgotten,
// least recently seen first, so that new kinds get slots instead of
// counting as other.
func TestKindTableForgetsLeastRecentlySeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, p := newLog(t, nil)
		const window = time.Minute
		c := startCache(t, dir, stream.Start{}, &replaycache.Options{Window: window, GapWait: time.Second,
			MaxKinds: 8, MinKindSessions: 1})
		t0 := time.Now()
		a := opSession(t0, "/sync", "k1", "k2")
		put(t, p, a)
		settle(t, p)
		time.Sleep(10 * time.Second)
		b := opSession(time.Now(), "/sync", "k3", "k4")
		put(t, p, b)
		settle(t, p)
		time.Sleep(20 * time.Second)
		cs := opSession(time.Now(), "/sync", "k5", "k6", "k7", "n0") // other and 7 kinds fill the table
		put(t, p, cs)
		settle(t, p)
		if st := c.Status(); st.Kinds["other"] != 1 || len(st.Kinds) != 8 {
			t.Fatalf("full table: %v", st.Kinds)
		}
		if got := c.counter(`preheat_cache_messages_kind_other_total{reason="table_full"}`); got != 1 {
			t.Errorf("other for a full table %d, want 1", got)
		}

		time.Sleep(time.Until(b[0].Open.Start.Add(window + 2*time.Second))) // a and b leave the window
		synctest.Wait()
		if st := c.Status(); st.Sessions != 1 {
			t.Fatalf("status %+v", st)
		}
		d := opSession(time.Now(), "/sync", "n1", "n2")
		put(t, p, d)
		settle(t, p)
		// n1 and n2 took k1's and k2's slots, seen before k3 and k4: those
		// are still known, so a session with them forgets nothing.
		e := opSession(time.Now(), "/sync", "k3", "k4")
		put(t, p, e)
		settle(t, p)
		st := c.Status()
		for _, k := range []string{"n1", "n2", "k3", "k4", "k5"} {
			if st.Kinds[k] != 1 {
				t.Errorf("kind %s counted %d times: %v", k, st.Kinds[k], st.Kinds)
			}
		}
		if st.Kinds["other"] != 1 || st.Kinds["k1"] != 0 {
			t.Errorf("kinds %v", st.Kinds)
		}
		if got := c.counter("preheat_cache_kinds_forgotten_total"); got != 2 {
			t.Errorf("kinds forgotten %d, want 2", got)
		}
		// A forgotten name covers nothing, and its slot's new kind is not
		// taken for it.
		refs := c.Select(replaycache.SelectRequest{Mode: replaycache.Coverage, Covered: []string{"k1", "k2"},
			Filter: replaycache.Filter{Route: "/sync"}})
		if len(refs) != 3 {
			t.Fatalf("coverage: %+v", refs)
		}
		for _, r := range refs {
			if r.ID == d[0].Session && !slices.Equal(r.NewKinds, []string{"n1", "n2"}) {
				t.Errorf("session d adds %q, want n1, n2", r.NewKinds)
			}
		}
		if v, _ := c.Get(d[0].Session); !slices.Equal(v.Kinds, []replaycache.KindCount{{Kind: "n1", Count: 1}, {Kind: "n2", Count: 1}}) {
			t.Errorf("session d kinds %v", v.Kinds)
		}
	})
}
