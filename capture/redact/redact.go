package redact

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Marker replaces every redacted value. It is the contract with the
// replayer, which substitutes a warm-up credential wherever it finds it, so
// it never changes.
//
// It is made only of characters that are unreserved in a URL (RFC 3986),
// token characters in HTTP (RFC 9110, so it is a valid subprotocol name and
// header value) and literal in a JSON string, so it appears byte for byte
// the same in a header, a query string and a JSON document.
const Marker = "__preheat_redacted__"

// Blank replaces a whole payload that could not be redacted precisely. It
// is Marker as a JSON string, so a blanked text payload is still a valid
// JSON document.
const Blank = `"` + Marker + `"`

// Limits on the rules, to catch configuration mistakes early.
const (
	// MaxNames is the most names one list of Options may hold.
	MaxNames = 256
	// MaxNameLen is the longest name, in bytes, Options accepts.
	MaxNameLen = 128
	// MaxPathSegments is the most segments all JSON paths may have in
	// total, not counting each path's last one.
	MaxPathSegments = 64
	// MaxDepthLimit is the largest Options.MaxDepth.
	MaxDepthLimit = 10000
)

// DefaultMaxDepth is the nesting depth of JSON objects and arrays beyond
// which a payload is treated as unparseable.
const DefaultMaxDepth = 128

// Options are the redaction rules. The zero value, like a nil *Options,
// means the defaults. Every list adds to its built-in defaults, which are
// the credentials every deployment has; only the JSON key defaults can be
// turned off (NoDefaultJSONKeys).
//
// Besides the lists, two rules apply by default. The word rule (words.go)
// redacts any header, query parameter or JSON key whose name has a secret
// word in it, however it is spelled: X-Forwarded-Access-Token, userJwt,
// csrfToken, x-api-key. The shape rule (shape.go) replaces JWTs, bearer
// tokens and Basic credentials wherever they stand: in JSON string values
// under any key, in text that is not JSON, in query parameter and header
// values, in close reasons and in the request path.
type Options struct {
	// Headers names request headers, in addition to the defaults, whose
	// values are replaced with Marker. The header stays, so the replayer
	// knows where a credential was. Names match case-insensitively. The
	// defaults are every name the word rule finds secret, and
	// Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
	// X-Auth-Token, X-Access-Token, X-Csrf-Token, X-Xsrf-Token and
	// X-Amz-Security-Token. For a header whose name ends in Authorization
	// the scheme is kept ("Bearer " + Marker) when the value has one. In
	// the values of other headers token shapes are replaced.
	Headers []string

	// RedactSubprotocols says which entries of Sec-WebSocket-Protocol,
	// and of the subprotocol the server accepted, are replaced with Marker.
	// Some applications smuggle a bearer token through it because browsers
	// cannot set Authorization on a websocket, but the replayer needs the
	// protocol names to negotiate the same protocol and to pick its
	// protocol profile. Default SubprotocolTokens: the entries that look
	// like credentials (see SubprotocolTokens).
	RedactSubprotocols SubprotocolRule
	// Subprotocols lists the protocol names always kept verbatim, matched
	// exactly (subprotocol names are case-sensitive). Default: none.
	Subprotocols []string

	// QueryParams names query parameters, in addition to the defaults,
	// whose values are replaced with Marker in the route. Names match
	// case-insensitively after percent-decoding, and a bracketed name such
	// as creds[token] matches if any of its parts does. The defaults are
	// every name the word rule finds secret, and access_token, accesstoken,
	// api_key, apikey, auth, auth_token, authtoken, client_secret,
	// code_verifier, id_token, jwt, key, password, passwd, refresh_token,
	// secret, session_token, sig, signature, token, x-amz-credential,
	// x-amz-security-token and x-amz-signature. In the values of other
	// parameters, and in the path, token shapes are replaced.
	QueryParams []string

	// JSONKeys names keys of text (JSON) payloads, in addition to the
	// defaults, whose values are replaced with Marker. A plain name such as
	// "pin" matches that key in any object at any depth. A dotted path
	// such as "auth.session" matches key "session" in an object that is the
	// value of key "auth", again at any depth; arrays between the segments
	// are looked through, so {"auth":[{"session":1}]} matches too. Names
	// match case-insensitively after JSON unescaping; a name cannot contain
	// a dot. The defaults are every key the word rule finds secret (token,
	// accessToken, user_token, password, apiKey, jwt, auth, session_id and
	// so on), and, matched whole in any case (so "ToKen", which the word
	// rule reads as to+Ken, too), access_token, accesstoken, api_key,
	// apikey, auth_token, authtoken, authorization, client_secret,
	// clientsecret, cookie, id_token, idtoken, password, passwd,
	// private_key, privatekey, refresh_token, refreshtoken, secret,
	// session_token, sessiontoken and token.
	JSONKeys []string
	// NoDefaultJSONKeys makes JSONKeys the whole list of payload keys, for
	// a protocol in which a secret word such as "token" is known to carry
	// no secret and redacting it would spoil replays: the word rule is not
	// applied to payloads. Token shapes are still replaced. Default false.
	// The header and query defaults cannot be turned off.
	NoDefaultJSONKeys bool

	// KeepBinary passes binary payloads through even when they contain a
	// key name the payload rules look for, or a token shape. Default false:
	// such payloads are replaced with Blank, since a binary encoding
	// (MessagePack, CBOR) carries key names and values in the clear but
	// cannot be redacted field by field.
	KeepBinary bool

	// MaxDepth is how deeply JSON objects and arrays may nest before a
	// payload is treated as unparseable. Default DefaultMaxDepth (128); at
	// most MaxDepthLimit.
	MaxDepth int
}

var defaultHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "X-Auth-Token", "X-Access-Token", "X-Csrf-Token",
	"X-Xsrf-Token", "X-Amz-Security-Token",
}

var defaultJSONKeys = []string{
	"access_token", "accesstoken", "api_key", "apikey", "auth_token",
	"authtoken", "authorization", "client_secret", "clientsecret", "cookie",
	"id_token", "idtoken", "password", "passwd", "private_key", "privatekey",
	"refresh_token", "refreshtoken", "secret", "session_token",
	"sessiontoken", "token",
}

var defaultQueryParams = []string{
	"access_token", "accesstoken", "api_key", "apikey", "auth", "auth_token",
	"authtoken", "client_secret", "code_verifier", "id_token", "jwt", "key",
	"password", "passwd", "refresh_token", "secret", "session_token", "sig",
	"signature", "token", "x-amz-credential", "x-amz-security-token",
	"x-amz-signature",
}

// wordAnchors are what the pre-check looks for so that it never misses a
// key the word rule finds secret (words.go): the secret words of five
// letters or more and the compound suffixes anywhere, the shorter secret
// words as words, and the key pairs joined or with one separator.
func wordAnchors() []anchor {
	var as []anchor
	for _, w := range []string{
		"token", "secret", "password", "passwd", "passphrase", "passcode",
		"authorization", "credential", "creds", "session", "sessid", "cookie",
		"signature", "assertion", "bearer", "apikey", "accesskey",
		"privatekey", "pincode",
	} {
		as = append(as, anchor{lit: []byte(w), kind: kindSub})
	}
	for _, w := range []string{"pass", "pwd", "jwt", "auth", "oidc", "csrf", "xsrf", "otp", "totp"} {
		as = append(as, anchor{lit: []byte(w), kind: kindWord})
	}
	for _, p := range [][2]string{{"api", "key"}, {"access", "key"}, {"private", "key"}, {"pin", "code"}} {
		as = append(as, anchor{lit: []byte(p[0] + string(rune(sepAny)) + p[1]), kind: kindSub})
	}
	return as
}

// Result says what redaction did to one payload, so the caller can count
// it.
type Result struct {
	// Fields is how many JSON values were replaced with Marker.
	Fields int
	// Tokens is how many token shapes (JWTs, bearer tokens, Basic
	// credentials) were replaced with Marker inside text that was kept.
	Tokens int
	// Blanked reports that the whole payload was replaced with Blank.
	Blanked bool
	// Reason says why the payload was blanked; ReasonNone if it was not.
	Reason Reason
}

// Reason says why a payload was blanked.
type Reason uint8

