package wsframe_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/preheatdev/preheat/capture/wsframe"
)

// frame describes one frame for the test frame builder.
type frame struct {
	op      wsframe.Opcode
	more    bool // FIN clear
	rsv     byte // RSV bits in place (0x40 = RSV1)
	mask    bool
	key     [4]byte
	payload []byte
	lenForm int     // 0 minimal, 16 or 64: force that length encoding
	rawLen  *uint64 // when set, written as the 64-bit length instead of len(payload)
}

func (f frame) wire() []byte {
	b0 := byte(f.op) | f.rsv
	if !f.more {
		b0 |= 0x80
	}
	var b1 byte
	if f.mask {
		b1 = 0x80
	}
	n := uint64(len(f.payload))
	b := []byte{b0, b1}
	switch {
	case f.rawLen != nil:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, *f.rawLen)
	case f.lenForm == 64 || f.lenForm == 0 && n > 0xffff:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, n)
	case f.lenForm == 16 || f.lenForm == 0 && n > 125:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] |= byte(n)
	}
	if f.mask {
		b = append(b, f.key[:]...)
	}
	start := len(b)
	b = append(b, f.payload...)
	if f.mask {
		for i := range b[start:] {
			b[start+i] ^= f.key[i&3]
		}
	}
	return b
}

func stream(frames ...frame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.wire()...)
	}
	return b
}

// rec is a copy of an emitted message.
type rec struct {
	Opcode      wsframe.Opcode
	Payload     string
	Truncated   bool
	Compressed  bool
	NonMinimal  bool
	WireBytes   int
	CloseCode   uint16
	CloseReason string
}

func (r rec) String() string {
	p := r.Payload
	if len(p) > 40 {
		p = fmt.Sprintf("%.40q...(%d bytes)", p, len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("{%s %s trunc=%v comp=%v nonmin=%v wire=%d close=%d %q}",
		r.Opcode, p, r.Truncated, r.Compressed, r.NonMinimal, r.WireBytes, r.CloseCode, r.CloseReason)
}

func toRec(m *wsframe.Message) rec {
	return rec{m.Opcode, string(m.Payload), m.Truncated, m.Compressed, m.NonMinimalLength,
		m.WireBytes, m.CloseCode, m.CloseReason}
}

// parseChunks feeds a copy of the chunks to a new parser and returns what it
// emitted and the first error.
func parseChunks(opts *wsframe.Options, chunks ...[]byte) ([]rec, error) {
	p := wsframe.NewParser(opts)
	defer p.Release()
	var out []rec
	emit := func(m *wsframe.Message) { out = append(out, toRec(m)) }
	for _, c := range chunks {
		if err := p.Feed(bytes.Clone(c), emit); err != nil {
			return out, err
		}
	}
	return out, nil
}

func reasonOf(err error) string {
	var e *wsframe.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

// compressor compresses messages the way a permessage-deflate sender does:
// a sync flush per message with the trailing 00 00 ff ff removed.
type compressor struct {
	takeover bool
	buf      bytes.Buffer
	w        *flate.Writer
}

func newCompressor(takeover bool) *compressor {
	c := &compressor{takeover: takeover}
	c.w, _ = flate.NewWriter(&c.buf, flate.BestSpeed)
	return c
}

func (c *compressor) compress(t testing.TB, msg []byte) []byte {
	t.Helper()
	c.buf.Reset()
	if !c.takeover {
		c.w.Reset(&c.buf)
	}
	if _, err := c.w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		t.Fatal(err)
	}
	b := c.buf.Bytes()
	if !bytes.HasSuffix(b, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("flush output does not end in 00 00 ff ff: % x", b)
	}
	return bytes.Clone(b[:len(b)-4])
}

// smallWindowEncoder is a minimal DEFLATE encoder (fixed Huffman codes,
// greedy brute-force matching) whose matches reach back at most window
// bytes, across messages when takeover is set. compress/flate always uses a
// 32 KiB window, so this is how the tests produce streams for smaller
// negotiated windows.
type smallWindowEncoder struct {
	window   int
	takeover bool
	hist     []byte
}

var (
	lengthBase  = []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = []uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = []int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = []uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// code writes a Huffman code, most significant bit first.
func (w *bitWriter) code(c uint32, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | uint64(c>>i&1)
	}
	w.bits(r, n)
}

func (w *bitWriter) litLen(v int) {
	switch {
	case v < 144:
		w.code(uint32(0x30+v), 8)
	case v < 256:
		w.code(uint32(0x190+v-144), 9)
	case v < 280:
		w.code(uint32(v-256), 7)
	default:
		w.code(uint32(0xc0+v-280), 8)
	}
}

func (e *smallWindowEncoder) encode(msg []byte) []byte {
	if !e.takeover {
		e.hist = nil
	}
	data := append(bytes.Clone(e.hist), msg...)
	start := len(e.hist)
	var w bitWriter
	w.bits(0, 1) // BFINAL
	w.bits(1, 2) // fixed Huffman
	// Positions by their first 3 bytes, most recent last.
	chains := map[[3]byte][]int{}
	add := func(j int) {
		if j+3 <= len(data) {
			k := [3]byte(data[j : j+3])
			chains[k] = append(chains[k], j)
		}
	}
	for j := range start {
		add(j)
	}
	for i := start; i < len(data); {
		bestLen, bestDist := 0, 0
		if i+3 <= len(data) {
			cands := chains[[3]byte(data[i:i+3])]
			for c := len(cands) - 1; c >= 0 && c >= len(cands)-64; c-- {
				d := i - cands[c]
				if d > e.window {
					break
				}
				l := 0
				for l < 258 && i+l < len(data) && data[i+l] == data[i+l-d] {
					l++
				}
				if l > bestLen {
					bestLen, bestDist = l, d
				}
			}
		}
		if bestLen < 3 {
			w.litLen(int(data[i]))
			add(i)
			i++
			continue
		}
		li := len(lengthBase) - 1
		for lengthBase[li] > bestLen {
			li--
		}
		if bestLen == 258 {
			li = 28
		} else if li == 28 {
			li = 27
		}
		w.litLen(257 + li)
		w.bits(uint64(bestLen-lengthBase[li]), lengthExtra[li])
		di := len(distBase) - 1
		for distBase[di] > bestDist {
			di--
		}
		w.code(uint32(di), 5)
		w.bits(uint64(bestDist-distBase[di]), distExtra[di])
		for j := i; j < i+bestLen; j++ {
			add(j)
		}
		i += bestLen
	}
	w.litLen(256)
	// An empty stored block ends the flush; its 00 00 ff ff is left off.
	w.bits(0, 3)
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
	e.hist = data
	if len(e.hist) > e.window {
		e.hist = bytes.Clone(e.hist[len(e.hist)-e.window:])
	}
	return w.out
}
