package replayer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A SafetyRule is an operator's rule on client messages: a message whose
// JSON field at Field has one of Values, or matches Match, is marked as
// mutating (Options.Safety, --mutating) or as a read (Options.Allow,
// --allow).
type SafetyRule struct {
	// Field is a dotted path to a field of a JSON object message, such as
	// "type" or "request.method".
	Field string
	// Values lists exact values (a string's contents, or a number or bool
	// as written) that mark a message as mutating.
	Values []string
	// Match, if set, marks a message whose field's value matches it.
	Match *regexp.Regexp

	path path
}

// String returns the rule in the syntax ParseSafetyRule reads.
func (r SafetyRule) String() string {
	if r.Match != nil {
		return r.Field + "~" + r.Match.String()
	}
	return r.Field + "=" + strings.Join(r.Values, ",")
}

// ParseSafetyRule reads a rule written "field=v1,v2" (exact values) or
// "field~regexp" (a regular expression, unanchored unless it says so).
func ParseSafetyRule(s string) (SafetyRule, error) {
	if i := strings.IndexAny(s, "=~"); i > 0 {
		r := SafetyRule{Field: s[:i]}
		p, err := parsePath(r.Field)
		if err != nil {
			return SafetyRule{}, fmt.Errorf("safety rule %q: %w", s, err)
		}
		r.path = p
		arg := s[i+1:]
		if s[i] == '~' {
			re, err := regexp.Compile(arg)
			if err != nil {
				return SafetyRule{}, fmt.Errorf("safety rule %q: %w", s, err)
			}
			r.Match = re
			return r, nil
		}
		for v := range strings.SplitSeq(arg, ",") {
			if v = strings.TrimSpace(v); v != "" {
				r.Values = append(r.Values, v)
			}
		}
		if len(r.Values) == 0 {
			return SafetyRule{}, fmt.Errorf("safety rule %q: no values", s)
		}
		return r, nil
	}
	return SafetyRule{}, fmt.Errorf("safety rule %q: want field=v1,v2 or field~regexp", s)
}

// compile fills the parsed path of a rule built as a struct literal.
func (r *SafetyRule) compile() error {
	if r.path != nil {
		return nil
	}
	p, err := parsePath(r.Field)
	if err != nil {
		return fmt.Errorf("safety rule: %w", err)
	}
	if len(r.Values) == 0 && r.Match == nil {
		return fmt.Errorf("safety rule on %q: no values and no pattern", r.Field)
	}
	r.path = p
	return nil
}

// matches reports whether the rule matches msg. err is set when msg
// is not a well-formed JSON object. Where a key on the rule's path occurs
// more than once, every occurrence is judged and any match counts: a
// server's parser may read whichever one this package does not.
func (r *SafetyRule) matches(msg []byte) (bool, error) {
	i, err := objectBody(msg)
	if err != nil {
		return false, err
	}
	hit := false
	visit(msg, i, r.path, func(s, e int) {
		if hit {
			return
		}
		v, ok := scalar(msg[s:e])
		if !ok {
			return
		}
		hit = r.matchValue(v)
		if !hit && !isASCII(v) {
			if f := foldToASCII.Replace(v); f != v {
				hit = r.matchValue(f)
			}
		}
	})
	return hit, nil
}

func (r *SafetyRule) matchValue(v string) bool {
	if r.Match != nil {
		return r.Match.MatchString(v)
	}
	return slices.Contains(r.Values, v)
}

