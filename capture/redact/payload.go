package redact

import (
	"bytes"
	"unicode/utf8"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// maxEmbed is how many levels of JSON documents embedded in JSON strings
// are redacted field by field; a deeper one that may hold a key name is
// replaced with Marker as a whole.
const maxEmbed = 4

// Payload appends to dst the redacted form of src, a text message, and
// returns the extended buffer and what was done. dst and src must not
// overlap. truncated says the tap cut the message short.
//
// A payload in which no secret key name and no token shape can occur, the
// common case, is appended unchanged after a single pass over it, without
// allocating. One that may is parsed as JSON: the value of every secret key
// (configured, or found by the word rule) is replaced with Blank (Marker as
// a JSON string), each token shape inside another string is replaced with
// Marker, and everything else is kept byte for byte, so valid JSON stays
// valid. If the payload is not valid JSON or nests deeper than
// Options.MaxDepth, only its token shapes are replaced, unless it may hold
// a secret key name: then, as when it is truncated, there is no telling
// where a secret ends, so the whole payload is replaced with Blank and
// Result.Blanked is set.
//
// A string value that may contain a key name and holds a JSON object or
// array (a protocol that double-encodes its messages) is redacted the same
// way and put back as a string.
func (r *Redactor) Payload(dst, src []byte, truncated bool) ([]byte, Result) {
	if truncated {
		if !r.pre.maybe(src) {
			return append(dst, src...), Result{}
		}
		return append(dst, Blank...), Result{Blanked: true, Reason: ReasonTruncated}
	}
	var ns names
	k := r.pre.kinds(src, hitName|hitShape, &ns)
	if k == 0 {
		return append(dst, src...), Result{}
	}
	if n := framedJSON(src); n > 0 {
		// A Socket.IO packet: its prefix is kept, the JSON it frames is
		// redacted field by field (the pre-check looked again at it
		// alone), so that the protocol's handshake and events still
		// replay.
		var fns names
		start := len(dst)
		dst = append(dst, src[:n]...)
		if k := r.pre.kinds(src[n:], hitName|hitShape, &fns); k != 0 {
			out, res := r.json(dst, src[n:], 0, k, fns)
			if res.Blanked {
				out = append(out[:start], Blank...) // blanked whole, as any text
			}
			return out, res
		}
		return append(dst, src[n:]...), Result{}
	}
	return r.json(dst, src, 0, k, ns)
}

// framedJSON returns the length of a Socket.IO packet's prefix before the
// JSON object or array it frames, or 0: the Engine.IO and Socket.IO packet
// types ("42", "40"), a binary packet's attachment count ("451-"), a
// namespace ("/admin,") and an ack id ("4217"), as in
// `42/admin,17["update",{...}]`. A JSON document never starts with a digit
// followed by a bracket, so no JSON message is taken for one.
func framedJSON(src []byte) int {
	digits := func(i int) int {
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		return i
	}
	i := digits(0) // the packet types, then an attachment count or an ack id
	if i == 0 {
		return 0
	}
	if j := i; j < len(src) && src[j] == '-' {
		i = j + 1 // "451-": the digits before the dash counted attachments
	}
	if i < len(src) && src[i] == '/' {
		k := bytes.IndexByte(src[i:], ',')
		if k < 0 {
			return 0
		}
		i += k + 1
	}
	i = digits(i)
	if i < len(src) && (src[i] == '{' || src[i] == '[') {
		return i
	}
	return 0
}

// Clean reports whether a text payload, or with binary a binary one, can
// pass unchanged: no secret key name and no token shape can occur in it.
// Payload and Binary then only copy it; a caller that can use src as it is
// may skip them.
func (r *Redactor) Clean(src []byte, binary bool) bool {
	if binary && r.keepBinary {
		return true
	}
	return !r.pre.maybe(src)
}

// Binary appends to dst the redacted form of src, a binary message, and
// returns the extended buffer and what was done. dst and src must not
// overlap. Unless Options.KeepBinary is set, a payload that may contain a
// secret key name or holds a token shape is replaced with Blank; others are
// appended unchanged.
func (r *Redactor) Binary(dst, src []byte) ([]byte, Result) {
	if r.keepBinary || !r.pre.maybe(src) {
		return append(dst, src...), Result{}
	}
	return append(dst, Blank...), Result{Blanked: true, Reason: ReasonBinary}
}

// json redacts src as a JSON document, or, if it is not one, as text. k
// and ns say what the pre-check found in src: only keys holding a name it
// found are looked up, and without hitShape no token shape is looked for.
func (r *Redactor) json(dst, src []byte, embed int, k uint8, ns names) ([]byte, Result) {
	if r.pathSegments > 0 {
		ns.all = true // a path's first segments are not anchors
	}
	p := parser{r: r, src: src, out: dst, embed: embed, tokS: -1,
		names: k&hitName != 0, keyNames: ns, tokDone: k&hitShape == 0}
	if !p.document() {
		if p.names {
			return append(dst, Blank...), Result{Blanked: true, Reason: p.reason}
		}
		out, n := appendTokens(dst, src, inText)
		if n == 0 {
			return append(dst, src...), Result{}
		}
		return out, Result{Tokens: n}
	}
	if p.fields+p.tokens == 0 {
		return append(dst, src...), Result{}
	}
	return append(p.out, src[p.last:]...), Result{Fields: p.fields, Tokens: p.tokens}
}

// parser validates a JSON document (RFC 8259, as json.Valid does) and
// splices Blank over the values of matching keys and Marker over token
// shapes. Output goes to out from the first splice on; src[last:] is what
// is still to be copied.
type parser struct {
	r      *Redactor
	src    []byte
	i      int
	depth  int
	embed  int
	out    []byte
	last   int
	fields int
	tokens int
	reason Reason
	// The next token shape in src at or after tokFrom, found lazily, one
	// pass over src for the whole document: [tokS, tokE), or tokS -1 for
	// not looked for yet; tokDone once there is none.
	tokS, tokE, tokFrom int
	tokDone             bool  // no token shape from tokFrom on
	names               bool  // a key name may occur: look keys up
	keyNames            names // where names were found
	key                 [MaxNameLen]byte
	word                [maxWordKey]byte
}

// maxWordKey bounds the decoded length of a key with escapes or non-ASCII
// characters that the word rule reads; a longer one is taken to be secret.
const maxWordKey = 512

func (p *parser) fail(r Reason) bool {
	p.reason = r
	return false
}

func (p *parser) document() bool {
	if !p.value(0, false) {
		return false
	}
	p.ws()
	if p.i != len(p.src) {
		return p.fail(ReasonInvalid)
	}
	return true
}

func (p *parser) ws() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses one value. state is the set of path states for the keys of
// an object that is this value or, through arrays, inside it. skip means
// the value is being replaced anyway, so matches inside it do not count.
func (p *parser) value(state uint64, skip bool) bool {
	p.ws()
	if p.i >= len(p.src) {
		return p.fail(ReasonInvalid)
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(state, skip)
	case c == '[':
		return p.array(state, skip)
	case c == '"':
		start := p.i
		if !p.string() {
			return false
		}
		if !skip && !p.embedded(start, p.i) {
			p.shapes(start, p.i)
		}
		return true
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return p.fail(ReasonInvalid)
}

func (p *parser) object(state uint64, skip bool) bool {
	if p.depth++; p.depth > p.r.maxDepth {
		return p.fail(ReasonTooDeep)
	}
	p.i++
	p.ws()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		p.depth--
		return true
	}
	for {
		p.ws()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return p.fail(ReasonInvalid)
		}
		ks := p.i
		if !p.string() {
			return false
		}
		redact, child := false, uint64(0)
		if !skip && p.names && p.keyNames.in(ks, p.i) {
			k, secret := p.lookup(p.src[ks+1 : p.i-1])
			redact = secret
			if k != nil {
				redact = redact || k.plain || state&k.final != 0
				child = (state&k.next)<<1 | k.first
			}
		}
		if !skip {
			p.shapes(ks, p.i)
		}
		p.ws()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return p.fail(ReasonInvalid)
		}
		p.i++
		p.ws()
		vs := p.i
		if !p.value(child, skip || redact) {
			return false
		}
		if redact {
			p.splice(vs, p.i, Blank)
			p.fields++
		}
		p.ws()
		if p.i >= len(p.src) {
			return p.fail(ReasonInvalid)
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.depth--
			return true
		default:
			return p.fail(ReasonInvalid)
		}
	}
}

