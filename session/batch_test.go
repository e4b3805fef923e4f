package session_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
)

func randomEvents(rng *rand.Rand, n int) []session.Event {
	id := session.NewID()
	evs := make([]session.Event, 0, n)
	for i := range n {
		e := session.Event{Session: id, Seq: uint64(i) + rng.Uint64N(3)}
		switch {
		case i == 0:
			e.Kind = session.KindOpen
			e.Open = &session.Info{
				Route:       fmt.Sprintf("/sync?r=%d", rng.IntN(100)),
				Header:      http.Header{"Origin": {"https://app.example"}, "X-Multi": {"a", "", "c"}},
				Subprotocol: "sync.v3",
				Extensions:  "permessage-deflate; client_no_context_takeover",
				TapID:       "tap-7",
				Start:       time.UnixMicro(1763800000000000 + rng.Int64N(1e12)).UTC(),
			}
		case i == n-1 && rng.IntN(2) == 0:
			e.Kind = session.KindClose
			e.Offset = time.Duration(rng.Int64N(1e12)) * time.Microsecond
			e.Code = uint16(rng.IntN(5000))
			e.Reason = "going away"
			e.ClosedBy = session.Side(rng.IntN(4))
		default:
			e.Kind = session.KindFrame
			e.Direction = session.Direction(1 + rng.IntN(2))
			e.Opcode = session.Opcode(1 + rng.IntN(2))
			e.Offset = time.Duration(rng.Int64N(1e12)) * time.Microsecond
			e.Payload = make([]byte, rng.IntN(3000))
			for j := range e.Payload {
				e.Payload[j] = "abcdefgh{}\":,0123"[rng.IntN(17)]
			}
			e.Truncated = rng.IntN(10) == 0
		}
		evs = append(evs, e)
	}
	return evs
}

// normalize makes nil and empty payloads compare equal: the wire format, like
// proto3, does not tell them apart.
func normalize(evs []session.Event) []session.Event {
	out := append([]session.Event(nil), evs...)
	for i := range out {
		if len(out[i].Payload) == 0 {
			out[i].Payload = nil
		}
	}
	return out
}

func TestBatchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		in := randomEvents(rng, 1+rng.IntN(40))
		enc, err := session.AppendBatch([]byte("prefix"), in)
		if err != nil {
			t.Fatalf("trial %d: encode: %v", trial, err)
		}
		if !bytes.HasPrefix(enc, []byte("prefix")) {
			t.Fatalf("trial %d: AppendBatch did not append", trial)
		}
		out, err := session.DecodeBatch(enc[len("prefix"):], nil)
		if err != nil {
			t.Fatalf("trial %d: decode: %v", trial, err)
		}
		if !reflect.DeepEqual(normalize(in), normalize(out)) {
			t.Fatalf("trial %d: round trip differs:\n in: %+v\nout: %+v", trial, in, out)
		}
		id, err := session.BatchSession(enc[len("prefix"):])
		if err != nil || id != in[0].Session {
			t.Fatalf("trial %d: BatchSession = %v, %v; want %v", trial, id, err, in[0].Session)
		}
	}
}

func TestBatchDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	in := randomEvents(rng, 10)
	in[0].Open.Header = http.Header{}
	for i := range 20 {
		in[0].Open.Header.Set(fmt.Sprintf("X-H%d", i), "v")
	}
	a, err := session.AppendBatch(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		b, err := session.AppendBatch(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("the same events encoded to different bytes")
		}
	}
}

func TestDecodedPayloadsDoNotAliasInput(t *testing.T) {
	id := session.NewID()
	in := []session.Event{{Session: id, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text, Payload: []byte("hi")}}
	enc, err := session.AppendBatch(nil, in) // small: stored uncompressed
	if err != nil {
		t.Fatal(err)
	}
	out, err := session.DecodeBatch(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0
	}
	if string(out[0].Payload) != "hi" {
		t.Fatalf("payload changed with the input buffer: %q", out[0].Payload)
	}
}