// foldToASCII maps the letters that servers' case-insensitive comparisons
// turn into ASCII and Go's case folding (regexp's (?i), strings.EqualFold)
// does not: Java's equalsIgnoreCase takes dotless ı and dotted İ for i, and
// the full upper-casing of Java, JavaScript and Python turns ß into SS and
// the Latin ligatures into their letters ("poﬆ" into "POST"). A value is
// judged as written and as folded; either match marks the message.
var foldToASCII = strings.NewReplacer(
	"ı", "i", "İ", "i", "ß", "ss", "ẞ", "ss",
	"ﬀ", "ff", "ﬁ", "fi", "ﬂ", "fl", "ﬃ", "ffi", "ﬄ", "ffl", "ﬅ", "st", "ﬆ", "st",
)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// A RehearseRule is one field of the form in which the target accepts a
// mutating message as a rehearsal: it runs the message through its write
// path but leaves nothing a user can see. With rehearse rules configured, a
// message a safety rule marks as mutating is sent with every rule's field
// set to its Value instead of being skipped (see Options.Rehearse).
type RehearseRule struct {
	// Field is a dotted path to the field, such as "dryRun" or
	// "params.workspace". It is added where missing, with any objects on
	// the way to it.
	Field string
	// Value is the JSON value the field is given, such as true or
	// "warmup-sandbox" (quotes included).
	Value json.RawMessage

	path path
}

// String returns the rule in the syntax ParseRehearseRule reads.
func (r RehearseRule) String() string { return r.Field + "=" + string(r.Value) }

// ParseRehearseRule reads a rule written "field=JSON", such as "dryRun=true"
// or `params.workspace="warmup"`. A field's segments must be printable
// ASCII that JSON writes without escapes (no quote, backslash, <, > or &),
// so that every parser finds the key as written.
func ParseRehearseRule(s string) (RehearseRule, error) {
	field, value, ok := strings.Cut(s, "=")
	if !ok {
		return RehearseRule{}, fmt.Errorf("rehearse rule %q: want field=JSON", s)
	}
	r := RehearseRule{Field: strings.TrimSpace(field), Value: json.RawMessage(value)}
	if err := r.compile(); err != nil {
		return RehearseRule{}, fmt.Errorf("rehearse rule %q: %w", s, err)
	}
	return r, nil
}

// compile checks the rule and fills its parsed path, compacting Value.
func (r *RehearseRule) compile() error {
	p, err := parsePath(r.Field)
	if err != nil {
		return err
	}
	for _, seg := range p {
		for _, c := range []byte(seg) {
			if c < 0x20 || c > 0x7e || strings.IndexByte(`"\\<>&`, c) >= 0 {
				return fmt.Errorf("field %q: only printable ASCII without quotes, backslashes, <, > or &", r.Field)
			}
		}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, r.Value); err != nil {
		return fmt.Errorf("value %q is not JSON (quote a string)", r.Value)
	}
	r.path, r.Value = p, b.Bytes()
	return nil
}

// compileRehearse compiles rules and refuses a set in which one rule's
// field lies inside another's, ignoring case: setting both cannot leave both
// in place unambiguously.
func compileRehearse(rules []RehearseRule) ([]RehearseRule, error) {
	rules = slices.Clone(rules)
	for i := range rules {
		if err := rules[i].compile(); err != nil {
			return nil, fmt.Errorf("rehearse rule %s: %w", rules[i], err)
		}
	}
	for i := range rules {
		for j := range rules {
			a, b := rules[i].path, rules[j].path
			if i != j && len(a) <= len(b) && slices.EqualFunc(a, b[:len(a)], strings.EqualFold) {
				return nil, fmt.Errorf("rehearse rules %s and %s: one field holds the other", rules[i], rules[j])
			}
		}
	}
	return rules, nil
}

// rehearse returns msg in its rehearsal form, or ok false when it cannot be
// put in that form beyond doubt: msg is not a JSON object, a value on a
// rule's path is not an object, or a key on the path occurs more than once
// or is spelled otherwise than the rule's segment (escaped, in another case,
// cut by an escaped NUL): a server might read a copy without the rule's
// value, or not find the key.
func rehearse(msg []byte, rules []RehearseRule) (out []byte, ok bool) {
	if _, err := objectBody(msg); err != nil {
		return nil, false
	}
	out = msg
	for i := range rules {
		if out, ok = setPath(out, rules[i].path, rules[i].Value); !ok {
			return nil, false
		}
	}
	body, err := objectBody(out)
	if err != nil {
		return nil, false
	}
	for i := range rules {
		n, same := 0, true
		unsure := visit(out, body, rules[i].path, func(s, e int) {
			n++
			same = same && bytes.Equal(out[s:e], rules[i].Value)
		})
		if unsure || n != 1 || !same {
			return nil, false
		}
	}
	return out, true
}

