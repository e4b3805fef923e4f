// Package jsonscan finds its way through JSON text at the byte level,
// without decoding it into values or allocating: where whitespace, a
// string, a literal or a whole value ends, the body of a string, and that
// body with its escapes decoded into a caller's buffer or appended to a
// slice. It is the scanning that package protocol's judges and package
// replayer's field paths share, and the one decoder of string escapes,
// which package redact uses too.
//
// Valid and ValidEnd validate, as json.Valid does and faster. The rest does
// not: every other function expects text that Valid has accepted, and
// still checks its bounds, so that a caller's mistake or a
// message that is not JSON after all costs a wrong index, never a panic.
// Which keys a caller looks for, and how loosely it matches them (case
// folding, duplicates, keys cut at an escaped NUL), is the caller's.
//
// Indexes go in and come out: a function takes the text b and the index i
// where something starts, and returns the index just past it, at most
// len(b) (an i already past the end comes back as it is).
package jsonscan

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
