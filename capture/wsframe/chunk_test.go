package wsframe_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/preheatdev/preheat/capture/wsframe"
)

// genStream builds a valid stream for one direction: data messages of
// varied sizes, some fragmented, some compressed, with control frames
// between fragments and non-minimal lengths now and then. It returns the
// options to parse it with and what the parser must emit.
func genStream(t testing.TB, rng *rand.Rand, client bool, mode int) (*wsframe.Options, []byte, []rec) {
	opts := &wsframe.Options{Client: client}
	if rng.IntN(3) == 0 {
		opts.MaxMessageBytes = 1 + rng.IntN(2000)
	}
	maxMsg := opts.MaxMessageBytes
	if maxMsg == 0 {
		maxMsg = 1 << 20
	}
	var c *compressor
	if mode != 0 {
		takeover := mode == 1
		opts.Deflate = &wsframe.DeflateParams{ClientNoContextTakeover: !takeover, ServerNoContextTakeover: !takeover}
		c = newCompressor(takeover)
	}
	var in []byte
	var want []rec
	k := func() [4]byte {
		return [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
	}
	control := func() {
		op := []wsframe.Opcode{wsframe.OpPing, wsframe.OpPong}[rng.IntN(2)]
		f := frame{op: op, mask: client, key: k(), payload: jsonish(rng, rng.IntN(126))}
		if rng.IntN(5) == 0 {
			f.lenForm = 16
		}
		w := f.wire()
		in = append(in, w...)
		want = append(want, rec{Opcode: op, Payload: string(f.payload), NonMinimal: f.lenForm != 0, WireBytes: len(w)})
	}
	for range 1 + rng.IntN(30) {
		if rng.IntN(4) == 0 {
			control()
		}
		var data []byte
		switch rng.IntN(10) {
		case 0:
			data = jsonish(rng, 60000+rng.IntN(20000))
		case 1:
			data = nil
		default:
			data = jsonish(rng, rng.IntN(3000))
		}
		op := []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary}[rng.IntN(2)]
		payload, rsv := data, byte(0)
		comp := c != nil && rng.IntN(4) != 0
		if comp {
			payload, rsv = c.compress(t, data), 0x40
		}
		r := rec{Opcode: op, Payload: string(data), Compressed: comp}
		if len(data) > maxMsg {
			r.Payload, r.Truncated = r.Payload[:maxMsg], true
		}
		n := 1
		if rng.IntN(3) == 0 {
			n = 2 + rng.IntN(4)
		}
		for i, f := range fragment(op, rsv, client, payload, n) {
			f.key = k()
			if rng.IntN(8) == 0 {
				f.lenForm = 64
				r.NonMinimal = r.NonMinimal || len(f.payload) <= 0xffff
			}
			w := f.wire()
			in = append(in, w...)
			r.WireBytes += len(w)
			if i < n-1 && rng.IntN(3) == 0 {
				control()
			}
		}
		// Controls interleaved in a fragmented message come out before it.
		want = append(want, r)
	}
	if rng.IntN(2) == 0 {
		f := frame{op: wsframe.OpClose, mask: client, key: k(), payload: append([]byte{0x03, 0xe8}, "done"...)}
		w := f.wire()
		in = append(in, w...)
		want = append(want, rec{Opcode: wsframe.OpClose, Payload: string(f.payload), WireBytes: len(w), CloseCode: 1000, CloseReason: "done"})
	}
	return opts, in, want
}

// randomSplit cuts b into pieces at random points.
func randomSplit(rng *rand.Rand, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := 1 + rng.IntN(min(len(b), []int{3, 20, 300, 70000}[rng.IntN(4)]))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// TestChunking checks that any chunking of a valid stream parses the same as
// one Feed, and both match what was sent.
func TestChunking(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 60 {
		client, mode := i%2 == 0, i%3
		opts, in, want := genStream(t, rng, client, mode)
		whole, err := parseChunks(opts, in)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if !reflect.DeepEqual(whole, want) {
			t.Fatalf("stream %d (client=%v mode=%d): first difference %s", i, client, mode, firstDiff(whole, want))
		}
		splits := [][][]byte{randomSplit(rng, in), randomSplit(rng, in)}
		if i%10 == 0 {
			var bytewise [][]byte
			for j := range in {
				bytewise = append(bytewise, in[j:j+1])
			}
			splits = append(splits, bytewise)
		}
		for _, chunks := range splits {
			got, err := parseChunks(opts, chunks...)
			if err != nil {
				t.Fatalf("stream %d split in %d: %v", i, len(chunks), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stream %d split in %d: first difference %s", i, len(chunks), firstDiff(got, want))
			}
		}
	}
}

// TestIdleReset checks that a stream parses the same when, at every chunk
// boundary where the parser is Idle, it is given up and parsing goes on with
// another parser Reset to the same options; and that a parser with a context
// takeover window, or inside a message, is not idle.
func TestIdleReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	swaps := 0
	for i := range 60 {
		client, mode := i%2 == 0, i%3
		opts, in, want := genStream(t, rng, client, mode)
		for _, chunks := range [][][]byte{randomSplit(rng, in), randomSplit(rng, in)} {
			var got []rec
			emit := func(m *wsframe.Message) { got = append(got, toRec(m)) }
			spare := wsframe.NewParser(&wsframe.Options{Client: !client}) // other options, to be reset
			p := wsframe.NewParser(opts)
			for _, c := range chunks {
				if err := p.Feed(bytes.Clone(c), emit); err != nil { // Feed unmasks in place
					t.Fatalf("stream %d: %v", i, err)
				}
				if p.Idle() {
					if p.Held() != 0 {
						t.Fatalf("stream %d: an idle parser holds %d bytes", i, p.Held())
					}
					spare.Reset(opts)
					p, spare = spare, p
					swaps++
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stream %d (client=%v mode=%d) split in %d: first difference %s", i, client, mode, len(chunks), firstDiff(got, want))
			}
		}
	}
	if swaps == 0 {
		t.Error("no parser was ever idle")
	}

	// A parser inside a message, or with a window, is not idle.
	p := wsframe.NewParser(nil)
	if !p.Idle() {
		t.Error("a new parser is not idle")
	}
	msg := stream(frame{op: wsframe.OpText, payload: []byte("hello")})
	if err := p.Feed(msg[:3], func(*wsframe.Message) {}); err != nil {
		t.Fatal(err)
	}
	if p.Idle() {
		t.Error("a parser inside a frame is idle")
	}
	c := newCompressor(true)
	p = wsframe.NewParser(&wsframe.Options{Deflate: &wsframe.DeflateParams{}})
	if err := p.Feed(stream(frame{op: wsframe.OpText, rsv: 0x40, payload: c.compress(t, []byte("hello"))}), func(*wsframe.Message) {}); err != nil {
		t.Fatal(err)
	}
	if p.Idle() {
		t.Error("a parser with a context takeover window is idle")
	}
	p.Release()
	if p.Idle() {
		t.Error("a released parser is idle")
	}
}