// RewriteAction says what a RewriteRule does to a field.
type RewriteAction string

// The rewrite actions.
const (
	// Set replaces the value with the string Arg.
	Set RewriteAction = "set"
	// Raw replaces the value with the JSON value Arg.
	Raw RewriteAction = "raw"
	// Unredact replaces the value with the string Arg only where the tap
	// redacted it (the value is the redaction marker).
	Unredact RewriteAction = "unredact"
	// Shift moves a timestamp by the time between the session's recording
	// and its replay: a number of seconds, milliseconds or microseconds
	// since 1970 (told apart by magnitude), or an RFC 3339 string.
	Shift RewriteAction = "shift"
	// Fresh replaces the value with a random one of the same JSON type and
	// length, the same for equal values within one replayed session, so
	// later messages that repeat an id still agree with each other.
	Fresh RewriteAction = "fresh"
)

// A RewriteRule changes a field of client messages before they are sent.
// Messages without the field, and messages that are not JSON objects, are
// sent unchanged.
type RewriteRule struct {
	// Field is a dotted path to the field, such as "token" or "client.ts".
	Field string
	// Action is what to do.
	Action RewriteAction
	// Arg is the value for Set, Raw and Unredact.
	Arg string

	path path
}

// String returns the rule in the syntax ParseRewriteRule reads.
func (r RewriteRule) String() string {
	if r.Action == Shift || r.Action == Fresh {
		return r.Field + "=" + string(r.Action)
	}
	return r.Field + "=" + string(r.Action) + ":" + r.Arg
}

// ParseRewriteRule reads a rule written "field=set:VALUE", "field=raw:JSON",
// "field=unredact:VALUE", "field=shift" or "field=fresh".
func ParseRewriteRule(s string) (RewriteRule, error) {
	field, spec, ok := strings.Cut(s, "=")
	if !ok {
		return RewriteRule{}, fmt.Errorf("rewrite rule %q: want field=action[:value]", s)
	}
	action, arg, _ := strings.Cut(spec, ":")
	r := RewriteRule{Field: field, Action: RewriteAction(action), Arg: arg}
	if err := r.compile(); err != nil {
		return RewriteRule{}, fmt.Errorf("rewrite rule %q: %w", s, err)
	}
	return r, nil
}

func (r *RewriteRule) compile() error {
	p, err := parsePath(r.Field)
	if err != nil {
		return err
	}
	switch r.Action {
	case Set, Unredact, Shift, Fresh:
	case Raw:
		if !json.Valid([]byte(r.Arg)) {
			return fmt.Errorf("raw value %q is not JSON", r.Arg)
		}
	default:
		return fmt.Errorf("unknown action %q (want set, raw, unredact, shift or fresh)", r.Action)
	}
	r.path = p
	return nil
}

// rewriter applies rewrite rules to one session's messages.
type rewriter struct {
	rules  []RewriteRule
	marker string
	shift  time.Duration // replay start minus recording start
	fresh  map[string][]byte
	// mask puts maskedValue where Set, Raw and Unredact would put theirs:
	// what a dry run prints must not show a credential a rule puts in.
	mask bool
}

// maskedValue stands in a dry run's output for a value a rewrite rule sets.
const maskedValue = "[set by --rewrite]"

