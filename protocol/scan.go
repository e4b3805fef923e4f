package protocol

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the byte-level JSON scanning the profiles share. Every
// function here takes JSON that json.Valid has accepted, yet still checks
// its bounds: a bug must cost a wrong verdict, never a panic.

// maxEscaped bounds the strings with escapes that are decoded, in bytes of
// their JSON text. A decoded identifier of maxIdentLen bytes takes at most
// six times as many (each byte of "\u0064" is one decoded byte).
const maxEscaped = 6 * maxIdentLen

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts with the
// quote at b[i], and whether it holds escapes; len(b) if it is not closed.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return len(b), esc
}

// literalEnd returns the index just past the number or literal at b[i].
func literalEnd(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
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
	return literalEnd(b, i)
}

// stringBody returns the text between the quotes of the JSON string v, and
// whether v is a string.
func stringBody(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// unescape decodes the body of a JSON string into dst, as encoding/json and
// JavaScript's JSON.parse do (a lone surrogate becomes U+FFFD), and returns
// the decoded length; ok is false when it does not fit or is malformed.
func unescape(dst, s []byte) (n int, ok bool) {
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

// decoded returns the text of the JSON string body s: s itself when it has
// no escapes, else its decoding in buf; ok is false when that does not fit.
func decoded(buf, s []byte, esc bool) ([]byte, bool) {
	if !esc {
		return s, true
	}
	n, ok := unescape(buf, s)
	return buf[:n], ok
}

// keyMatch says how a member's key matches a wanted name.
type keyMatch uint8

const (
	keyNone keyMatch = iota
	// keyExact: the key is the name, spelled plainly.
	keyExact
	// keyLoose: the key is the name only to some parsers: spelled with
	// escapes, in another case (Go's encoding/json folds case when it
	// fills a struct), or cut at an escaped NUL (C parsers end strings
	// there).
	keyLoose
)

// matchKey compares the decoded key of a member with name; plain says the
// key was written without escapes.
func matchKey(key []byte, plain bool, name string) keyMatch {
	if plain && string(key) == name {
		return keyExact
	}
	if foldsTo(key, name) {
		return keyLoose
	}
	if i := bytes.IndexByte(key, 0); i >= 0 && foldsTo(key[:i], name) {
		return keyLoose
	}
	return keyNone
}

// foldsTo reports whether k equals name under Unicode case folding.
func foldsTo(k []byte, name string) bool {
	if len(k) == len(name) {
		same := true
		for i := 0; i < len(k) && same; i++ {
			a, b := k[i], name[i]
			same = a == b || (a|0x20 == b|0x20 && a|0x20 >= 'a' && a|0x20 <= 'z')
		}
		if same {
			return true
		}
	}
	if isASCII(k) && isASCII(name) {
		return false // folding ASCII is what the loop above did
	}
	var nb [64]byte
	if len(name) > len(nb) {
		return bytes.EqualFold(k, []byte(name))
	}
	return bytes.EqualFold(k, nb[:copy(nb[:], name)])
}

func isASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// fields finds the members of the JSON object b (valid JSON) named by
// names, and stores the text of each value in vals[k] (a string with its
// quotes). ok is false when b is not an object. ambiguous reports a name
// that more than one member gives, or that a member gives only loosely (see
// keyLoose): parsers differ on which such member they read (JSON.parse keeps
// the last duplicate, some keep the first; encoding/json folds case), so a
// judge must not rely on either.
func fields(b []byte, names []string, vals [][]byte) (ok, ambiguous bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false, false
	}
	var buf [maxEscaped]byte
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		end, esc := stringEnd(b, i)
		key, decodable := decoded(buf[:], b[i+1:max(i+1, end-1)], esc)
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return true, true
		}
		i = skipSpace(b, i+1)
		vEnd := valueEnd(b, i)
		for k, name := range names {
			if !decodable {
				break // longer than any name
			}
			switch matchKey(key, !esc, name) {
			case keyExact:
				if vals[k] != nil {
					ambiguous = true
				}
				vals[k] = b[i:vEnd]
			case keyLoose:
				ambiguous = true
			}
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) || b[i] != ',' {
			break
		}
		i = skipSpace(b, i+1)
	}
	return true, ambiguous
}

// isNull reports whether the JSON value v is absent or null.
func isNull(v []byte) bool {
	return v == nil || string(v) == "null"
}
