package redact

import (
	"net/http"
	"strings"
)

// Header returns a redacted copy of h and how many values were replaced. It
// never modifies h, and the copy shares no slices with it.
//
// Each value of a denied header (Options.Headers, and every name the word
// rule finds secret) becomes Marker, except that a header whose name ends
// in Authorization keeps its scheme: "Bearer abc" becomes "Bearer " +
// Marker. The entries of Sec-WebSocket-Protocol are redacted by
// Options.RedactSubprotocols, and the route in a Referer as Route does. In
// every other value token shapes are replaced. Header names are matched
// case-insensitively and copied as they are.
func (r *Redactor) Header(h http.Header) (http.Header, int) {
	if h == nil {
		return nil, 0
	}
	nv := 0
	for _, vs := range h {
		nv += len(vs)
	}
	all := make([]string, nv)
	out := make(http.Header, len(h))
	n := 0
	for k, vs := range h {
		if vs == nil {
			out[k] = nil
			continue
		}
		dst := all[:len(vs):len(vs)]
		all = all[len(vs):]
		switch {
		case r.denied(k):
			auth := len(k) >= len("authorization") && strings.EqualFold(k[len(k)-len("authorization"):], "authorization")
			for i, v := range vs {
				dst[i] = Marker
				if auth {
					if sp := strings.IndexByte(v, ' '); sp > 0 && isToken(v[:sp]) && strings.TrimSpace(v[sp:]) != "" {
						dst[i] = v[:sp+1] + Marker
					}
				}
				n++
			}
		case strings.EqualFold(k, "Sec-Websocket-Protocol"):
			red, c := r.subprotocols(vs, nil)
			copy(dst, red)
			n += c
		case strings.EqualFold(k, "Referer"):
			for i, v := range vs {
				var c int
				dst[i], c = r.Route(v)
				n += c
			}
		default:
			for i, v := range vs {
				var c int
				dst[i], c = replaceTokens(v, inText)
				n += c
			}
		}
		out[k] = dst
	}
	return out, n
}

// denied reports whether the values of header name are replaced whole.
func (r *Redactor) denied(name string) bool {
	for _, d := range r.headers {
		if strings.EqualFold(name, d) {
			return true
		}
	}
	return secretName(name)
}