// The reasons for blanking a payload. Each applies only to a payload that
// may contain a secret key name, or, truncated or binary, a token shape.
const (
	// ReasonNone means the payload was not blanked.
	ReasonNone Reason = iota
	// ReasonInvalid means a text payload was not valid JSON.
	ReasonInvalid
	// ReasonTruncated means a text payload was cut short by the tap.
	ReasonTruncated
	// ReasonTooDeep means a text payload nested deeper than MaxDepth.
	ReasonTooDeep
	// ReasonBinary means a binary payload contained a key name or a token
	// shape.
	ReasonBinary
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonInvalid:
		return "invalid"
	case ReasonTruncated:
		return "truncated"
	case ReasonTooDeep:
		return "too_deep"
	case ReasonBinary:
		return "binary"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Redactor applies one set of rules. It is immutable once built and safe
// for concurrent use by any number of sessions.
type Redactor struct {
	headers      []string // canonical forms of denied header names
	protoRule    SubprotocolRule
	keepProto    map[string]bool
	paramNames   map[string]bool     // lower-case query parameter names
	keys         map[string]*keyRule // folded JSON key names and path segments
	filter       keyFilter           // on the keys of keys
	maxKeyLen    int
	words        bool     // the word rule applies to JSON keys
	pre          *matcher // key names and token shapes: may Payload change anything?
	keepBinary   bool
	maxDepth     int
	pathSegments int
}

// keyRule says what matching one JSON key name means. Path states are bits:
// path p with n segments owns n-1 consecutive bits, bit k-1 (from its base)
// meaning "the enclosing keys end with the path's first k segments".
type keyRule struct {
	plain bool   // the name is configured on its own: always redact
	first uint64 // states entered when this name is a path's first segment
	next  uint64 // states from which this name advances to the next bit
	final uint64 // states in which this name completes a path
}

// New builds a Redactor from opts, which may be nil for the defaults. It
// reports the first invalid rule.
func New(opts *Options) (*Redactor, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxDepth < 0 || o.MaxDepth > MaxDepthLimit {
		return nil, fmt.Errorf("max depth %d: want 1 to %d", o.MaxDepth, MaxDepthLimit)
	}
	if o.RedactSubprotocols > SubprotocolNone {
		return nil, fmt.Errorf("subprotocol rule %d: unknown", o.RedactSubprotocols)
	}
	r := &Redactor{
		protoRule:  o.RedactSubprotocols,
		words:      !o.NoDefaultJSONKeys,
		keepProto:  map[string]bool{},
		paramNames: map[string]bool{},
		keys:       map[string]*keyRule{},
		keepBinary: o.KeepBinary,
		maxDepth:   o.MaxDepth,
	}

	if err := checkCount("header", o.Headers); err != nil {
		return nil, err
	}
	for _, h := range append(append([]string(nil), defaultHeaders...), o.Headers...) {
		if err := checkName("header", h); err != nil {
			return nil, err
		}
		if !isToken(h) {
			return nil, fmt.Errorf("header %q: not a valid header name", h)
		}
		r.headers = append(r.headers, http.CanonicalHeaderKey(h))
	}

	if err := checkCount("subprotocol", o.Subprotocols); err != nil {
		return nil, err
	}
	for _, p := range o.Subprotocols {
		if err := checkName("subprotocol", p); err != nil {
			return nil, err
		}
		if !isToken(p) {
			return nil, fmt.Errorf("subprotocol %q: not a valid protocol name", p)
		}
		r.keepProto[p] = true
	}

	if err := checkCount("query parameter", o.QueryParams); err != nil {
		return nil, err
	}
	for _, p := range append(append([]string(nil), defaultQueryParams...), o.QueryParams...) {
		if err := checkName("query parameter", p); err != nil {
			return nil, err
		}
		f := strings.ToLower(p)
		r.paramNames[f] = true
	}

	if err := checkCount("JSON key", o.JSONKeys); err != nil {
		return nil, err
	}
	var anchors []anchor // what the pre-check looks for
	var jsonKeys []string
	if r.words {
		anchors = wordAnchors()
		jsonKeys = defaultJSONKeys
	}
	for i, k := range slices.Concat(jsonKeys, o.JSONKeys) {
		if err := checkName("JSON key", k); err != nil {
			return nil, err
		}
		segs := strings.Split(k, ".")
		for _, s := range segs {
			if s == "" {
				return nil, fmt.Errorf("JSON key %q: empty path segment", k)
			}
		}
		for i := range segs {
			segs[i] = string(foldKey(nil, []byte(segs[i])))
			r.maxKeyLen = max(r.maxKeyLen, len(segs[i]))
		}
		if i >= len(jsonKeys) { // the word anchors cover the defaults
			anchors = append(anchors, anchor{lit: []byte(segs[len(segs)-1]), kind: kindSub})
		}
		if len(segs) == 1 {
			r.rule(segs[0]).plain = true
			continue
		}
		base := r.pathSegments
		r.pathSegments += len(segs) - 1
		if r.pathSegments > MaxPathSegments {
			return nil, fmt.Errorf("JSON key %q: more than %d path segments in all", k, MaxPathSegments)
		}
		r.rule(segs[0]).first |= 1 << base
		for i := 1; i < len(segs)-1; i++ {
			r.rule(segs[i]).next |= 1 << (base + i - 1)
		}
		r.rule(segs[len(segs)-1]).final |= 1 << (base + len(segs) - 2)
	}
	r.pre = newMatcher(slices.Concat(anchors, shapeAnchors()))
	return r, nil
}

func (r *Redactor) rule(name string) *keyRule {
	k := r.keys[name]
	if k == nil {
		k = &keyRule{}
		r.keys[name] = k
		r.filter.add(name)
	}
	return k
}

func checkCount(what string, names []string) error {
	if len(names) > MaxNames {
		return fmt.Errorf("%d %s names: want at most %d", len(names), what, MaxNames)
	}
	return nil
}

func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name %q: empty", what, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%s name %q: longer than %d bytes", what, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s name %q: control character", what, name)
		}
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