func (p *parser) array(state uint64, skip bool) bool {
	if p.depth++; p.depth > p.r.maxDepth {
		return p.fail(ReasonTooDeep)
	}
	p.i++
	p.ws()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		p.depth--
		return true
	}
	for {
		if !p.value(state, skip) {
			return false
		}
		p.ws()
		if p.i >= len(p.src) {
			return p.fail(ReasonInvalid)
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.depth--
			return true
		default:
			return p.fail(ReasonInvalid)
		}
	}
}

// strPlain marks the bytes that stand for themselves inside a JSON string.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string parses a string starting at the opening quote.
func (p *parser) string() bool {
	src := p.src
	i := p.i + 1
	for {
		for i < len(src) && strPlain[src[i]] {
			i++
		}
		if i >= len(src) {
			return p.fail(ReasonInvalid)
		}
		switch src[i] {
		case '"':
			p.i = i + 1
			return true
		case '\\':
			if i+1 >= len(src) {
				return p.fail(ReasonInvalid)
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) {
					return p.fail(ReasonInvalid)
				}
				if _, ok := jsonscan.Hex4(src, i+2); !ok {
					return p.fail(ReasonInvalid)
				}
				i += 6
			default:
				return p.fail(ReasonInvalid)
			}
		default: // a control character
			return p.fail(ReasonInvalid)
		}
	}
}

