package inspect_test

import (
	"os"
	"time"

	"github.com/preheatdev/preheat/inspect"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// An Inspector in list mode summarises each session found in the records it
// is given; a consumer's records go in the same way (ReadAll).
func Example() {
	id := session.ID{0xab}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	batch, err := session.AppendBatch(nil, []session.Event{
		{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{Route: "/sync", Start: start}},
		{Session: id, Seq: 1, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text,
			Offset: 20 * time.Millisecond, Payload: []byte(`{"op":"tasks.list"}`)},
		{Session: id, Seq: 2, Kind: session.KindClose, Offset: 1500 * time.Millisecond, Code: 1000, ClosedBy: session.SideClient},
	})
	if err != nil {
		panic(err)
	}
	in := inspect.New(session.ID{}) // zero: list mode
	in.Add(stream.Record{Key: id.String(), Data: batch, Time: start})
	if err := in.WriteList(os.Stdout, nil); err != nil {
		panic(err)
	}
	// Output:
	// SESSION                           START                    ROUTE  C→S  S→C  BYTES  DURATION  STATE
	// ab000000000000000000000000000000  2025-03-01 12:00:00.000  /sync  1    0    19B    1.5s      closed
	// 1 sessions in 1 records
}
