package wsframe_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/preheatdev/preheat/capture/wsframe"
)

// fuzzOptions decodes a config byte: bit 0 client direction, bits 1-2
// deflate (none, takeover, no takeover, takeover with 9-bit windows), bits
// 3-4 MaxMessageBytes (default, 64, 1000, 1).
func fuzzOptions(cfg byte) *wsframe.Options {
	opts := &wsframe.Options{Client: cfg&1 != 0, MaxInflateBytes: 1 << 20}
	switch cfg >> 1 & 3 {
	case 1:
		opts.Deflate = &wsframe.DeflateParams{}
	case 2:
		opts.Deflate = &wsframe.DeflateParams{ClientNoContextTakeover: true, ServerNoContextTakeover: true}
	case 3:
		opts.Deflate = &wsframe.DeflateParams{ClientMaxWindowBits: 9, ServerMaxWindowBits: 9}
	}
	opts.MaxMessageBytes = []int{0, 64, 1000, 1}[cfg>>3&3]
	return opts
}

func configByte(client bool, mode int) byte {
	c := byte(mode) << 1
	if client {
		c |= 1
	}
	return c
}

// FuzzParser feeds arbitrary bytes in one piece and in chunks: the parser
// must not panic, must keep to its limits, and must say the same either way.
func FuzzParser(f *testing.F) {
	rng := rand.New(rand.NewPCG(21, 22))
	for i := range 12 {
		client, mode := i%2 == 0, i%3
		opts, in, _ := genStream(f, rng, client, mode)
		cfg := configByte(client, mode)
		if opts.MaxMessageBytes != 0 {
			cfg |= 2 << 3
		}
		if len(in) > 4000 {
			in = in[:4000]
		}
		f.Add(cfg, uint16(rng.Uint32()), in)
	}
	f.Add(byte(0), uint16(1), stream(frame{op: wsframe.OpClose, payload: []byte{3}}))
	f.Add(byte(2), uint16(7), stream(frame{op: wsframe.OpText, rsv: 0x40, payload: []byte{0xff, 0, 0}}))
	f.Fuzz(func(t *testing.T, cfg byte, seed uint16, in []byte) {
		opts := fuzzOptions(cfg)
		maxMsg := opts.MaxMessageBytes
		if maxMsg == 0 {
			maxMsg = 1 << 20
		}
		check := func(m *wsframe.Message) {
			if !m.Opcode.IsControl() && len(m.Payload) > maxMsg {
				t.Fatalf("payload of %d bytes, max %d", len(m.Payload), maxMsg)
			}
			if m.Opcode.IsControl() && len(m.Payload) > 125 {
				t.Fatalf("%s payload of %d bytes", m.Opcode, len(m.Payload))
			}
			if m.Opcode == wsframe.OpContinuation {
				t.Fatal("emitted a continuation")
			}
		}
		run := func(chunks [][]byte) ([]rec, string) {
			p := wsframe.NewParser(opts)
			defer p.Release()
			var out []rec
			for _, c := range chunks {
				err := p.Feed(bytes.Clone(c), func(m *wsframe.Message) {
					check(m)
					out = append(out, toRec(m))
				})
				if err != nil {
					var e *wsframe.Error
					if !errors.As(err, &e) || e.Reason == "" {
						t.Fatalf("error without a reason: %v", err)
					}
					return out, e.Reason
				}
			}
			return out, ""
		}
		whole, wholeErr := run([][]byte{in})
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		split, splitErr := run(randomSplit(rng, in))
		if wholeErr != splitErr || !reflect.DeepEqual(whole, split) {
			t.Fatalf("one feed: %d messages, error %q; split: %d messages, error %q; first difference %s",
				len(whole), wholeErr, len(split), splitErr, firstDiff(whole, split))
		}
	})
}

// FuzzDeflate round-trips messages cut from the input through compress/flate
// and the parser, and feeds the input itself as a compressed payload.
func FuzzDeflate(f *testing.F) {
	f.Add(byte(0), []byte(`{"type":"query","id":1}\xfe{"type":"query","id":2}\xfe\xfe`))
	f.Add(byte(1), bytes.Repeat([]byte("abc"), 20000))
	f.Add(byte(2), []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})
	f.Add(byte(3), []byte{0x00})
	f.Add(byte(6), []byte{0xfa, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, cfg byte, in []byte) {
		takeover := cfg&1 == 0
		opts := &wsframe.Options{MaxMessageBytes: 4096, MaxInflateBytes: 1 << 20,
			Deflate: &wsframe.DeflateParams{ServerNoContextTakeover: !takeover}}
		if cfg&4 != 0 {
			opts.Deflate.ServerMaxWindowBits = 8 + int(cfg>>3)%8
		}

		// Arbitrary compressed bytes: no panic, limits kept.
		p := wsframe.NewParser(opts)
		err := p.Feed(stream(frame{op: wsframe.OpBinary, rsv: 0x40, payload: in}), func(m *wsframe.Message) {
			if len(m.Payload) > opts.MaxMessageBytes {
				t.Fatalf("payload of %d bytes", len(m.Payload))
			}
		})
		if r := reasonOf(err); r != "" && r != wsframe.ReasonInflate && r != wsframe.ReasonInflateLimit {
			t.Fatalf("unexpected error %v", err)
		}
		p.Release()

		// Round trip, with 32 KiB windows as compress/flate needs.
		if cfg&4 != 0 {
			return
		}
		msgs := bytes.Split(in, []byte{0xfe})
		c := newCompressor(takeover)
		if cfg&2 != 0 {
			c.w, _ = flate.NewWriter(&c.buf, flate.BestCompression)
		}
		var frames []frame
		for i, m := range msgs {
			frames = append(frames, fragment(wsframe.OpBinary, 0x40, false, c.compress(t, m), 1+i%3)...)
		}
		got, err := parseChunks(opts, stream(frames...))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("got %d messages, want %d", len(got), len(msgs))
		}
		for i, m := range msgs {
			want := m[:min(len(m), opts.MaxMessageBytes)]
			if got[i].Payload != string(want) || got[i].Truncated != (len(m) > opts.MaxMessageBytes) || !got[i].Compressed {
				t.Fatalf("message %d differs: %v", i, got[i])
			}
		}
	})
}
