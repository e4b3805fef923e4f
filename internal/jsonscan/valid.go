package jsonscan

// This file holds the functions of the package that validate: Valid,
// json.Valid's verdict at the speed of the scanning above, and ValidEnd,
// the same for one value, for a caller that must know a message is JSON as
// it scans it (package protocol's server skeletons, made of each of a load
// test's kilobyte messages as it loads them).

// maxDepth is encoding/json's bound on nesting: its scanner rejects the
// 10,001st array or object open at once.
const maxDepth = 10000

// plain marks the bytes a JSON string holds as they are: all but the
// quote, the backslash and the control characters below 0x20. Bytes of
// 0x80 and up are plain: encoding/json's scanner does not check UTF-8.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Valid reports whether b is one JSON value with only whitespace around
// it, exactly as json.Valid does (nesting deeper than 10,000 arrays and
// objects included), without allocating for nesting up to 64 deep.
func Valid(b []byte) bool {
	end := ValidEnd(b, SkipSpace(b, 0), 0)
	return end >= 0 && SkipSpace(b, end) == len(b)
}

// ValidEnd returns the index just past the valid JSON value that starts
// at b[i], or -1 when none does. depth is how many arrays and objects the
// value is nested in: they count toward the 10,000 json.Valid allows, so
// that a caller that walks the outer levels itself (0 at the top, 1 for a
// member of the top object) finds what json.Valid would.
func ValidEnd(b []byte, i, depth int) int {
	// open holds, for each array or object open, whether it is an object.
	var small [64]bool
	open := small[:0]
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth+len(open) >= maxDepth {
				return -1
			}
			obj := c == '{'
			open = append(open, obj)
			i = SkipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && obj || b[i] == ']' && !obj) {
				open = open[:len(open)-1]
				i++
				break
			}
			if obj {
				if i = member(b, i); i < 0 {
					return -1
				}
			}
			continue
		case c == '"':
			if i = stringEnd(b, i); i < 0 {
				return -1
			}
		case c == 't':
			if i = literal(b, i, "true"); i < 0 {
				return -1
			}
		case c == 'f':
			if i = literal(b, i, "false"); i < 0 {
				return -1
			}
		case c == 'n':
			if i = literal(b, i, "null"); i < 0 {
				return -1
			}
		default:
			if i = numberEnd(b, i); i < 0 {
				return -1
			}
		}
		// A value ended just before b[i]: close what it ends, then find
		// where the next value starts, if any.
		for {
			if len(open) == 0 {
				return i
			}
			if i = SkipSpace(b, i); i >= len(b) {
				return -1
			}
			obj := open[len(open)-1]
			if b[i] == '}' && obj || b[i] == ']' && !obj {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1
			}
			i = SkipSpace(b, i+1)
			if obj {
				if i = member(b, i); i < 0 {
					return -1
				}
			}
			break
		}
	}
}

// member checks the key and colon of an object member at b[i] and returns
// the index of its value, past any whitespace; -1 when they are not valid.
func member(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return SkipSpace(b, i+1)
}

// stringEnd returns the index just past the valid string that starts with
// the quote at b[i], or -1.
func stringEnd(b []byte, i int) int {
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := Hex4(b, i+2); !ok {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
}

// literal returns the index just past lit at b[i], or -1.
func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// numberEnd returns the index just past the valid number at b[i], or -1:
// an optional minus, an integer without leading zeros, an optional
// fraction and an optional exponent.
func numberEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// digits returns the index of the first byte at or after b[i] that is not
// a decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
