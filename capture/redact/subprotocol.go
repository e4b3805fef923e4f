package redact

import (
	"fmt"
	"strings"
)

// SubprotocolRule says which subprotocol entries are replaced with Marker:
// those of the Sec-WebSocket-Protocol request header, and the subprotocol
// the server accepted. Names listed in Options.Subprotocols are always
// kept.
type SubprotocolRule uint8

const (
	// SubprotocolTokens, the default, replaces the entries that look like
	// credentials and keeps protocol names, which the replayer needs. An
	// entry is taken for a credential when:
	//   - it holds a token shape (a JWT, as in "eyJ..." or
	//     "bearer.eyJ...");
	//   - it looks random: at least 20 characters in which letters and
	//     digits alternate at least 5 times and once every 6 characters,
	//     or the case of letters changes at least 6 times and once every 3
	//     characters (hex, base64url, a UUID, a Kubernetes
	//     base64url.bearer.authorization.k8s.io.<token>), or it is longer
	//     than 64 characters;
	//   - it follows an entry named like a credential by the word rule
	//     (the browser convention ["access_token", "<token>"], or
	//     "Authorization", "Bearer", "jwt", "auth" before the token) and is
	//     not named like one itself.
	// Protocol names stay: graphql-transport-ws, graphql-ws, mqtt,
	// wamp.2.json, v10.stomp, sync.v3, actioncable-v1-json,
	// v4.channel.k8s.io, subscriptions-transport-ws, v1.json.example.com.
	// The accepted subprotocol is replaced when it looks like a credential
	// or is an offered entry that was replaced.
	SubprotocolTokens SubprotocolRule = iota
	// SubprotocolAll replaces every entry.
	SubprotocolAll
	// SubprotocolNone replaces none.
	SubprotocolNone
)

var subprotocolRules = [...]string{"tokens", "all", "none"}

func (s SubprotocolRule) String() string {
	if int(s) < len(subprotocolRules) {
		return subprotocolRules[s]
	}
	return fmt.Sprintf("SubprotocolRule(%d)", uint8(s))
}

// MarshalText returns the rule's name: tokens, all or none.
func (s SubprotocolRule) MarshalText() ([]byte, error) {
	if int(s) >= len(subprotocolRules) {
		return nil, fmt.Errorf("subprotocol rule %d: unknown", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText sets the rule from its name: tokens, all or none. For the
// configuration files written when the only choice was a switch, true means
// all and false means tokens, the default that replaced "off".
func (s *SubprotocolRule) UnmarshalText(b []byte) error {
	switch string(b) {
	case "tokens", "false":
		*s = SubprotocolTokens
	case "all", "true":
		*s = SubprotocolAll
	case "none":
		*s = SubprotocolNone
	default:
		return fmt.Errorf("subprotocol rule %q: want tokens, all or none", b)
	}
	return nil
}

// Subprotocol returns the redacted form of the subprotocol the server
// accepted (which may be a list), given the values of the
// Sec-WebSocket-Protocol header the client sent, by the rule Header applies
// to that header.
func (r *Redactor) Subprotocol(accepted string, offered []string) string {
	if r.protoRule == SubprotocolNone || accepted == "" {
		return accepted
	}
	var redacted map[string]bool
	if r.protoRule == SubprotocolTokens {
		r.eachEntry(offered, func(v, start, end int, redact bool) {
			if redact {
				if redacted == nil {
					redacted = map[string]bool{}
				}
				redacted[offered[v][start:end]] = true
			}
		})
	}
	out, _ := r.subprotocols([]string{accepted}, redacted)
	return out[0]
}

// subprotocols returns the redacted form of the values of a
// Sec-WebSocket-Protocol header and how many entries were replaced; also
// names more entries to replace. Separators and spaces are kept as they
// are, and the slice is vs itself when nothing is replaced.
func (r *Redactor) subprotocols(vs []string, also map[string]bool) ([]string, int) {
	if r.protoRule == SubprotocolNone {
		return vs, 0
	}
	type span struct{ v, start, end int }
	var spans []span
	r.eachEntry(vs, func(v, start, end int, redact bool) {
		if redact || also[vs[v][start:end]] {
			spans = append(spans, span{v, start, end})
		}
	})
	if len(spans) == 0 {
		return vs, 0
	}
	out := append([]string(nil), vs...)
	for i := len(spans) - 1; i >= 0; i-- { // from the end, so offsets hold
		sp := spans[i]
		out[sp.v] = out[sp.v][:sp.start] + Marker + out[sp.v][sp.end:]
	}
	return out, len(spans)
}

// eachEntry calls f, in order, with each entry of the comma-separated
// values vs (the index of its value and where in it the entry stands,
// trimmed of spaces and tabs) and whether the rule replaces it.
func (r *Redactor) eachEntry(vs []string, f func(v, start, end int, redact bool)) {
	marker := false // the entry before names a credential
	for i, v := range vs {
		for off := 0; off <= len(v); {
			elem, _, _ := strings.Cut(v[off:], ",")
			lead := len(elem) - len(strings.TrimLeft(elem, " \t"))
			name := strings.TrimRight(elem[lead:], " \t")
			if name != "" {
				redact := false
				named := false // named like a credential: a marker, not a token
				switch {
				case r.keepProto[name]:
				case r.protoRule == SubprotocolAll:
					redact = true
				case credentialEntry(name):
					redact = true
				case secretName(name):
					named = true
				default:
					redact = marker
				}
				marker = named
				f(i, off+lead, off+lead+len(name), redact)
			}
			off += len(elem) + 1
		}
	}
}

// credentialEntry reports whether a subprotocol entry looks like a
// credential on its own: it holds a token shape or looks random.
func credentialEntry(name string) bool {
	if len(name) > 64 {
		return true
	}
	if _, _, ok := nextToken(name, 0, inText); ok {
		return true
	}
	if len(name) < 20 {
		return false
	}
	digits, cases := 0, 0 // letter-digit alternations, case changes
	lastKind, lastCase := uint8(clsSep), uint8(clsSep)
	for i := 0; i < len(name); i++ {
		c := charClass[name[i]]
		if c == clsSep {
			continue
		}
		kind := c
		if c == clsUpper {
			kind = clsLower
		}
		if lastKind != clsSep && kind != lastKind {
			digits++
		}
		lastKind = kind
		if c != clsDigit {
			if lastCase != clsSep && c != lastCase {
				cases++
			}
			lastCase = c
		}
	}
	return digits >= max(5, len(name)/6) || cases >= max(6, len(name)/3)
}
