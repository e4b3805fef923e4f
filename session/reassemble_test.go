package session_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/preheatdev/preheat/session"
)

// wholeSession returns the events of a session of n frames: its open, the
// frames, its close.
func wholeSession(n int) []session.Event {
	id := session.NewID()
	evs := []session.Event{{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{
		Route: "/sync", Start: time.UnixMicro(1763800000000000).UTC(),
	}}}
	for i := range n {
		evs = append(evs, session.Event{
			Session: id, Seq: uint64(1 + i), Kind: session.KindFrame, Direction: session.ClientToServer,
			Opcode: session.Text, Offset: time.Duration(i) * time.Millisecond, Payload: []byte{'a' + byte(i%26)},
		})
	}
	return append(evs, session.Event{Session: id, Seq: uint64(n + 1), Kind: session.KindClose, ClosedBy: session.SideClient})
}

func TestReassemblerPutsShuffledRetriedBatchesInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[session.ID][]session.Event{}
	var batches [][]byte
	for n := range 5 {
		evs := wholeSession(3 * n)
		want[evs[0].Session] = evs
		for i := 0; i < len(evs); {
			j := min(len(evs), i+1+rng.IntN(3))
			b, err := session.AppendBatch(nil, evs[i:j])
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, b)
			if rng.IntN(3) == 0 {
				batches = append(batches, b) // retried
			}
			i = j
		}
	}
	rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	var r session.Reassembler
	for _, b := range batches {
		if err := r.AddBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	got := r.Sessions()
	if len(got) != len(want) {
		t.Fatalf("%d sessions, want %d", len(got), len(want))
	}
	for id, evs := range want {
		if !reflect.DeepEqual(normalize(got[id]), normalize(evs)) {
			t.Errorf("session %s: got %+v, want %+v", id, got[id], evs)
		}
		if !session.Complete(got[id]) {
			t.Errorf("session %s reassembled whole is not Complete", id)
		}
	}
}

func TestReassemblerKeepsTheLastDeliveredOfAnEvent(t *testing.T) {
	evs := wholeSession(1)
	again := evs[1]
	again.Payload = []byte("again")
	var r session.Reassembler
	r.Add(evs...)
	r.Add(again)
	got := r.Sessions()[evs[0].Session]
	if len(got) != len(evs) || string(got[1].Payload) != "again" {
		t.Fatalf("got %+v, want %d events with the second's payload %q", got, len(evs), "again")
	}
}

func TestReassemblerAddsNothingFromACorruptBatch(t *testing.T) {
	b, err := session.AppendBatch(nil, wholeSession(2))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	var r session.Reassembler
	if err := r.AddBatch(b); !errors.Is(err, session.ErrCorrupt) {
		t.Fatalf("AddBatch of a corrupt batch: %v, want ErrCorrupt", err)
	}
	if got := r.Sessions(); len(got) != 0 {
		t.Fatalf("a corrupt batch added %d sessions", len(got))
	}
}

func TestCompleteWantsOpenEverySeqAndClose(t *testing.T) {
	f := func(name string, evs []session.Event, want bool) {
		t.Helper()
		if got := session.Complete(evs); got != want {
			t.Errorf("%s: Complete = %t, want %t", name, got, want)
		}
	}
	whole := wholeSession(3) // seqs 0..4
	f("whole", whole, true)
	f("open and close", wholeSession(0), true)
	f("a gap", append(append([]session.Event{}, whole[:2]...), whole[3:]...), false)
	f("no open", whole[1:], false)
	f("no close", whole[:4], false)
	f("the open alone", whole[:1], false)
	f("empty", nil, false)
	lastFrame := append([]session.Event{}, whole...)
	lastFrame[4].Kind = session.KindFrame
	f("a frame last", lastFrame, false)
	firstFrame := append([]session.Event{}, whole...)
	firstFrame[0].Kind = session.KindFrame
	firstFrame[0].Open = nil
	f("a frame at seq 0", firstFrame, false)
}

func ExampleReassembler() {
	id := session.NewID()
	open := session.Event{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{Route: "/sync"}}
	frame := session.Event{Session: id, Seq: 1, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text, Payload: []byte("hi")}
	closing := session.Event{Session: id, Seq: 2, Kind: session.KindClose, ClosedBy: session.SideClient}
	first, _ := session.AppendBatch(nil, []session.Event{open, frame})
	last, _ := session.AppendBatch(nil, []session.Event{closing})

	var r session.Reassembler
	for _, b := range [][]byte{last, first, last} { // out of order, one retried
		if err := r.AddBatch(b); err != nil {
			panic(err)
		}
	}
	evs := r.Sessions()[id]
	for _, e := range evs {
		fmt.Println(e.Seq, e.Kind)
	}
	fmt.Println("complete:", session.Complete(evs))
	// Output:
	// 0 open
	// 1 frame
	// 2 close
	// complete: true
}
