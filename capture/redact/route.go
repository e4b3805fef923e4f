package redact

import "strings"

// Route returns the redacted form of a request path and query, such as
// http.Request.RequestURI, and how many values were replaced. It also
// accepts an absolute URL (a Referer).
//
// The value of each query parameter named in Options.QueryParams, or whose
// name the word rule finds secret, becomes Marker. In the other parameters
// and in the path, token shapes (a JWT, "Bearer%20...") are replaced;
// everything else is kept byte for byte. Names are looked for after every
// &, ; and ? (servers differ on ;, and hash routers put a query in the
// fragment), but a replaced value runs to the next &, so no reading of the
// query recovers part of it. Names are percent-decoded before matching. A
// parameter without "=" or with an empty value has nothing to hide and is
// kept. A query in which some name cannot be percent-decoded could hide
// anything, so it is replaced as a whole with Marker and counted as one. A
// fragment, which a request never carries but a Referer might, is treated
// like a query, since OAuth puts tokens there.
//
// A route with nothing to redact is returned as is, without allocating.
func (r *Redactor) Route(s string) (string, int) {
	q := strings.IndexAny(s, "?#")
	if q < 0 {
		return replaceTokens(s, inURL)
	}
	path, query, frag, hasFrag := s[:q], "", "", false
	if s[q] == '?' {
		query, frag, hasFrag = strings.Cut(s[q+1:], "#")
	} else {
		frag, hasFrag = s[q+1:], true
	}
	rp, np := replaceTokens(path, inURL)
	rq, nq := r.params(query)
	rf, nf := r.params(frag)
	if np+nq+nf == 0 {
		return s, 0
	}
	var b strings.Builder
	b.Grow(len(s) + (nq+nf)*len(Marker))
	b.WriteString(rp)
	if s[q] == '?' {
		b.WriteByte('?')
		b.WriteString(rq)
	}
	if hasFrag {
		b.WriteByte('#')
		b.WriteString(rf)
	}
	return b.String(), np + nq + nf
}

// params redacts a query (or fragment) and returns it with the number of
// values replaced.
//
// Servers disagree on what separates parameters, so names are looked for
// after every &, ; and ?, but a replaced value runs to the next & whatever
// it holds: "token=a;b" loses "a;b", not just "a", since a server that does
// not split on ; sees the token "a;b".
func (r *Redactor) params(q string) (string, int) {
	var b []byte // nil until the first change
	n := 0
	// A token shape cannot span parameters: one look at the whole query
	// spares most of them a look of their own.
	shapes := hasShape(q, inURL)
	change := func(start int) {
		if b == nil {
			b = make([]byte, 0, len(q)+len(Marker))
			b = append(b, q[:start]...)
		}
	}
	for start := 0; start <= len(q); {
		end := strings.IndexByte(q[start:], '&')
		if end < 0 {
			end = len(q)
		} else {
			end += start
		}
		seg := q[start:end]
		cut := -1 // where in seg the replaced value starts
		// The name as a server that splits only on & sees it, then as
		// those that split on ; or ? see theirs.
		if name, _, hasValue := strings.Cut(seg, "="); hasValue && len(name)+1 < len(seg) && strings.ContainsAny(name, ";?") {
			match, ok := r.param(name)
			if !ok {
				return Marker, 1
			}
			if match {
				cut = len(name) + 1
			}
		}
		for sub := 0; cut < 0 && sub <= len(seg); {
			subEnd := strings.IndexAny(seg[sub:], ";?")
			if subEnd < 0 {
				subEnd = len(seg)
			} else {
				subEnd += sub
			}
			name, _, hasValue := strings.Cut(seg[sub:subEnd], "=")
			match, ok := r.param(name)
			if !ok {
				return Marker, 1
			}
			if match && hasValue && sub+len(name)+1 < len(seg) {
				cut = sub + len(name) + 1
				break
			}
			sub = subEnd + 1
		}
		switch {
		case cut >= 0:
			change(start)
			from := len(b)
			b = append(b, seg[:cut]...)
			b = append(b, Marker...)
			n++
			// What is left may still hold a token shape ("Basic dXNlcjpw
			// token=x"), or form one with the marker.
			if hasShape(b[from:], inURL) {
				out, c := appendTokens(nil, b[from:], inURL)
				b = append(b[:from], out...)
				n += c
			}
		case shapes && hasShape(seg, inURL):
			change(start)
			var c int
			b, c = appendTokens(b, []byte(seg), inURL)
			n += c
		case b != nil:
			b = append(b, seg...)
		}
		if end == len(q) {
			break
		}
		if b != nil {
			b = append(b, '&')
		}
		start = end + 1
	}
	if n == 0 {
		return q, 0
	}
	return string(b), n
}

// param reports whether a raw query parameter name is configured or
// secret by the word rule, and false for ok if it cannot be
// percent-decoded.
func (r *Redactor) param(raw string) (match, ok bool) {
	var buf [MaxNameLen]byte
	name := buf[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '%':
			if i+2 >= len(raw) {
				return false, false
			}
			hi, lo := unhex(raw[i+1]), unhex(raw[i+2])
			if hi < 0 || lo < 0 {
				return false, false
			}
			c = byte(hi<<4 | lo)
			i += 2
		case '+':
			c = ' '
		}
		name = append(name, c)
	}
	if secretName(name) {
		return true, true
	}
	for i, c := range name {
		name[i] = lower(c)
	}
	if r.paramNames[string(name)] {
		return true, true
	}
	// A bracketed name such as creds[token] or token[] matches by its parts.
	if strings.ContainsAny(string(name), "[]") {
		for part := range strings.FieldsFuncSeq(string(name), func(r rune) bool { return r == '[' || r == ']' }) {
			if r.paramNames[part] {
				return true, true
			}
		}
	}
	return false, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
