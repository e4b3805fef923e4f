package redact

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// The two non-ASCII characters that Unicode case folding maps to ASCII
// letters, and so to which a key name can be spelled by a decoder that folds
// case (encoding/json matches struct fields that way).
const (
	kelvin = '\u212a' // KELVIN SIGN folds to k
	longS  = '\u017f' // LATIN SMALL LETTER LONG S folds to s
)

var (
	kelvinUTF8 = []byte(string(rune(kelvin)))
	longSUTF8  = []byte(string(rune(longS)))
)

// matcher is the pre-check: it answers "might these bytes spell one of the
// names?" in one pass, before any parsing. It never answers no when a JSON
// decoding of the bytes could contain a name, ignoring ASCII case; it may
// answer yes when none is there.
//
// The raw search is Wu-Manber with two-byte blocks over bytes folded by
// OR-ing 0x20 (which maps A-Z to a-z and merges some other pairs, a
// harmless source of false positives). Each name contributes one window of
// m bytes, m being the shortest name's length, chosen to end on the rarest
// pair; pairs not at a window's end let the scan skip up to m-1 bytes.
// Escapes and the two non-ASCII folds are caught by separate passes, which
// use bytes.IndexByte and so run at memory speed.
type matcher struct {
	m int
	// tbl maps a folded byte pair to the scan's skip (1 to m-1), or, with
	// the top bit set, to 0x80 | the index in cands of the windows ending
	// in that pair. Index 0x7f means too many to list: assume a match.
	tbl     *[1 << 16]uint8
	cands   [][]anchor
	pats    [][]byte   // folded with |0x20
	byteSet [256]bool  // bytes (|0x20) that occur in names
	kelvin  bool       // some name has a k
	longS   bool       // some name has an s
	single  *[256]bool // m == 1: the bytes that start a match
}

type anchor struct {
	pat int // index in pats
	off int // where the window starts in the name
}

const overflow = 0x7f

// byteWeight ranks folded bytes by how common they are in JSON text, to
// pick each name's rarest window end. Only the order matters.
var byteWeight = func() (w [256]int) {
	for i := range w {
		w[i] = 10
	}
	for i, c := range "etaoinshrdlcumwfgypbvkjxqz" {
		w[c] = 60 - 2*i
	}
	for c := '0'; c <= '9'; c++ {
		w[c] = 40
	}
	for _, c := range `":,{}[ ` {
		w[c] = 80
	}
	w['_'|0x20] = 25
	return w
}()

func newMatcher(names []string) *matcher {
	m := &matcher{m: MaxNameLen}
	if len(names) == 0 {
		return m // matches nothing: maybe is always false
	}
	for _, n := range names {
		p := make([]byte, len(n))
		for i := 0; i < len(n); i++ {
			p[i] = n[i] | 0x20
			m.byteSet[p[i]] = true
			switch n[i] {
			case 'k':
				m.kelvin = true
			case 's':
				m.longS = true
			}
		}
		m.pats = append(m.pats, p)
		m.m = min(m.m, len(p))
	}
	if m.m == 1 {
		m.single = new([256]bool)
		for _, p := range m.pats {
			m.single[p[0]] = true
		}
		return m
	}
	shift := make([]int, 1<<16)
	for i := range shift {
		shift[i] = m.m - 1
	}
	candIdx := map[uint16]int{}
	for pi, p := range m.pats {
		best, bestScore := 0, 1<<30
		for off := 0; off+m.m <= len(p); off++ {
			e := off + m.m - 1
			if s := byteWeight[p[e-1]] * byteWeight[p[e]]; s < bestScore {
				best, bestScore = off, s
			}
		}
		w := p[best : best+m.m]
		for e := 1; e < m.m-1; e++ {
			h := pair(w[e-1], w[e])
			shift[h] = min(shift[h], m.m-1-e)
		}
		h := pair(w[m.m-2], w[m.m-1])
		shift[h] = 0
		ci, ok := candIdx[h]
		if !ok {
			ci = len(m.cands)
			candIdx[h] = ci
			m.cands = append(m.cands, nil)
		}
		m.cands[ci] = append(m.cands[ci], anchor{pat: pi, off: best})
	}
	m.tbl = new([1 << 16]uint8)
	for h, s := range shift {
		if s > 0 {
			m.tbl[h] = uint8(s)
			continue
		}
		m.tbl[h] = 0x80 | uint8(min(candIdx[uint16(h)], overflow))
	}
	return m
}

// pair is the table index of the bytes a then b: the little-endian
// uint16 at a, so the scan loads a pair in one go.
func pair(a, b byte) uint16 { return uint16(b)<<8 | uint16(a) }

