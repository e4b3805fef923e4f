package redact

import "encoding/base64"

// Token shapes: credentials recognised by how they look rather than by the
// name they are stored under, so that one found in free text, in a JSON
// string under an ordinary key, in a query parameter or header nobody
// configured, or in a close reason is replaced too. Only the token is
// replaced; the text around it stays readable.
//
//   - A JWT (JWS or JWE compact form): "eyJ" (the base64url of `{"`) and at
//     least 7 more base64url characters, a dot, at least 2 base64url
//     characters, a dot, and any number of base64url characters (empty for
//     alg "none"), then any further dot-separated parts (a JWE has five).
//   - A bearer token: the word Bearer in any case, one or more spaces, tabs,
//     + or %20, then at least 8 token68 characters (RFC 9110: letters,
//     digits, - . _ ~ + / and = padding; also % for a percent-encoded
//     one, and \/ for a JSON-escaped slash) that are not all lower-case
//     letters, which is how prose such as "the bearer instrument" differs
//     from a token.
//   - Basic credentials: the word Basic in any case, the same separators,
//     and base64 that decodes to printable text holding a colon (user:pass).
//
// The word must not follow a letter or digit. What is replaced is the token
// (the three JWT parts, the bearer token, the base64 credentials); "Bearer"
// and "Basic" stay, and so does the escape a token may start in (\u00e9yJ
// in JSON, %0eyJ in a URL), so that the text still decodes. A token spelled
// with escapes is not seen.

// In a URL, = separates a query parameter's name from its value, and a
// token's padding is percent-encoded: there a token stops at =.
const (
	inText = false
	inURL  = true
)

// minJWTHeader is the shortest JWT header, in base64url characters,
// "eyJ" included.
const minJWTHeader = 10

// minBearerToken is the shortest bearer token recognised, so that prose
// such as "bearer of" is left alone.
const minBearerToken = 8

// maxBasicDecode bounds the Basic credentials decoded to check them; longer
// ones are taken to be credentials without decoding.
const maxBasicDecode = 512

var b64url = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

var token68 = func() (t [256]bool) {
	t = b64url
	for _, c := range ".~+/%=" {
		t[c] = true
	}
	return t
}()

// run returns the end of the run of characters in set starting at i.
func run[T text](b T, i int, set *[256]bool) int {
	for i < len(b) && set[b[i]] {
		i++
	}
	return i
}

// jwtAt returns the end of a JWT starting at s, where b[s:] starts with
// "eyJ", or -1.
func jwtAt[T text](b T, s int) int {
	i := run(b, s, &b64url)
	if i-s < minJWTHeader || i >= len(b) || b[i] != '.' {
		return -1
	}
	j := run(b, i+1, &b64url)
	if j-(i+1) < 2 || j >= len(b) || b[j] != '.' {
		return -1
	}
	end := run(b, j+1, &b64url)
	for end+1 < len(b) && b[end] == '.' && b64url[b[end+1]] {
		end = run(b, end+1, &b64url)
	}
	return end
}

// schemeToken returns where the token after an authentication scheme
// word b[s:e] starts, or -1 when the word does not stand alone or no
// separator follows.
func schemeToken[T text](b T, s, e int) int {
	if s > 0 && charClass[b[s-1]] != clsSep {
		return -1
	}
	i := e
	for i < len(b) {
		switch {
		case b[i] == ' ' || b[i] == '\t' || b[i] == '+':
			i++
		case b[i] == '%' && i+2 < len(b) && b[i+1] == '2' && b[i+2] == '0':
			i += 3
		default:
			if i == e {
				return -1
			}
			return i
		}
	}
	return -1
}

// token68End returns the end of the token68 run starting at i, with
// JSON's \/ escape. Outside a URL it takes = anywhere, not only as padding
// at the end, so that nothing of a token is left glued to the marker.
func token68End[T text](b T, i int, url bool) int {
	for i < len(b) {
		switch {
		case token68[b[i]] && !(url && b[i] == '='):
			i++
		case b[i] == '\\' && i+1 < len(b) && b[i+1] == '/':
			i += 2
		default:
			return i
		}
	}
	return i
}

// bearerAt returns the token after "bearer" at b[s:s+6], or ok false.
func bearerAt[T text](b T, s int, url bool) (start, end int, ok bool) {
	t := schemeToken(b, s, s+len("bearer"))
	if t < 0 || b[t] == '=' {
		return 0, 0, false
	}
	e := token68End(b, t, url)
	n, lower := 0, true
	for i := t; i < e; i++ {
		c := b[i]
		if c != '=' {
			n++
		}
		if charClass[c] != clsLower {
			lower = false
		}
	}
	if n < minBearerToken || lower || isMarker(b[t:e]) {
		return 0, 0, false
	}
	return t, e, true
}

