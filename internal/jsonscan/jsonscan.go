// Package jsonscan finds its way through JSON text at the byte level,
// without decoding it into values or allocating: where whitespace, a
// string, a literal or a whole value ends, the body of a string, and that
// body with its escapes decoded into a caller's buffer. It is the scanning
// that package protocol's judges and package replayer's field paths share.
//
// It does not validate: every function expects text that json.Valid has
// accepted, and still checks its bounds, so that a caller's mistake or a
// message that is not JSON after all costs a wrong index, never a panic.
// Which keys a caller looks for, and how loosely it matches them (case
// folding, duplicates, keys cut at an escaped NUL), is the caller's.
//
// Indexes go in and come out: a function takes the text b and the index i
// where something starts, and returns the index just past it, at most
// len(b) (an i already past the end comes back as it is).
package jsonscan

import (
	"unicode/utf16"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after b[i] that is
// not JSON whitespace (space, tab, line feed, carriage return), or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// StringEnd returns the index just past the string that starts with the
// quote at b[i], and whether it holds escapes; len(b) if it is not closed.
func StringEnd(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return len(b), escaped
}

// LiteralEnd returns the index just past the number or literal (true,
// false, null) at b[i]: the first delimiter or whitespace after it.
func LiteralEnd(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// ValueEnd returns the index just past the value that starts at b[i]: a
// string, an object or array with everything nested in it, or a literal.
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := StringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := StringEnd(b, j)
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	return LiteralEnd(b, i)
}

// StringBody returns the text between the quotes of the JSON string v, and
// whether v is a string.
func StringBody(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// Unescape decodes the body of a JSON string, s, into dst, its escapes as
// encoding/json and JavaScript's JSON.parse decode them (a lone surrogate
// becomes U+FFFD), every other byte copied as it is, and returns the
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
		if i+1 >= len(s) {
			return n, false
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			c = e
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				return n, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				hi := r
				r = utf8.RuneError
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if lo, ok := hex4(s, i+2); ok {
						if d := utf16.DecodeRune(hi, lo); d != utf8.RuneError {
							r = d
							i += 6
						}
					}
				}
			}
			if n+utf8.RuneLen(r) > len(dst) {
				return n, false
			}
			n += utf8.EncodeRune(dst[n:], r)
			continue
		default:
			return n, false
		}
		if n >= len(dst) {
			return n, false
		}
		dst[n] = c
		n++
		i += 2
	}
	return n, true
}

// hex4 decodes the four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
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
