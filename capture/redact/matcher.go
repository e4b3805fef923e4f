package redact

import (
	"bytes"
	"unicode/utf8"

	"github.com/preheatdev/preheat/internal/jsonscan"
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

// text is what the scans read: payloads are bytes, routes and headers
// strings.
type text interface{ ~string | ~[]byte }

// Anchor kinds: what finding an anchor's literal means.
const (
	// kindSub: the literal anywhere, in any ASCII case (a configured name,
	// a secret word of five letters or more, a key pair such as api_key).
	kindSub uint8 = iota
	// kindWord: the literal as a word (a short secret word such as jwt):
	// not preceded by a letter unless it starts with a capital or follows
	// a JSON escape, and not followed by a lower-case letter other than a
	// plural s.
	kindWord
	// The token shapes (shape.go): the literal is "eyJ", "bearer" or
	// "basic" and a whole token of that shape follows.
	kindJWT
	kindBearer
	kindBasic
)

// sepAny in an anchor's literal stands for one of the separators that keep
// two words adjacent (- _ . and space). Names cannot hold it, as they
// cannot hold control characters.
const sepAny = 0

// anchor is one literal the pre-check looks for.
type anchor struct {
	lit  []byte // ASCII letters in lower case; sepAny for a separator
	kind uint8
	off  int // where the scan window starts, relative to lit's start
}

// The scan is Wu-Manber with three-byte blocks over windows of six bytes.
// A byte's code is its low five bits, which folds ASCII case (and merges
// digits and punctuation with some letters, a harmless source of false
// candidates), so a block is a 15-bit table index. Each anchor contributes
// one window: six bytes of its literal, or for a shorter literal the
// literal with any bytes before it and at most one after, placed where the
// scan pays least for it (window). A block not at a window's end lets the
// scan skip up to four bytes; the three-letter words (jwt, pwd, otp) and
// "eyJ" are why windows are not longer: past six, their padding would take
// in every block.
const (
	winLen   = 6
	blockLen = 3
	maxShift = winLen - blockLen + 1
	numCodes = 32
)

// matcher is the pre-check: it answers "might these bytes hold one of the
// anchors?" in one pass, before any parsing. It never answers no when a
// name's anchor occurs in the bytes, or in their JSON decoding, ignoring
// ASCII case, nor when a token shape does in the bytes; it may answer yes
// when none is there. Escapes and the two non-ASCII folds are caught by
// separate passes, which use bytes.IndexByte and so run at memory speed.
type matcher struct {
	// tbl maps a block to the scan's skip (1 to maxShift), or to 0 when
	// some window ends in it; cidx then gives its index in cands.
	tbl     *[1 << (3 * 5)]uint8
	cidx    *[1 << (3 * 5)]uint16
	cands   [][]int32
	anchors []anchor
	// tail lists, by the code of a literal's last byte, the anchors whose
	// window ends one byte past the literal, which the scan cannot see
	// when the literal ends the input; head those whose window can end
	// before the scan's first block.
	tail    [numCodes][]int32
	head    []int32
	minOff  int       // the smallest anchor offset
	byteSet [256]bool // bytes (letters in lower case) that occur in literals
	kelvin  bool      // some literal has a k
	longS   bool      // some literal has an s
}

// codeWeight ranks codes by how common their bytes are in JSON text, to
// place each literal's window. Only the order matters.
var codeWeight = func() (w [numCodes]int) {
	var bw [128]int
	for i := range bw {
		bw[i] = 2
	}
	for i, c := range "etaoinshrdlcumwfgypbvkjxqz" {
		bw[c] = 60 - 2*i
		bw[c-'a'+'A'] = (60 - 2*i) / 4
	}
	for c := '0'; c <= '9'; c++ {
		bw[c] = 40
	}
	for _, c := range `":,{}[] ` {
		bw[c] = 80
	}
	bw['_'], bw['-'], bw['.'] = 25, 15, 15
	for c, v := range bw {
		w[c&31] += v
	}
	return w
}()

var sepCodes = uint32(1)<<('-'&31) | 1<<('_'&31) | 1<<('.'&31) | 1<<(' '&31)

// posCodes returns the set of codes a window position over lit[i] admits.
func posCodes(lit []byte, i int) uint32 {
	switch {
	case i < 0 || i >= len(lit):
		return 1<<numCodes - 1
	case lit[i] == sepAny:
		return sepCodes
	}
	return 1 << (lit[i] & 31)
}

func setWeight(set uint32) int {
	w := 0
	for c := range numCodes {
		if set&(1<<c) != 0 {
			w += codeWeight[c]
		}
	}
	return w
}

// commonBlocks are trigrams frequent in English and JSON text, poor ends
// for a window.
var commonBlocks = []string{
	"the", "ing", "ion", "tio", "ent", "ati", "and", "ver", "ers", "ess",
	"ter", "for", "con", "res", "com", "ate", "sta", "ect", "pro", "per",
}

// window returns the offset of lit's scan window: among the windows inside
// lit, or around it for a literal shorter than a window (reaching at most
// one byte past it), the one that costs the scan least. A text block ending
// a window costs a check; one that shortens the skip costs a step.
func window(lit []byte) int {
	lo, hi := 0, len(lit)-winLen
	if len(lit) < winLen {
		lo, hi = len(lit)-winLen, min(0, len(lit)-winLen+1)
	}
	total := float64(setWeight(1<<numCodes - 1))
	best, bestCost := 0, -1.0
	for off := lo; off <= hi; off++ {
		cost := 0.0
		for k := blockLen - 1; k < winLen; k++ {
			p := 1.0
			for j := k - blockLen + 1; j <= k; j++ {
				p *= float64(setWeight(posCodes(lit, off+j))) / total
			}
			if e := off + k - blockLen + 1; e >= 0 && e+blockLen <= len(lit) {
				for _, c := range commonBlocks {
					if string(lit[e:e+blockLen]) == c {
						p *= 8
					}
				}
			}
			if shift := winLen - 1 - k; shift == 0 {
				cost += 10 * p
			} else {
				cost += float64(maxShift-shift) * p
			}
		}
		if bestCost < 0 || cost < bestCost {
			best, bestCost = off, cost
		}
	}
	return best
}

func newMatcher(anchors []anchor) *matcher {
	m := &matcher{anchors: anchors}
	if len(anchors) == 0 {
		return m // matches nothing: maybe is always false
	}
	m.tbl = new([1 << 15]uint8)
	for i := range m.tbl {
		m.tbl[i] = maxShift
	}
	m.cidx = new([1 << 15]uint16)
	cand := map[uint32]int{}
	for ai := range m.anchors {
		a := &m.anchors[ai]
		for _, c := range a.lit {
			if a.hit() != hitName {
				break // shapes are not looked for through escapes
			}
			switch c {
			case sepAny:
				for _, s := range []byte(" -_.") {
					m.byteSet[s] = true
				}
			case 'k':
				m.kelvin = true
			case 's':
				m.longS = true
			}
			m.byteSet[c] = c != sepAny
		}
		a.off = window(a.lit)
		if a.off+winLen > len(a.lit) {
			c := a.lit[len(a.lit)-1] & 31
			m.tail[c] = append(m.tail[c], int32(ai))
		}
		if a.off+winLen-1 < blockLen-1 {
			m.head = append(m.head, int32(ai))
		}
		m.minOff = min(m.minOff, a.off)
		var sets [winLen]uint32
		for k := range sets {
			sets[k] = posCodes(a.lit, a.off+k)
		}
		for k := blockLen - 1; k < winLen; k++ {
			shift := uint8(winLen - 1 - k)
			eachBlock(sets[k-2], sets[k-1], sets[k], func(h uint32) {
				m.tbl[h] = min(m.tbl[h], shift)
				if shift > 0 {
					return
				}
				ci, ok := cand[h]
				if !ok {
					ci = len(m.cands)
					cand[h] = ci
					m.cands = append(m.cands, nil)
					m.cidx[h] = uint16(ci)
				}
				m.cands[ci] = append(m.cands[ci], int32(ai))
			})
		}
	}
	return m
}

func eachBlock(s0, s1, s2 uint32, f func(h uint32)) {
	for a := range uint32(numCodes) {
		if s0&(1<<a) == 0 {
			continue
		}
		for b := range uint32(numCodes) {
			if s1&(1<<b) == 0 {
				continue
			}
			for c := range uint32(numCodes) {
				if s2&(1<<c) != 0 {
					f(a<<10 | b<<5 | c)
				}
			}
		}
	}
}

// block is the table index of the block ending at b[i].
func block[T text](b T, i int) uint32 {
	_ = b[i-2]
	return uint32(b[i-2]&31)<<10 | uint32(b[i-1]&31)<<5 | uint32(b[i]&31)
}

// block4 is block for []byte, with one bounds check.
func block4(b []byte, i int) uint32 {
	w := (*[3]byte)(b[i-2 : i+1])
	return uint32(w[0]&31)<<10 | uint32(w[1]&31)<<5 | uint32(w[2]&31)
}

const blockMask = 1<<15 - 1

// What a scan found: the kinds of anchors.
const (
	// hitName: a key name (configured, a default, or one the word rule
	// finds secret), or an escape or a fold that may spell one.
	hitName uint8 = 1 << iota
	// hitShape: a token shape, checked whole.
	hitShape
)

// hit returns the kind of anchor a is.
func (a *anchor) hit() uint8 {
	if a.kind >= kindJWT {
		return hitShape
	}
	return hitName
}

// names is where a scan found key names: where their literals start, so
// that the parser looks up only the keys holding one.
type names struct {
	pos [8]int32
	n   int
	// all says that some name may be where no position tells (found by
	// the escape or fold passes, or more than pos holds): every key must be
	// looked up.
	all bool
}

func (ns *names) add(s int) {
	if ns.n == len(ns.pos) {
		ns.all = true
		return
	}
	ns.pos[ns.n] = int32(s)
	ns.n++
}

// in reports whether a name found starts in [lo, hi).
func (ns *names) in(lo, hi int) bool {
	if ns.all {
		return true
	}
	for _, p := range ns.pos[:ns.n] {
		if lo <= int(p) && int(p) < hi {
			return true
		}
	}
	return false
}

// maybe reports whether b might hold one of the anchors, spelled raw in
// any ASCII case, with JSON escapes, or with a character that folds to an
// ASCII letter.
func (m *matcher) maybe(b []byte) bool { return m.kinds(b, 0, nil) != 0 }

// kinds returns the kinds of anchors b might hold, as maybe answers. It
// stops at the first anchor found, or, if all is not 0, once it has found
// all those kinds. When ns is not nil, it notes there where it found names.
func (m *matcher) kinds(b []byte, all uint8, ns *names) uint8 {
	if m.tbl == nil {
		return 0
	}
	got := m.raw(b, all, ns)
	if done(got, all) && ns == nil {
		return got
	}
	if m.escapes(b) || (m.kelvin && bytes.Contains(b, kelvinUTF8)) || (m.longS && bytes.Contains(b, longSUTF8)) {
		got |= hitName
		if ns != nil {
			ns.all = true
		}
	}
	return got
}

// done reports whether a scan that found got can stop, looking for all.
func done(got, all uint8) bool { return got != 0 && got&all == all }

// raw returns the kinds of anchors b might hold as plain bytes, stopping
// and noting names as kinds does.
func (m *matcher) raw(b []byte, all uint8, ns *names) uint8 {
	if len(b) == 0 {
		return 0
	}
	var got uint8
	// Windows past b's end, or ending before the first block.
	for _, ai := range m.tail[b[len(b)-1]&31] {
		if a := &m.anchors[ai]; a.at(b, len(b)-len(a.lit)) {
			got |= a.found(ns, len(b)-len(a.lit))
		}
	}
	for _, ai := range m.head {
		a := &m.anchors[ai]
		for s := 0; s+a.off+winLen-1 < blockLen-1 && s+len(a.lit) <= len(b); s++ {
			if a.at(b, s) {
				got |= a.found(ns, s)
			}
		}
	}
	if len(b) < blockLen || done(got, all) {
		return got
	}
	return m.scan(b, blockLen-1, len(b), got, all, ns)
}

// found notes where a was found, if it is a name, and returns its kind.
func (a *anchor) found(ns *names, s int) uint8 {
	h := a.hit()
	if h == hitName && ns != nil {
		ns.add(s)
	}
	return h
}

// scan runs the search for windows ending in b[lo:hi]. A long input is cut
// into six stretches scanned in one interleaved loop: each step of one
// scan waits on a table load that depends on the step before, so
// independent scans go faster than one.
func (m *matcher) scan(b []byte, lo, hi int, got, all uint8, ns *names) uint8 {
	const ways = 6
	if hi-lo < 16*ways {
		return m.scan1(b, lo, hi, got, all, ns)
	}
	q := (hi - lo) / ways
	e1, e2, e3, e4, e5 := lo+q, lo+2*q, lo+3*q, lo+4*q, lo+5*q
	i0, i1, i2, i3, i4, i5 := lo, e1, e2, e3, e4, e5
	tbl := m.tbl
	for i0 < e1 && i1 < e2 && i2 < e3 && i3 < e4 && i4 < e5 && i5 < hi {
		v0 := tbl[block4(b, i0)]
		v1 := tbl[block4(b, i1)]
		v2 := tbl[block4(b, i2)]
		v3 := tbl[block4(b, i3)]
		v4 := tbl[block4(b, i4)]
		v5 := tbl[block4(b, i5)]
		if (v0-1|v1-1|v2-1|v3-1|v4-1|v5-1)&0x80 != 0 { // some is 0
			if v0 == 0 {
				if got |= m.verify(b, i0, ns); done(got, all) {
					return got
				}
				v0 = 1
			}
			if v1 == 0 {
				if got |= m.verify(b, i1, ns); done(got, all) {
					return got
				}
				v1 = 1
			}
			if v2 == 0 {
				if got |= m.verify(b, i2, ns); done(got, all) {
					return got
				}
				v2 = 1
			}
			if v3 == 0 {
				if got |= m.verify(b, i3, ns); done(got, all) {
					return got
				}
				v3 = 1
			}
			if v4 == 0 {
				if got |= m.verify(b, i4, ns); done(got, all) {
					return got
				}
				v4 = 1
			}
			if v5 == 0 {
				if got |= m.verify(b, i5, ns); done(got, all) {
					return got
				}
				v5 = 1
			}
		}
		i0 += int(v0)
		i1 += int(v1)
		i2 += int(v2)
		i3 += int(v3)
		i4 += int(v4)
		i5 += int(v5)
	}
	for _, s := range [...][2]int{{i0, e1}, {i1, e2}, {i2, e3}, {i3, e4}, {i4, e5}, {i5, hi}} {
		if got = m.scan1(b, s[0], s[1], got, all, ns); done(got, all) {
			break
		}
	}
	return got
}

// scan1 is scan without the interleaving.
func (m *matcher) scan1(b []byte, lo, hi int, got, all uint8, ns *names) uint8 {
	tbl := m.tbl
	for i := lo; i < hi; {
		if v := tbl[block4(b, i)]; v != 0 {
			i += int(v)
			continue
		}
		if got |= m.verify(b, i, ns); done(got, all) {
			return got
		}
		i++
	}
	return got
}

// verify returns the kinds of the anchors whose window ends at b[i] that
// occur there, and notes names in ns.
func (m *matcher) verify(b []byte, i int, ns *names) uint8 {
	var got uint8
	for _, ai := range m.cands[m.cidx[block(b, i)]] {
		a := &m.anchors[ai]
		if s := i - (winLen - 1) - a.off; a.at(b, s) {
			got |= a.found(ns, s)
		}
	}
	return got
}

// at reports whether the anchor occurs with its literal at b[s:].
func (a *anchor) at(b []byte, s int) bool {
	if !litAt(b, s, a.lit) {
		return false
	}
	switch a.kind {
	case kindSub:
		return true
	case kindWord:
		return wordBounded(b, s, s+len(a.lit))
	}
	_, _, ok := shapeAt(b, s, a.kind, inText)
	return ok
}

// litAt reports whether lit occurs at b[s:], in any ASCII case.
func litAt[T text](b T, s int, lit []byte) bool {
	if s < 0 || s+len(lit) > len(b) {
		return false
	}
	for i, c := range lit {
		d := b[s+i]
		if c == sepAny {
			if !isAdjacencySep(d) {
				return false
			}
			continue
		}
		if d|0x20 != c|0x20 {
			return false
		}
	}
	return true
}

// wordBounded reports whether b[s:e] might be a word of its own as the
// word splitter (words.go) cuts names, conservatively: raw bytes may be
// JSON-escaped, so a letter that ends an escape counts as a boundary.
func wordBounded(b []byte, s, e int) bool {
	if s > 0 && charClass[b[s-1]] != clsSep && charClass[b[s-1]] != clsDigit &&
		charClass[b[s]] != clsUpper && !escapeEnd(b, s-1) {
		return false
	}
	if e < len(b) && charClass[b[e]] == clsLower {
		if b[e] != 's' || e+1 < len(b) && charClass[b[e+1]] == clsLower {
			return false
		}
	}
	return true
}

// escapeEnd reports whether b[i] may be the last byte of a JSON escape
// (\n, \u00e9 and the like).
func escapeEnd(b []byte, i int) bool {
	return i >= 1 && b[i-1] == '\\' || i >= 5 && b[i-5] == '\\' && b[i-4] == 'u'
}

// nextShapeIn returns the first token shape (an anchor of a shape kind,
// checked whole) in b whose token starts at or after from, or ok false.
func nextShapeIn[T text](m *matcher, b T, from int, url bool) (start, end int, ok bool) {
	tbl := m.tbl
	for i := max(from+m.minOff+winLen-1, blockLen-1); i < len(b); {
		h := block(b, i)
		if v := tbl[h]; v != 0 {
			i += int(v)
			continue
		}
		for _, ai := range m.cands[m.cidx[h]] {
			a := &m.anchors[ai]
			s := i - (winLen - 1) - a.off
			if s < from || !litAt(b, s, a.lit) {
				continue
			}
			if ts, te, ok := shapeAt(b, s, a.kind, url); ok {
				return ts, te, true
			}
		}
		i++
	}
	return 0, 0, false
}

// escapes reports whether b has a JSON escape that decodes to a byte of
// some literal, or to one of the characters that fold to one. A run of
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
			if r, ok = jsonscan.Hex4(b, i+1); !ok {
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
		case r < utf8.RuneSelf && m.byteSet[lower(byte(r))],
			r == kelvin && m.kelvin,
			r == longS && m.longS:
			return true
		}
	}
}

// lower maps an ASCII upper-case letter to lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
