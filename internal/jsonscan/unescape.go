package jsonscan

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the decoding of a string's escapes, the one place the
// packages that read JSON at the byte level decode them: one escape at a
// time (DecodeEscape, for a caller that folds or bounds what it decodes),
// into a caller's fixed buffer (Unescape) or appended to a slice
// (AppendUnescape). All decode as encoding/json and JavaScript's
// JSON.parse decode: a surrogate pair is one character and a lone
// surrogate becomes U+FFFD; every byte that is not part of an escape is
// copied as it is, UTF-8 or not.

// DecodeEscape decodes the escape that starts with the backslash at s[i]
// and returns its character and the index just past it; a surrogate pair
// written as two \u escapes counts as one escape. ok is false when s[i] is
// not a backslash or the escape is malformed or cut short (not one of
// JSON's, or \u without four hex digits); next is then i.
func DecodeEscape(s []byte, i int) (r rune, next int, ok bool) {
	if i < 0 || i+1 >= len(s) || s[i] != '\\' {
		return 0, i, false
	}
	e := s[i+1]
	if c := simpleEscapes[e]; c != 0 {
		return rune(c), i + 2, true
	}
	if e != 'u' {
		return 0, i, false
	}
	r, ok = Hex4(s, i+2)
	if !ok {
		return 0, i, false
	}
	next = i + 6
	if !utf16.IsSurrogate(r) {
		return r, next, true
	}
	if next+1 < len(s) && s[next] == '\\' && s[next+1] == 'u' {
		if lo, ok := Hex4(s, next+2); ok {
			if d := utf16.DecodeRune(r, lo); d != utf8.RuneError {
				return d, next + 6, true
			}
		}
	}
	return utf8.RuneError, next, true
}

// simpleEscapes maps the byte after the backslash of each escape but \u to
// the character it stands for; 0 for the others.
var simpleEscapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// Unescape decodes the body of a JSON string, s, into dst and returns the
// decoded length. ok is false when the decoding does not fit in dst or
// s holds a malformed escape; n is then how much was decoded.
func Unescape(dst, s []byte) (n int, ok bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if n >= len(dst) {
				return n, false
			}
			dst[n] = c
			n++
			i++
			continue
		}
		r, next, ok := DecodeEscape(s, i)
		if !ok || n+utf8.RuneLen(r) > len(dst) {
			return n, false
		}
		n += utf8.EncodeRune(dst[n:], r)
		i = next
	}
	return n, true
}

// AppendUnescape appends the decoding of the body of a JSON string, s, to
// dst and returns the extended slice. ok is false when s holds a malformed
// escape; the slice then ends with what was decoded before it.
func AppendUnescape(dst, s []byte) (_ []byte, ok bool) {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...), true
		}
		dst = append(dst, s[i:i+j]...)
		r, next, ok := DecodeEscape(s, i+j)
		if !ok {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
		i = next
	}
	return dst, true
}

// Hex4 decodes the four hex digits at s[i:], in either case; ok is false
// when there are fewer than four or one is not a hex digit.
func Hex4(s []byte, i int) (r rune, ok bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
