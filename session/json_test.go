package session_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/preheatdev/preheat/session"
)

func TestEventJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for range 50 {
		for _, e := range randomEvents(rng, 12) {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var back session.Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			want := normalize([]session.Event{e})[0]
			if e.Kind == session.KindOpen {
				want.Open.Start = want.Open.Start.UTC()
				back.Open.Start = back.Open.Start.UTC()
			}
			if e.Kind != session.KindClose {
				want.Code, want.Reason, want.ClosedBy = 0, "", 0
			}
			if e.Kind != session.KindFrame {
				want.Direction, want.Opcode, want.Payload, want.Truncated = 0, 0, nil, false
			}
			if e.Kind == session.KindOpen {
				want.Offset = 0
			}
			if !reflect.DeepEqual(normalize([]session.Event{back})[0], want) {
				t.Fatalf("round trip:\n%+v\n%+v\n%s", want, back, b)
			}
		}
	}
	var e session.Event
	for _, bad := range []string{`{"kind":"nope"}`, `{"kind":"frame","direction":"up","opcode":"text"}`, `{"kind":"frame","direction":"client","opcode":"text","payload_hex":"zz"}`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