func TestAppendBatchRejects(t *testing.T) {
	a, b := session.NewID(), session.NewID()
	frame := func(id session.ID) session.Event {
		return session.Event{Session: id, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text}
	}
	f := func(name string, evs []session.Event) {
		t.Helper()
		if _, err := session.AppendBatch(nil, evs); err == nil {
			t.Errorf("%s: AppendBatch accepted it", name)
		}
	}
	f("no events", nil)
	f("zero id", []session.Event{frame(session.ID{})})
	f("two sessions", []session.Event{frame(a), frame(b)})
	f("open without info", []session.Event{{Session: a, Kind: session.KindOpen}})
	f("unknown kind", []session.Event{{Session: a, Kind: 9}})
	f("negative offset", []session.Event{{Session: a, Kind: session.KindFrame, Offset: -time.Second}})
	open := session.Event{Session: a, Kind: session.KindOpen, Open: &session.Info{Route: "/"}}
	f("two open events", []session.Event{open, open})
	many := http.Header{}
	for i := range session.MaxHeaderFields / 2 {
		many[fmt.Sprintf("X-%d", i)] = []string{"a", "b"}
	}
	many["X-Last"] = nil // a header without values is a field too
	f("too many header fields", []session.Event{{Session: a, Kind: session.KindOpen, Open: &session.Info{Header: many}}})
}

func TestDecodeBatchCorrupt(t *testing.T) {
	good, err := session.AppendBatch(nil, corpus.New(1).Session(time.Unix(1763800000, 0), 3))
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, data []byte) {
		t.Helper()
		_, err := session.DecodeBatch(data, nil)
		if !errors.Is(err, session.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	f("empty", nil)
	f("short", good[:3])
	f("wrong marker", append([]byte{0x00}, good[1:]...))
	f("future version", append([]byte{good[0], 99}, good[2:]...))
	f("unknown flag", append([]byte{good[0], good[1], 0x80}, good[3:]...))
	f("truncated", good[:len(good)-5])
	f("trailing byte", append(append([]byte(nil), good...), 0))
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0xff
	f("flipped byte", flipped)
	huge := []byte{good[0], good[1], 0}
	huge = protowire.AppendVarint(huge, session.MaxBatchBytes+1)
	f("declared size over the limit", huge)
	bomb := []byte{good[0], good[1], 1}
	bomb = protowire.AppendVarint(bomb, session.MaxBatchBytes)
	f("declared size out of proportion", append(bomb, 1, 2, 3, 4, 5, 6, 7, 8))

	// Bodies that parse as protobuf but are not valid batches.
	body := func(b []byte) []byte {
		out := []byte{good[0], good[1], 0}
		out = protowire.AppendVarint(out, uint64(len(b)))
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
		return append(out, b...)
	}
	var b []byte
	f("no session id", body(b))
	b = protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte{1, 2, 3})
	f("short session id", body(b))
	id := session.NewID()
	b = protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, id[:])
	f("no events", body(b))
	ev := protowire.AppendTag(nil, 2, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(session.KindFrame))
	ev = protowire.AppendTag(ev, 3, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 7) // no such direction
	withEv := protowire.AppendTag(append([]byte(nil), b...), 2, protowire.BytesType)
	withEv = protowire.AppendBytes(withEv, ev)
	f("bad direction", body(withEv))
}

