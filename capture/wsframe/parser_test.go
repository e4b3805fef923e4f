package wsframe_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/capture/wsframe"
)

var key = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func TestFrames(t *testing.T) {
	f := func(name string, opts *wsframe.Options, in []byte, want ...rec) {
		t.Helper()
		got, err := parseChunks(opts, in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
	server := &wsframe.Options{}
	client := &wsframe.Options{Client: true}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes

	f("text", server, stream(frame{op: wsframe.OpText, payload: []byte("hello")}),
		rec{Opcode: wsframe.OpText, Payload: "hello", WireBytes: 7})
	f("masked text", client, stream(frame{op: wsframe.OpText, mask: true, key: key, payload: []byte("hello")}),
		rec{Opcode: wsframe.OpText, Payload: "hello", WireBytes: 11})
	f("empty binary", server, stream(frame{op: wsframe.OpBinary}),
		rec{Opcode: wsframe.OpBinary, WireBytes: 2})
	f("16-bit length", client, stream(frame{op: wsframe.OpBinary, mask: true, key: key, payload: big[:126]}),
		rec{Opcode: wsframe.OpBinary, Payload: string(big[:126]), WireBytes: 126 + 8})
	f("64-bit length", server, stream(frame{op: wsframe.OpBinary, payload: big}),
		rec{Opcode: wsframe.OpBinary, Payload: string(big), WireBytes: len(big) + 10})
	f("non-minimal 16-bit", server, stream(frame{op: wsframe.OpText, lenForm: 16, payload: []byte("hi")}),
		rec{Opcode: wsframe.OpText, Payload: "hi", NonMinimal: true, WireBytes: 6})
	f("non-minimal 64-bit", server, stream(frame{op: wsframe.OpText, lenForm: 64, payload: big[:300]}),
		rec{Opcode: wsframe.OpText, Payload: string(big[:300]), NonMinimal: true, WireBytes: 310})
	f("non-minimal ping", server, stream(frame{op: wsframe.OpPing, lenForm: 16, payload: []byte("p")}),
		rec{Opcode: wsframe.OpPing, Payload: "p", NonMinimal: true, WireBytes: 5})
	f("fragments with interleaved controls", client, stream(
		frame{op: wsframe.OpText, more: true, mask: true, key: key, payload: []byte("hel")},
		frame{op: wsframe.OpPing, mask: true, key: key, payload: []byte("p1")},
		frame{op: wsframe.OpContinuation, more: true, mask: true, key: key, payload: nil},
		frame{op: wsframe.OpPong, mask: true, key: key},
		frame{op: wsframe.OpContinuation, mask: true, key: key, payload: []byte("lo world")},
		frame{op: wsframe.OpBinary, mask: true, key: key, payload: []byte{1, 2}},
	),
		rec{Opcode: wsframe.OpPing, Payload: "p1", WireBytes: 8},
		rec{Opcode: wsframe.OpPong, WireBytes: 6},
		rec{Opcode: wsframe.OpText, Payload: "hello world", WireBytes: 9 + 6 + 14},
		rec{Opcode: wsframe.OpBinary, Payload: "\x01\x02", WireBytes: 8},
	)
	f("close with reason", server, stream(frame{op: wsframe.OpClose, payload: []byte("\x03\xe8bye")}),
		rec{Opcode: wsframe.OpClose, Payload: "\x03\xe8bye", WireBytes: 7, CloseCode: 1000, CloseReason: "bye"})
	f("close code only", client, stream(frame{op: wsframe.OpClose, mask: true, key: key, payload: []byte("\x03\xe9")}),
		rec{Opcode: wsframe.OpClose, Payload: "\x03\xe9", WireBytes: 8, CloseCode: 1001})
	f("empty close", server, stream(frame{op: wsframe.OpClose}),
		rec{Opcode: wsframe.OpClose, WireBytes: 2})
	f("125-byte ping", server, stream(frame{op: wsframe.OpPing, payload: big[:125]}),
		rec{Opcode: wsframe.OpPing, Payload: string(big[:125]), WireBytes: 127})

	trunc := &wsframe.Options{MaxMessageBytes: 10}
	f("truncated single frame", trunc, stream(frame{op: wsframe.OpText, payload: big[:100]}),
		rec{Opcode: wsframe.OpText, Payload: string(big[:10]), Truncated: true, WireBytes: 102})
	f("truncated fragments", trunc, stream(
		frame{op: wsframe.OpText, more: true, payload: big[:6]},
		frame{op: wsframe.OpContinuation, more: true, payload: big[6:12]},
		frame{op: wsframe.OpContinuation, payload: big[12:20]},
		frame{op: wsframe.OpText, payload: big[:10]},
	),
		rec{Opcode: wsframe.OpText, Payload: string(big[:10]), Truncated: true, WireBytes: 26},
		rec{Opcode: wsframe.OpText, Payload: string(big[:10]), WireBytes: 12})
}

func TestErrors(t *testing.T) {
	f := func(reason string, opts *wsframe.Options, in []byte) {
		t.Helper()
		// Whole, and one byte at a time.
		chunks := [][]byte{}
		for i := range in {
			chunks = append(chunks, in[i:i+1])
		}
		for _, c := range [][][]byte{{in}, chunks} {
			p := wsframe.NewParser(opts)
			var err error
			for _, b := range c {
				if err = p.Feed(bytes.Clone(b), func(*wsframe.Message) {}); err != nil {
					break
				}
			}
			if got := reasonOf(err); got != reason {
				t.Errorf("%s: got %q (%v)", reason, got, err)
				continue
			}
			// The parser stays failed with the same error.
			if err2 := p.Feed(stream(frame{op: wsframe.OpText, mask: opts.Client}), func(*wsframe.Message) {}); err2 != err {
				t.Errorf("%s: after the error Feed returned %v", reason, err2)
			}
			if !strings.Contains(err.Error(), reason) {
				t.Errorf("%s: message %q lacks the reason", reason, err)
			}
		}
	}
	server := &wsframe.Options{}
	client := &wsframe.Options{Client: true}
	deflate := &wsframe.Options{Deflate: &wsframe.DeflateParams{}}
	huge := uint64(1) << 63

	f(wsframe.ReasonUnmaskedClientFrame, client, stream(frame{op: wsframe.OpText, payload: []byte("x")}))
	f(wsframe.ReasonMaskedServerFrame, server, stream(frame{op: wsframe.OpText, mask: true, key: key, payload: []byte("x")}))
	for _, op := range []wsframe.Opcode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		f(wsframe.ReasonReservedOpcode, server, stream(frame{op: op}))
	}
	f(wsframe.ReasonControlTooLong, server, stream(frame{op: wsframe.OpPing, payload: make([]byte, 126)}))
	f(wsframe.ReasonFragmentedControl, server, stream(frame{op: wsframe.OpPong, more: true}))
	f(wsframe.ReasonUnexpectedContinuation, server, stream(frame{op: wsframe.OpContinuation, payload: []byte("x")}))
	f(wsframe.ReasonUnexpectedContinuation, server, stream(
		frame{op: wsframe.OpText, payload: []byte("done")},
		frame{op: wsframe.OpContinuation, payload: []byte("x")}))
	f(wsframe.ReasonMissingContinuation, server, stream(
		frame{op: wsframe.OpText, more: true, payload: []byte("a")},
		frame{op: wsframe.OpPing},
		frame{op: wsframe.OpBinary, payload: []byte("b")}))
	for _, rsv := range []byte{0x40, 0x20, 0x10} {
		f(wsframe.ReasonReservedBits, server, stream(frame{op: wsframe.OpText, rsv: rsv}))
	}
	f(wsframe.ReasonReservedBits, deflate, stream(frame{op: wsframe.OpText, rsv: 0x20}))
	f(wsframe.ReasonReservedBits, deflate, stream(frame{op: wsframe.OpPing, rsv: 0x40}))
	f(wsframe.ReasonReservedBits, deflate, stream(
		frame{op: wsframe.OpText, more: true, rsv: 0x40, payload: []byte{0}},
		frame{op: wsframe.OpContinuation, rsv: 0x40}))
	f(wsframe.ReasonBadLength, server, stream(frame{op: wsframe.OpBinary, rawLen: &huge}))
	f(wsframe.ReasonBadClosePayload, server, stream(frame{op: wsframe.OpClose, payload: []byte{3}}))
	f(wsframe.ReasonInflate, deflate, stream(frame{op: wsframe.OpText, rsv: 0x40, payload: []byte{0xff, 0xff, 0xff}}))

	bomb := newCompressor(false).compress(t, make([]byte, 1<<20))
	f(wsframe.ReasonInflateLimit, &wsframe.Options{Deflate: &wsframe.DeflateParams{}, MaxInflateBytes: 1 << 19},
		stream(frame{op: wsframe.OpBinary, rsv: 0x40, payload: bomb}))
	f(wsframe.ReasonInflateLimit, &wsframe.Options{Deflate: &wsframe.DeflateParams{}, MaxInflateBytes: 100},
		stream(frame{op: wsframe.OpBinary, rsv: 0x40, more: true, payload: make([]byte, 60)},
			frame{op: wsframe.OpContinuation, payload: make([]byte, 60)}))
}

func TestRelease(t *testing.T) {
	p := wsframe.NewParser(&wsframe.Options{Deflate: &wsframe.DeflateParams{}})
	c := newCompressor(true)
	n := 0
	emit := func(*wsframe.Message) { n++ }
	if err := p.Feed(stream(frame{op: wsframe.OpText, rsv: 0x40, payload: c.compress(t, []byte("hello hello"))}), emit); err != nil {
		t.Fatal(err)
	}
	p.Release()
	p.Release()
	if err := p.Feed(stream(frame{op: wsframe.OpText}), emit); reasonOf(err) != wsframe.ReasonReleased {
		t.Fatalf("Feed after Release: %v", err)
	}
	if n != 1 {
		t.Fatalf("emitted %d messages, want 1", n)
	}
}

// deflateCase is a sequence of messages sent with permessage-deflate, some
// left uncompressed, some fragmented.
type deflateMsg struct {
	data       []byte
	compressed bool
	fragments  int
}

func deflateStream(t testing.TB, takeover, mask bool, msgs []deflateMsg) []byte {
	c := newCompressor(takeover)
	var frames []frame
	for _, m := range msgs {
		payload, rsv := m.data, byte(0)
		if m.compressed {
			payload, rsv = c.compress(t, m.data), 0x40
		}
		frames = append(frames, fragment(wsframe.OpText, rsv, mask, payload, m.fragments)...)
	}
	return stream(frames...)
}

// fragment splits payload into n frames (at least 1).
func fragment(op wsframe.Opcode, rsv byte, mask bool, payload []byte, n int) []frame {
	n = max(n, 1)
	var out []frame
	for i := range n {
		part := payload[len(payload)*i/n : len(payload)*(i+1)/n]
		f := frame{op: wsframe.OpContinuation, more: i < n-1, mask: mask, key: key, payload: part}
		if i == 0 {
			f.op, f.rsv = op, rsv
		}
		out = append(out, f)
	}
	return out
}

func jsonish(rng *rand.Rand, n int) []byte {
	words := []string{`{"type":"update",`, `"id":`, `"name":"task"`, `,"completed":false`, `"assignee":1234`, `}`, `[`, `]`, `"notes":"`}
	var b []byte
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		b = strconv.AppendInt(b, rng.Int64N(100000), 10)
	}
	return b[:n]
}