// isMarker reports whether a token is Marker, with any = padding: a
// replaced token is not a token again.
func isMarker[T text](tok T) bool {
	for len(tok) > 0 && tok[len(tok)-1] == '=' {
		tok = tok[:len(tok)-1]
	}
	return len(tok) == len(Marker) && string(tok) == Marker
}

// basicAt returns the credentials after "basic" at b[s:s+5], or ok false.
func basicAt[T text](b T, s int, url bool) (start, end int, ok bool) {
	t := schemeToken(b, s, s+len("basic"))
	if t < 0 || b[t] == '=' {
		return 0, 0, false
	}
	e := token68End(b, t, url)
	if e-t < 4 {
		return 0, 0, false
	}
	if e-t > maxBasicDecode {
		return t, e, true
	}
	// Undo JSON's \/ and percent-encoding, then decode.
	var enc [maxBasicDecode]byte
	n := 0
	for i := t; i < e; i++ {
		c := b[i]
		switch {
		case c == '\\':
			i++
			c = b[i]
		case c == '%' && i+2 < e && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0:
			c = byte(unhex(b[i+1])<<4 | unhex(b[i+2]))
			i += 2
		}
		enc[n] = c
		n++
	}
	src := enc[:n]
	for len(src) > 0 && src[len(src)-1] == '=' {
		src = src[:len(src)-1]
	}
	var dec [maxBasicDecode]byte
	m, err := base64.RawStdEncoding.Decode(dec[:], src)
	if err != nil {
		return 0, 0, false
	}
	colon := false
	for _, c := range dec[:m] {
		if c < 0x20 || c >= 0x7f {
			return 0, 0, false
		}
		colon = colon || c == ':'
	}
	if !colon {
		return 0, 0, false
	}
	return t, e, true
}

// shapeAt returns the token of the shape whose anchor kind is kind and
// whose word (or "eyJ") starts at s, or ok false. url says b is part of a
// URL.
func shapeAt[T text](b T, s int, kind uint8, url bool) (start, end int, ok bool) {
	switch kind {
	case kindJWT:
		if s+3 > len(b) || b[s] != 'e' || b[s+1] != 'y' || b[s+2] != 'J' {
			return 0, 0, false
		}
		if e := jwtAt(b, s); e > 0 {
			return s, e, true
		}
	case kindBearer:
		return bearerAt(b, s, url)
	case kindBasic:
		return basicAt(b, s, url)
	}
	return 0, 0, false
}

// shapes finds token shapes; it is built once, as the shapes do not depend
// on Options.
var shapes = newMatcher(shapeAnchors())

func shapeAnchors() []anchor {
	return []anchor{
		{lit: []byte("eyj"), kind: kindJWT},
		{lit: []byte("bearer"), kind: kindBearer},
		{lit: []byte("basic"), kind: kindBasic},
	}
}

// nextToken returns the first token shape in b that starts at or after
// from, or ok false. url says b is part of a URL.
func nextToken[T text](b T, from int, url bool) (start, end int, ok bool) {
	return nextShapeIn(shapes, b, from, url)
}

// appendTokens appends b to dst with every token shape replaced with Marker
// and returns the result and the number replaced. With none it returns
// dst unchanged and 0, so the caller can tell.
func appendTokens(dst, b []byte, url bool) ([]byte, int) {
	n, last := 0, 0
	for from := 0; ; {
		s, e, ok := nextToken(b, from, url)
		if !ok {
			break
		}
		// A token may start inside a percent-escape (%0eyJ...): cut after
		// the escape, so that the text still decodes.
		switch {
		case s >= 1 && b[s-1] == '%' && s+1 < e && unhex(b[s]) >= 0 && unhex(b[s+1]) >= 0:
			s += 2
		case s >= 2 && b[s-2] == '%' && unhex(b[s-1]) >= 0 && unhex(b[s]) >= 0:
			s++
		}
		if s >= e {
			from = e
			continue
		}
		dst = append(dst, b[last:s]...)
		dst = append(dst, Marker...)
		last, from = e, e
		n++
	}
	if n == 0 {
		return dst, 0
	}
	return append(dst, b[last:]...), n
}

// hasShape reports whether s holds a token shape.
func hasShape[T text](s T, url bool) bool {
	if len(s) < minShapeLen {
		return false
	}
	_, _, ok := nextToken(s, 0, url)
	return ok
}

// replaceTokens is appendTokens for a string; it returns s itself, without
// allocating, when it holds no token.
func replaceTokens(s string, url bool) (string, int) {
	if !hasShape(s, url) {
		return s, 0
	}
	out, n := appendTokens(nil, []byte(s), url)
	return string(out), n
}

// minShapeLen is the length of the shortest token shape with its word:
// "Basic " and four base64 characters.
const minShapeLen = len("basic ") + 4