// apply returns msg with every rule applied; msg itself is not modified.
// Messages that are not JSON objects come back unchanged.
func (w *rewriter) apply(msg []byte) []byte {
	for i := range w.rules {
		r := &w.rules[i]
		s, e, ok, err := span(msg, r.path)
		if err != nil || !ok {
			continue
		}
		if v, ok := w.value(r, msg[s:e]); ok {
			msg = replace(msg, s, e, v)
		}
	}
	return msg
}

func (w *rewriter) value(r *RewriteRule, old []byte) ([]byte, bool) {
	if w.mask && (r.Action == Set || r.Action == Raw || r.Action == Unredact) {
		if r.Action == Unredact {
			if v, ok := scalar(old); !ok || old[0] != '"' || !strings.Contains(v, w.marker) {
				return nil, false
			}
		}
		return quote(maskedValue), true
	}
	switch r.Action {
	case Set:
		return quote(r.Arg), true
	case Raw:
		return []byte(r.Arg), true
	case Unredact:
		if v, ok := scalar(old); ok && old[0] == '"' && strings.Contains(v, w.marker) {
			return quote(strings.ReplaceAll(v, w.marker, r.Arg)), true
		}
		return nil, false
	case Shift:
		return shiftTime(old, w.shift)
	case Fresh:
		if w.fresh == nil {
			w.fresh = make(map[string][]byte)
		}
		if v, ok := w.fresh[string(old)]; ok {
			return v, true
		}
		v, ok := freshValue(old)
		if ok && len(w.fresh) < maxFresh {
			w.fresh[string(old)] = v
		}
		return v, ok
	}
	return nil, false
}

// maxFresh bounds the ids one session's Fresh rules remember.
const maxFresh = 4096

func quote(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// shiftTime moves a timestamp value by d.
func shiftTime(old []byte, d time.Duration) ([]byte, bool) {
	if len(old) == 0 {
		return nil, false
	}
	if old[0] == '"' {
		var s string
		if json.Unmarshal(old, &s) != nil {
			return nil, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, false
		}
		layout := time.RFC3339
		if strings.ContainsRune(s, '.') {
			layout = time.RFC3339Nano
		}
		return quote(t.Add(d).Format(layout)), true
	}
	n, err := strconv.ParseInt(string(old), 10, 64)
	if err != nil || n <= 0 {
		return nil, false
	}
	switch {
	case n >= 1e15: // microseconds
		n += d.Microseconds()
	case n >= 1e12: // milliseconds
		n += d.Milliseconds()
	case n >= 1e9: // seconds
		n += int64(d / time.Second)
	default:
		return nil, false // too small to be a timestamp of this century
	}
	return strconv.AppendInt(nil, n, 10), true
}

// freshValue returns a random value like old: a string of the same length
// (hex digits, keeping any non-alphanumeric prefix such as "tok_"), or an
// integer with the same number of digits.
func freshValue(old []byte) ([]byte, bool) {
	if len(old) == 0 {
		return nil, false
	}
	if old[0] == '"' {
		var s string
		if json.Unmarshal(old, &s) != nil || s == "" {
			return nil, false
		}
		keep := strings.LastIndexAny(s, "_-:") + 1
		n := len(s) - keep
		if n == 0 {
			return nil, false
		}
		b := make([]byte, (n+1)/2)
		_, _ = rand.Read(b)
		return quote(s[:keep] + hex.EncodeToString(b)[:n]), true
	}
	digits := len(old)
	if old[0] == '-' {
		digits--
	}
	if digits < 1 || digits > 18 {
		return nil, false
	}
	if _, err := strconv.ParseInt(string(old), 10, 64); err != nil {
		return nil, false
	}
	lo, width := int64(0), int64(10) // one digit: 0-9
	if digits > 1 {
		lo = 1
		for range digits - 1 {
			lo *= 10
		}
		width = 9 * lo // [10^(d-1), 10^d)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(width))
	return strconv.AppendInt(nil, lo+n.Int64(), 10), true
}