// TestDecodeSkipsUnknownFields checks that a batch written by a later
// version, with fields this version does not know, still decodes.
func TestDecodeSkipsUnknownFields(t *testing.T) {
	id := session.NewID()
	var ev []byte
	ev = protowire.AppendTag(ev, 1, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 5)
	ev = protowire.AppendTag(ev, 2, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(session.KindFrame))
	ev = protowire.AppendTag(ev, 3, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(session.ServerToClient))
	ev = protowire.AppendTag(ev, 4, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(session.Binary))
	ev = protowire.AppendTag(ev, 99, protowire.BytesType) // unknown
	ev = protowire.AppendBytes(ev, []byte("future"))
	ev = protowire.AppendTag(ev, 6, protowire.BytesType)
	ev = protowire.AppendBytes(ev, []byte{0, 1, 2})
	ev = protowire.AppendTag(ev, 100, protowire.Fixed64Type) // unknown
	ev = protowire.AppendFixed64(ev, 42)
	var b []byte
	b = protowire.AppendTag(b, 50, protowire.Fixed32Type) // unknown, before the id
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, id[:])
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ev)
	data := []byte{0xB7, 1, 0}
	data = protowire.AppendVarint(data, uint64(len(b)))
	data = binary.LittleEndian.AppendUint32(data, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	data = append(data, b...)

	out, err := session.DecodeBatch(data, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := []session.Event{{Session: id, Seq: 5, Kind: session.KindFrame, Direction: session.ServerToClient, Opcode: session.Binary, Payload: []byte{0, 1, 2}}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %+v, want %+v", out, want)
	}
}

func TestIDText(t *testing.T) {
	id := session.NewID()
	got, err := session.ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%q) = %v, %v", id.String(), got, err)
	}
	for _, bad := range []string{"", "xyz", id.String()[:30], id.String() + "00", "zz" + id.String()[2:]} {
		if _, err := session.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted it", bad)
		}
	}
	if session.NewID() == session.NewID() {
		t.Fatal("two random ids are equal")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	g := corpus.New(7)
	for _, n := range []int{0, 1, 4} {
		b, err := session.AppendBatch(nil, g.Session(time.Unix(1763800000, 0), n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	small, _ := session.AppendBatch(nil, []session.Event{{Session: session.NewID(), Kind: session.KindClose, Code: 1000}})
	f.Add(small)
	f.Add([]byte{0xB7, 1, 1, 0x80, 0x80, 0x80, 0x01})
	// A few kilobytes of zstd declaring a body of nothing but empty events.
	empty := batchBody(session.NewID())
	for len(empty) < 1<<20 {
		empty = append(empty, 0x12, 0)
	}
	f.Add(envelope(empty))
	f.Fuzz(func(t *testing.T, data []byte) {
		// No input may make a decoder allocate more than MaxDecodeBytes.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		evs, err := session.DecodeBatch(data, nil)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > session.MaxDecodeBytes {
			t.Fatalf("decoding %d bytes allocated %d, more than MaxDecodeBytes", len(data), n)
		}
		if len(evs) > session.MaxBatchEvents {
			t.Fatalf("decoded %d events, more than MaxBatchEvents", len(evs))
		}
		if err != nil {
			if !errors.Is(err, session.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("decoded a batch with no events")
		}
		// What decodes must encode again and decode to the same events,
		// unless it holds kinds this version cannot write.
		for _, e := range evs {
			if e.Kind < session.KindOpen || e.Kind > session.KindClose {
				return
			}
		}
		again, err := session.AppendBatch(nil, evs)
		if err != nil {
			return // e.g. a start time before 1970 decoded from a huge varint
		}
		evs2, err := session.DecodeBatch(again, nil)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(evs), normalize(evs2)) {
			t.Fatalf("re-encode changed events:\n%+v\n%+v", evs, evs2)
		}
	})
}

func ExampleAppendBatch() {
	id, _ := session.ParseID("00112233445566778899aabbccddeeff")
	events := []session.Event{
		{Session: id, Seq: 0, Kind: session.KindOpen, Open: &session.Info{Route: "/sync", Start: time.Unix(1763800000, 0)}},
		{Session: id, Seq: 1, Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text,
			Offset: 1500 * time.Microsecond, Payload: []byte(`{"type":"connect"}`)},
	}
	data, err := session.AppendBatch(nil, events)
	if err != nil {
		panic(err)
	}
	decoded, err := session.DecodeBatch(data, nil)
	if err != nil {
		panic(err)
	}
	for _, e := range decoded {
		switch e.Kind {
		case session.KindOpen:
			fmt.Println(e.Session, e.Seq, e.Kind, e.Open.Route)
		case session.KindFrame:
			fmt.Println(e.Session, e.Seq, e.Kind, e.Direction, e.Offset, string(e.Payload))
		}
	}
	// Output:
	// 00112233445566778899aabbccddeeff 0 open /sync
	// 00112233445566778899aabbccddeeff 1 frame client 1.5ms {"type":"connect"}
}

func TestBatchWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var w session.BatchWriter
	for trial := range 20 {
		in := randomEvents(rng, 1+rng.IntN(30))
		w.Reset()
		for i := range in {
			if err := w.Append(&in[i]); err != nil {
				t.Fatalf("trial %d: append: %v", trial, err)
			}
		}
		if w.Events() != len(in) {
			t.Fatalf("trial %d: Events() = %d, want %d", trial, w.Events(), len(in))
		}
		got, err := w.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := session.AppendBatch(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d: BatchWriter and AppendBatch disagree", trial)
		}
	}
	other := session.Event{Session: session.NewID(), Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text}
	n, size := w.Events(), w.Len()
	if err := w.Append(&other); err == nil {
		t.Fatal("appended an event of another session")
	}
	bad := session.Event{Session: session.ID{}, Kind: session.KindFrame}
	if err := w.Append(&bad); err == nil {
		t.Fatal("appended an event with a zero session id")
	}
	if w.Events() != n || w.Len() != size {
		t.Fatal("a refused event changed the batch")
	}
	w.Reset()
	if _, err := w.AppendTo(nil); err == nil {
		t.Fatal("encoded an empty batch")
	}
}

// envelope wraps a hand-made body as a batch, zstd-compressed as a writer
// would, so that bodies no writer produces can be decoded.
func envelope(body []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	out := []byte{0xB7, 1, 1}
	out = protowire.AppendVarint(out, uint64(len(body)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return enc.EncodeAll(body, out)
}

// batchBody starts a body with id's session field.
func batchBody(id session.ID) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, id[:])
}

// appendEventMsg appends an event message holding fields.
func appendEventMsg(b, fields []byte) []byte {
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, fields)
}

func varintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func bytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// decodeAllocs decodes data once and returns what that allocated, in bytes.
func decodeAllocs(data []byte) (evs []session.Event, allocated uint64, err error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	evs, err = session.DecodeBatch(data, nil)
	runtime.ReadMemStats(&after)
	return evs, after.TotalAlloc - before.TotalAlloc, err
}

// TestDecodeBatchAllocatesAtMostMaxDecodeBytes decodes hostile batches, each
// within one stream record, and checks that each allocates less than
// MaxDecodeBytes, and that those past a bound are refused as corrupt.
func TestDecodeBatchAllocatesAtMostMaxDecodeBytes(t *testing.T) {
	id := session.NewID()
	// Make the zstd decoder and its buffers first: they are kept, not made
	// again for each batch.
	if _, err := session.DecodeBatch(envelope(appendEventMsg(batchBody(id), varintField(nil, 2, 3))), nil); err != nil {
		t.Fatal(err)
	}
	f := func(name string, body []byte, wantErr string) {
		t.Helper()
		data := envelope(body)
		if len(data) > 1<<20 {
			t.Fatalf("%s: %d bytes do not fit in one stream record", name, len(data))
		}
		evs, allocated, err := decodeAllocs(data)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case wantErr != "" && (!errors.Is(err, session.ErrCorrupt) || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: err = %v, want ErrCorrupt and %q", name, err, wantErr)
		}
		if allocated > session.MaxDecodeBytes {
			t.Errorf("%s: a %d-byte record made DecodeBatch allocate %d MiB, more than MaxDecodeBytes (%d MiB)",
				name, len(data), allocated>>20, session.MaxDecodeBytes>>20)
		}
		if len(evs) > session.MaxBatchEvents {
			t.Errorf("%s: %d events", name, len(evs))
		}
		t.Logf("%s: %d-byte record, %d KiB allocated", name, len(data), allocated>>10)
	}

	// Unknown fields of random values now and then keep a record's
	// compression ratio under the 4096 a decoder allows.
	rng := rand.New(rand.NewPCG(7, 8))
	noise := func(b []byte) []byte { return varintField(b, 15, rng.Uint64()) }

	// Empty events, two bytes each: 8.4 million in a 25 KB record.
	body := batchBody(id)
	for i := 0; len(body) < session.MaxBatchBytes-16; i++ {
		body = append(body, 0x12, 0) // field 2, length 0
		if i%4096 == 0 {
			body = noise(body)
		}
	}
	f("empty events", body, "events, more than")

	// One more valid frame than a batch may hold.
	frame := varintField(varintField(varintField(varintField(nil, 1, 1), 2, 2), 3, 1), 4, 1)
	body = batchBody(id)
	for range session.MaxBatchEvents + 1 {
		body = appendEventMsg(body, frame)
	}
	f("too many frames", body, "events, more than")

	// As many events as a batch may hold, each with a reason that fills
	// the body: the largest valid batch there is.
	reason := bytes.Repeat([]byte{'r'}, session.MaxBatchBytes/session.MaxBatchEvents-16)
	closeEv := bytesField(varintField(varintField(nil, 1, 1), 2, 3), 9, reason)
	body = batchBody(id)
	for range session.MaxBatchEvents {
		body = appendEventMsg(body, closeEv)
	}
	f("most events, longest reasons", body, "")

	// Open records, each with as many header fields as one may hold.
	var info []byte
	for i := range session.MaxHeaderFields {
		h := bytesField(nil, 1, fmt.Appendf(nil, "%04x", i))
		info = bytesField(info, 2, h)
	}
	openEv := bytesField(varintField(nil, 2, 1), 11, info)
	body = appendEventMsg(batchBody(id), openEv)
	f("one open event, most headers", body, "")
	for len(body) < session.MaxBatchBytes-len(openEv)-8 {
		body = appendEventMsg(body, openEv)
	}
	f("many open events", body, "more than one open event")
	body = batchBody(id)
	many := openEv
	for len(many) < 1<<20 {
		many = bytesField(many, 11, info)
	}
	f("many open records in one event", appendEventMsg(body, many), "more than one open event")

	// One header with more values than an open event may hold.
	var h []byte
	h = bytesField(h, 1, []byte("X"))
	for i := range session.MaxBatchBytes / 4 {
		h = bytesField(h, 2, nil)
		if i%2048 == 0 {
			h = noise(h)
		}
	}
	body = appendEventMsg(batchBody(id), bytesField(varintField(nil, 2, 1), 11, bytesField(nil, 2, h)))
	f("too many header values", body, "header fields")
}

// TestBatchWriterRefusesEventsPastMaxBatchEvents checks that a writer never
// writes a batch that readers refuse.
func TestBatchWriterRefusesEventsPastMaxBatchEvents(t *testing.T) {
	var w session.BatchWriter
	e := session.Event{Session: session.NewID(), Kind: session.KindFrame, Direction: session.ClientToServer, Opcode: session.Text}
	for i := range session.MaxBatchEvents {
		e.Seq = uint64(i)
		if err := w.Append(&e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	size := w.Len()
	if err := w.Append(&e); err == nil || w.Events() != session.MaxBatchEvents || w.Len() != size {
		t.Fatalf("event past MaxBatchEvents: err %v, %d events", err, w.Events())
	}
	data, err := w.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := session.DecodeBatch(data, nil); err != nil || len(evs) != session.MaxBatchEvents {
		t.Fatalf("a full batch: %d events, %v", len(evs), err)
	}
}
