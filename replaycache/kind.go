package replaycache

// otherKind names the kinds past Options.MaxKinds and values too long to be
// a kind.
const otherKind = "other"

// maxKindLen bounds the length of a kind's name, in bytes.
const maxKindLen = 64

// kindTable interns message kinds as small integers, so that a session's
// kinds are a short sorted []uint16 and coverage is cheap to compute.
type kindTable struct {
	max    int
	names  []string
	index  map[string]uint16
	counts []int64 // client messages of each kind in cached sessions
}

func (t *kindTable) init(max int) {
	t.max = max
	t.index = make(map[string]uint16)
	t.add(otherKind)
}

func (t *kindTable) add(name string) uint16 {
	k := uint16(len(t.names))
	t.names = append(t.names, name)
	t.counts = append(t.counts, 0)
	t.index[name] = k
	return k
}

// intern returns the kind of name, adding it if there is room.
func (t *kindTable) intern(name []byte) uint16 {
	if k, ok := t.index[string(name)]; ok {
		return k
	}
	if len(name) > maxKindLen || len(t.names) >= t.max {
		return t.index[otherKind]
	}
	return t.add(string(name))
}

// internString is intern for a string.
func (t *kindTable) internString(name string) uint16 {
	if k, ok := t.index[name]; ok {
		return k
	}
	return t.intern([]byte(name))
}

// lookup returns the kind of name if it is known.
func (t *kindTable) lookup(name string) (uint16, bool) {
	k, ok := t.index[name]
	return k, ok
}

// topLevelField returns the value of the first of fields that the JSON
// object in b has at its top level: a string's bytes between the quotes (not
// unescaped), or a number's or literal's text. It scans at most limit bytes
// and never allocates; anything that is not a JSON object, or is cut before
// a field is found, has none.
func topLevelField(b []byte, fields []string, limit int) ([]byte, bool) {
	if len(b) > limit {
		b = b[:limit]
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	best := len(fields)
	var val []byte
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			break // the end of the object, or of the scan, or not JSON
		}
		end, esc := scanString(b, i)
		if end < 0 {
			break
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			break
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			break
		}
		rank := -1
		if !esc {
			for r, f := range fields[:best] {
				if string(key) == f {
					rank = r
					break
				}
			}
		}
		end = skipValue(b, i)
		if end <= i {
			break // cut, or no value
		}
		if rank >= 0 {
			switch v := b[i:end]; {
			case v[0] == '"':
				val = v[1 : len(v)-1]
			case v[0] == '{' || v[0] == '[':
				rank = -1 // not a kind
			default:
				val = v
			}
			if rank >= 0 {
				best = rank
				if best == 0 {
					break
				}
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ',' {
			break
		}
		i++
	}
	if best == len(fields) || len(val) == 0 {
		return nil, false
	}
	return val, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string that starts at b[i]
// (a quote) and whether it holds escapes; -1 if it is not terminated.
func scanString(b []byte, i int) (int, bool) {
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
	return -1, esc
}

// skipValue returns the index just past the value that starts at b[i]; -1
// if it does not end within b.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := scanString(b, j)
				if end < 0 {
					return -1
				}
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
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return -1 // a literal cut by the end of the scan
}