func (p *parser) literal(lit string) bool {
	if !bytes.HasPrefix(p.src[p.i:], []byte(lit)) {
		return p.fail(ReasonInvalid)
	}
	p.i += len(lit)
	return true
}

func (p *parser) number() bool {
	src, i := p.src, p.i
	digits := func() bool {
		s := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		return i > s
	}
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case !digits():
		return p.fail(ReasonInvalid)
	}
	if i < len(src) && src[i] == '.' {
		i++
		if !digits() {
			return p.fail(ReasonInvalid)
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if !digits() {
			return p.fail(ReasonInvalid)
		}
	}
	p.i = i
	return true
}

// splice replaces src[start:end] with v in the output.
func (p *parser) splice(start, end int, v string) {
	p.out = append(p.out, p.src[p.last:start]...)
	p.out = append(p.out, v...)
	p.last = end
}

// shapes splices Marker over the token shapes inside the string
// src[start:end], quotes included.
func (p *parser) shapes(start, end int) {
	if p.tokDone || end-start-2 < minShapeLen {
		return
	}
	for {
		if p.tokS < start {
			s, e, ok := nextToken(p.src, max(start, p.tokFrom), inText)
			if !ok {
				p.tokDone = true
				return
			}
			p.tokS, p.tokE = s, e
		}
		if p.tokS >= end {
			return // it is in a later string
		}
		// A token cannot hold a quote, so it ends inside the string, but
		// it may start inside an escape (\u123e then yJ...): splice from
		// past the escape, so that the string stays valid.
		s, e := p.escaped(start, p.tokS), min(p.tokE, end-1)
		if s < e {
			p.splice(s, e, Marker)
			p.tokens++
		}
		p.tokFrom, p.tokS = p.tokE, -1
	}
}

// escaped returns i, or, if src[i] is inside an escape of the string that
// starts at src[start], where that escape ends.
func (p *parser) escaped(start, i int) int {
	for j := start + 1; j < i; {
		if p.src[j] != '\\' {
			j++
			continue
		}
		n := 2
		if p.src[j+1] == 'u' {
			n = 6
		}
		if j+n > i {
			return j + n
		}
		j += n
	}
	return i
}

// lookup returns the rule for a key, given the raw bytes between its
// quotes, or nil, and whether the word rule finds the key secret.
func (p *parser) lookup(raw []byte) (rule *keyRule, secret bool) {
	plain := true // no escapes and all ASCII: the key is raw
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if p.r.words {
		if plain {
			secret = secretName(raw)
		} else {
			w, ok := decodeKeyCase(p.word[:0], raw)
			secret = !ok || secretName(w)
		}
	}
	if len(p.r.keys) == 0 || plain && (len(raw) == 0 || len(raw) > p.r.maxKeyLen ||
		!p.r.filter.has(len(raw), raw[0]|0x20, raw[len(raw)-1]|0x20)) {
		return nil, secret
	}
	if len(raw) > 6*p.r.maxKeyLen {
		return nil, secret // even all escapes could not decode to a name this short
	}
	k, ok := decodeKey(p.key[:0:p.r.maxKeyLen], raw)
	if !ok {
		return nil, secret
	}
	return p.r.keys[string(k)], secret
}