func TestDeflate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, takeover := range []bool{true, false} {
		var msgs []deflateMsg
		var want []rec
		for i := range 40 {
			m := deflateMsg{data: jsonish(rng, rng.IntN(3000)), compressed: i%5 != 4, fragments: 1 + i%3}
			if i == 7 {
				m.data = jsonish(rng, 100<<10) // past the window and past MaxMessageBytes
			}
			msgs = append(msgs, m)
		}
		in := deflateStream(t, takeover, true, msgs)
		opts := &wsframe.Options{Client: true, MaxMessageBytes: 64 << 10,
			Deflate: &wsframe.DeflateParams{ClientNoContextTakeover: !takeover}}
		got, err := parseChunks(opts, in)
		if err != nil {
			t.Fatalf("takeover=%v: %v", takeover, err)
		}
		for i, m := range msgs {
			w := rec{Opcode: wsframe.OpText, Payload: string(m.data), Compressed: m.compressed}
			if len(m.data) > opts.MaxMessageBytes {
				w.Payload, w.Truncated = w.Payload[:opts.MaxMessageBytes], true
			}
			want = append(want, w)
			if i < len(got) {
				got[i].WireBytes = 0
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("takeover=%v: got %d messages, want %d; first difference %v", takeover, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(got, want []rec) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return "at " + strconv.Itoa(i) + ": got " + got[i].String() + " want " + want[i].String()
		}
	}
	return "length"
}

// TestTruncatedTakeover truncates a compressed message in a context
// takeover session: the next message refers back into the cut part and must
// still inflate.
func TestTruncatedTakeover(t *testing.T) {
	c := newCompressor(true)
	first := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 100) // 3600 bytes
	second := first[3000:3500]
	in := stream(
		frame{op: wsframe.OpText, rsv: 0x40, payload: c.compress(t, first)},
		frame{op: wsframe.OpText, rsv: 0x40, payload: c.compress(t, second)},
	)
	got, err := parseChunks(&wsframe.Options{MaxMessageBytes: 100, Deflate: &wsframe.DeflateParams{}}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Payload != string(first[:100]) || !got[0].Truncated ||
		got[1].Payload != string(second[:100]) || !got[1].Truncated {
		t.Fatalf("got %v", got)
	}
	got, err = parseChunks(&wsframe.Options{MaxMessageBytes: 1000, Deflate: &wsframe.DeflateParams{}}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Payload != string(second) || got[1].Truncated {
		t.Fatalf("got %v", got)
	}
}

// TestSmallWindows checks windows of 8 to 15 bits with and without context
// takeover, and that a back reference past the negotiated window fails.
func TestSmallWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{true, false} {
			enc := &smallWindowEncoder{window: 1 << bits, takeover: takeover}
			opts := &wsframe.Options{Deflate: &wsframe.DeflateParams{
				ServerMaxWindowBits: bits, ServerNoContextTakeover: !takeover}}
			p := wsframe.NewParser(opts)
			for i := range 12 {
				// Messages repeat each other a window's length back.
				msg := jsonish(rng, 50+rng.IntN(1<<min(bits, 11)))
				var got []byte
				err := p.Feed(stream(frame{op: wsframe.OpBinary, rsv: 0x40, payload: enc.encode(msg)}),
					func(m *wsframe.Message) { got = bytes.Clone(m.Payload) })
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("bits=%d takeover=%v message %d: err %v, equal %v", bits, takeover, i, err, bytes.Equal(got, msg))
				}
			}
			p.Release()
		}
		if bits == 15 {
			continue
		}
		// Encoded with twice the window: the second message reaches back
		// 2^(bits+1) bytes, past what the parser keeps.
		enc := &smallWindowEncoder{window: 2 << bits, takeover: true}
		first := make([]byte, 2<<bits)
		for i := range first {
			first[i] = byte(rng.Uint32())
		}
		in := stream(
			frame{op: wsframe.OpBinary, rsv: 0x40, payload: enc.encode(first)},
			frame{op: wsframe.OpBinary, rsv: 0x40, payload: enc.encode(first[:64])},
		)
		_, err := parseChunks(&wsframe.Options{Deflate: &wsframe.DeflateParams{ServerMaxWindowBits: bits}}, in)
		if reasonOf(err) != wsframe.ReasonInflate {
			t.Fatalf("bits=%d: reference past the window: %v", bits, err)
		}
	}
}