// pairAt is pair(b[i-1]|0x20, b[i]|0x20).
func pairAt(b []byte, i int) uint16 {
	return binary.LittleEndian.Uint16(b[i-1:]) | 0x2020
}

// maybe reports whether b might contain one of the names, spelled raw in
// any ASCII case, with JSON escapes, or with a character that folds to an
// ASCII letter.
func (m *matcher) maybe(b []byte) bool {
	if m.tbl == nil && m.single == nil {
		return false
	}
	return m.raw(b) || m.escapes(b) ||
		(m.kelvin && bytes.Contains(b, kelvinUTF8)) ||
		(m.longS && bytes.Contains(b, longSUTF8))
}

// raw reports whether b might contain a name as plain bytes.
func (m *matcher) raw(b []byte) bool {
	if m.single != nil {
		for _, c := range b {
			if m.single[c|0x20] {
				return true
			}
		}
		return false
	}
	return m.scan(b, m.m-1, len(b))
}

// scan runs the Wu-Manber search for windows ending in b[lo:hi]. A long
// input is cut into four stretches scanned in one interleaved loop: each
// step of one scan waits on a table load that depends on the step before,
// so four independent scans go about four times as fast as one.
func (m *matcher) scan(b []byte, lo, hi int) bool {
	const ways = 4
	if hi-lo >= 16*ways {
		q := (hi - lo) / ways
		e1, e2, e3 := lo+q, lo+2*q, lo+3*q
		i0, i1, i2, i3 := lo, e1, e2, e3
		tbl := m.tbl
		for i0 < e1 && i1 < e2 && i2 < e3 && i3 < hi {
			v0 := tbl[pairAt(b, i0)]
			v1 := tbl[pairAt(b, i1)]
			v2 := tbl[pairAt(b, i2)]
			v3 := tbl[pairAt(b, i3)]
			if (v0|v1|v2|v3)&0x80 != 0 {
				if v0&0x80 != 0 {
					if m.verify(b, i0-m.m+1, v0&0x7f) {
						return true
					}
					v0 = 1
				}
				if v1&0x80 != 0 {
					if m.verify(b, i1-m.m+1, v1&0x7f) {
						return true
					}
					v1 = 1
				}
				if v2&0x80 != 0 {
					if m.verify(b, i2-m.m+1, v2&0x7f) {
						return true
					}
					v2 = 1
				}
				if v3&0x80 != 0 {
					if m.verify(b, i3-m.m+1, v3&0x7f) {
						return true
					}
					v3 = 1
				}
			}
			i0 += int(v0)
			i1 += int(v1)
			i2 += int(v2)
			i3 += int(v3)
		}
		return m.scan1(b, i0, e1) || m.scan1(b, i1, e2) || m.scan1(b, i2, e3) || m.scan1(b, i3, hi)
	}
	return m.scan1(b, lo, hi)
}

// scan1 is scan without the interleaving.
func (m *matcher) scan1(b []byte, lo, hi int) bool {
	tbl := m.tbl
	for i := lo; i < hi; {
		v := tbl[pairAt(b, i)]
		if v < 0x80 {
			i += int(v)
			continue
		}
		if m.verify(b, i-m.m+1, v&0x7f) {
			return true
		}
		i++
	}
	return false
}

// verify reports whether a name whose window ends in the pair at the end
// of b[start:start+m] occurs around it.
func (m *matcher) verify(b []byte, start int, ci uint8) bool {
	if ci == overflow {
		return true
	}
	for _, a := range m.cands[ci] {
		p := m.pats[a.pat]
		s := start - a.off
		if s < 0 || s+len(p) > len(b) {
			continue
		}
		if foldedEqual(b[s:s+len(p)], p) {
			return true
		}
	}
	return false
}

func foldedEqual(b, p []byte) bool {
	for i, c := range p {
		if b[i]|0x20 != c {
			return false
		}
	}
	return true
}

// escapes reports whether b has a JSON escape that decodes to a byte of
// some name, or to one of the characters that fold to one. A run of
// backslashes counts as one, so a key escaped in JSON embedded in a JSON
// string is caught too.
func (m *matcher) escapes(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return false
		}
		i += j + 1
		for i < len(b) && b[i] == '\\' {
			i++
		}
		if i >= len(b) {
			return false
		}
		var r rune
		switch c := b[i]; c {
		case 'u':
			if i+5 > len(b) {
				return false
			}
			var ok bool
			if r, ok = hex4(b[i+1 : i+5]); !ok {
				continue
			}
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		default:
			r = rune(c)
		}
		switch {
		case r < utf8.RuneSelf && m.byteSet[byte(r)|0x20],
			r == kelvin && m.kelvin,
			r == longS && m.longS:
			return true
		}
	}
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
