package corpus

import (
	"time"

	"github.com/preheatdev/preheat/session"
)

// PacedSession returns the events of a session that sends its connect at
// phase and then n queries, one every interval after it, each answered by a
// result 1ms later when results is set (else recorded without the server's
// side but for the connect's answer): the steady load of a load
// generator's benchmark, where Session's random pace would not do.
func (g *Generator) PacedSession(start time.Time, phase, interval time.Duration, n int, results bool) []session.Event {
	var id session.ID
	for i := range id {
		id[i] = byte(g.rng.Uint32())
	}
	evs := []session.Event{{Session: id, Kind: session.KindOpen, Open: &session.Info{Route: "/sync", Start: start}}}
	frame := func(dir session.Direction, at time.Duration, payload []byte) {
		evs = append(evs, session.Event{Session: id, Seq: uint64(len(evs)), Kind: session.KindFrame, Direction: dir,
			Opcode: session.Text, Offset: at, Payload: payload})
	}
	frame(session.ClientToServer, phase, g.Connect())
	frame(session.ServerToClient, phase+time.Millisecond, []byte(`{"type":"connected","id":0}`))
	for k := 1; k <= n; k++ {
		at := phase + time.Duration(k)*interval
		kind := g.Kind()
		frame(session.ClientToServer, at, g.Query(kind))
		if results {
			frame(session.ServerToClient, at+time.Millisecond, g.Result(g.LastID(), kind))
		}
	}
	return append(evs, session.Event{Session: id, Seq: uint64(len(evs)), Kind: session.KindClose,
		Offset: phase + time.Duration(n)*interval + 2*time.Millisecond, Code: 1000, ClosedBy: session.SideClient})
}