// keyFilter is a Bloom-like filter on a name's length and first and last
// bytes, which spares most keys that are not names the decoding and map
// lookup.
type keyFilter [64]uint64

func keyFilterBit(n int, first, last byte) uint {
	return (uint(n)*131 + uint(first)*31 + uint(last)) % (64 * 64)
}

func (f *keyFilter) add(name string) {
	b := keyFilterBit(len(name), name[0]|0x20, name[len(name)-1]|0x20)
	f[b/64] |= 1 << (b % 64)
}

func (f *keyFilter) has(n int, first, last byte) bool {
	b := keyFilterBit(n, first, last)
	return f[b/64]&(1<<(b%64)) != 0
}

// embedded redacts a string value src[start:end] (quotes included) that
// holds a JSON object or array in which a key name or a token shape may
// occur, and reports whether it replaced the string.
func (p *parser) embedded(start, end int) bool {
	raw := p.src[start+1 : end-1]
	if bytes.IndexByte(raw, '{') < 0 && bytes.IndexByte(raw, '[') < 0 {
		return false
	}
	if !p.r.pre.maybe(raw) {
		return false
	}
	doc, _ := jsonscan.AppendUnescape(nil, raw)
	if t := bytes.TrimLeft(doc, " \t\n\r"); len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return false // text that merely mentions a name: see the package doc
	}
	var ns names
	k := p.r.pre.kinds(doc, hitName|hitShape, &ns)
	if k == 0 {
		return false
	}
	if p.embed+1 >= maxEmbed {
		p.splice(start, end, Blank)
		p.fields++
		return true
	}
	inner, res := p.r.json(nil, doc, p.embed+1, k, ns)
	switch {
	case res.Blanked:
		p.splice(start, end, Blank)
		p.fields++
	case res.Fields+res.Tokens > 0:
		p.splice(start, end, string(appendQuoted(nil, inner)))
		p.fields += res.Fields
		p.tokens += res.Tokens
	default:
		return false
	}
	return true
}

// decodeKey appends to dst the folded form of a JSON key given the raw
// bytes between its quotes, which are valid JSON string content. It fails
// if the result would not fit in dst's capacity.
func decodeKey(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		var r rune
		switch {
		case c == '\\':
			r, i, _ = jsonscan.DecodeEscape(raw, i)
		case c < utf8.RuneSelf:
			r = rune(c)
			i++
		default:
			var n int
			r, n = utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				// Not UTF-8: keep the byte, which cannot spell a name.
				if len(dst) == cap(dst) {
					return dst, false
				}
				dst = append(dst, c)
				i++
				continue
			}
			i += n
		}
		r = foldRune(r)
		if len(dst)+utf8.RuneLen(r) > cap(dst) {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst, true
}

// decodeKeyCase appends to dst the decoded form of a JSON key given the raw
// bytes between its quotes, which are valid JSON string content, keeping
// its case for the word rule: the Kelvin sign becomes k and the long s s.
// It fails if the result would not fit in dst's capacity.
func decodeKeyCase(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		var r rune
		switch {
		case c == '\\':
			r, i, _ = jsonscan.DecodeEscape(raw, i)
		case c < utf8.RuneSelf:
			r = rune(c)
			i++
		default:
			var n int
			r, n = utf8.DecodeRune(raw[i:])
			i += n
		}
		switch r {
		case kelvin:
			r = 'k'
		case longS:
			r = 's'
		}
		if len(dst)+utf8.RuneLen(r) > cap(dst) {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst, true
}

// foldKey appends to dst the folded form of a name as configured.
func foldKey(dst, name []byte) []byte {
	for _, r := range string(name) {
		dst = utf8.AppendRune(dst, foldRune(r))
	}
	return dst
}

// foldRune maps ASCII letters to lower case and the two non-ASCII letters
// that fold to ASCII ones to those.
func foldRune(r rune) rune {
	switch {
	case 'A' <= r && r <= 'Z':
		return r + 'a' - 'A'
	case r == kelvin:
		return 'k'
	case r == longS:
		return 's'
	}
	return r
}

// appendQuoted appends s as a JSON string, escaping only what must be.
func appendQuoted(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