func TestParseDeflate(t *testing.T) {
	f := func(header string, want *wsframe.DeflateParams, wantErr string) {
		t.Helper()
		got, err := wsframe.ParseDeflate(header)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%q: error %v, want one containing %q", header, err, wantErr)
			}
			return
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, %v; want %+v", header, got, err, want)
		}
	}
	f("", nil, "")
	f("x-webkit-deflate-frame", nil, "")
	f("permessage-deflate", &wsframe.DeflateParams{}, "")
	f("Permessage-Deflate", &wsframe.DeflateParams{}, "")
	f("permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		&wsframe.DeflateParams{ClientNoContextTakeover: true, ServerNoContextTakeover: true}, "")
	f(`foo; a="x,y;z", permessage-deflate ; server_max_window_bits=10;client_max_window_bits="9", bar`,
		&wsframe.DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 9}, "")
	f(", permessage-deflate,", &wsframe.DeflateParams{}, "")
	f("permessage-deflate; client_max_window_bits", nil, `"client_max_window_bits" needs a value`)
	f("permessage-deflate; server_max_window_bits=16", nil, "out of range")
	f("permessage-deflate; server_max_window_bits=7", nil, "out of range")
	f("permessage-deflate; server_max_window_bits=010", nil, "bad window bits")
	f("permessage-deflate; server_max_window_bits=x", nil, "bad window bits")
	f(`permessage-deflate; server_max_window_bits="10`, nil, "unterminated")
	f("permessage-deflate; server_no_context_takeover=1", nil, "takes no value")
	f("permessage-deflate; server_no_context_takeover; server_no_context_takeover", nil, "repeated")
	f("permessage-deflate; mystery", nil, `unsupported permessage-deflate parameter "mystery"`)
	f("permessage-deflate, permessage-deflate", nil, "more than once")
	f("perm(essage", nil, "bad extension name")
}
