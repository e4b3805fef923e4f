package redact

import (
	"net/http"
	"strings"
)

// Header returns a redacted copy of h and how many values were replaced. It
// never modifies h, and the copy shares no slices with it.
//
// Each value of a denied header (Options.Headers) becomes Marker, except
// that Authorization and Proxy-Authorization keep their scheme: "Bearer
// abc" becomes "Bearer " + Marker. With Options.RedactSubprotocols, each
// protocol in Sec-WebSocket-Protocol not kept by Options.Subprotocols
// becomes Marker. The query of a Referer URL is redacted as Route does.
// Header names are matched case-insensitively and copied as they are.
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
			auth := strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Proxy-Authorization")
			for i, v := range vs {
				dst[i] = Marker
				if auth {
					if sp := strings.IndexByte(v, ' '); sp > 0 && isToken(v[:sp]) && strings.TrimSpace(v[sp:]) != "" {
						dst[i] = v[:sp+1] + Marker
					}
				}
				n++
			}
		case r.redactProto && strings.EqualFold(k, "Sec-Websocket-Protocol"):
			for i, v := range vs {
				var c int
				dst[i], c = r.subprotocols(v)
				n += c
			}
		case strings.EqualFold(k, "Referer"):
			for i, v := range vs {
				var c int
				dst[i], c = r.Route(v)
				n += c
			}
		default:
			copy(dst, vs)
		}
		out[k] = dst
	}
	return out, n
}

func (r *Redactor) denied(name string) bool {
	for _, d := range r.headers {
		if strings.EqualFold(name, d) {
			return true
		}
	}
	return false
}

// Subprotocol returns the redacted form of a subprotocol name or list, such
// as the one the server accepted, by the rule Header applies to
// Sec-WebSocket-Protocol. Without Options.RedactSubprotocols it returns s.
func (r *Redactor) Subprotocol(s string) string {
	if !r.redactProto {
		return s
	}
	s, _ = r.subprotocols(s)
	return s
}

// subprotocols replaces each element of a comma-separated list that is not
// a kept protocol with Marker, keeping the separators and spaces as they
// are.
func (r *Redactor) subprotocols(v string) (string, int) {
	var b strings.Builder
	n := 0
	for rest := v; ; {
		elem, tail, more := strings.Cut(rest, ",")
		lead := len(elem) - len(strings.TrimLeft(elem, " \t"))
		name := strings.TrimRight(elem[lead:], " \t")
		if name != "" && !r.keepProto[name] {
			b.WriteString(elem[:lead])
			b.WriteString(Marker)
			b.WriteString(elem[lead+len(name):])
			n++
		} else {
			b.WriteString(elem)
		}
		if !more {
			break
		}
		b.WriteByte(',')
		rest = tail
	}
	if n == 0 {
		return v, 0
	}
	return b.String(), n
}
