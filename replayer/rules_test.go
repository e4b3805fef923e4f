package replayer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/protocol"
)

func mustRules(ss ...string) []SafetyRule {
	out := make([]SafetyRule, len(ss))
	for i, s := range ss {
		r, err := ParseSafetyRule(s)
		if err != nil {
			panic(err)
		}
		out[i] = r
	}
	return out
}

func TestSpan(t *testing.T) {
	f := func(msg, p, want string, found bool) {
		t.Helper()
		pp, err := parsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		s, e, ok, err := span([]byte(msg), pp)
		if err != nil {
			t.Fatalf("span(%s, %s): %v", msg, p, err)
		}
		if ok != found || (ok && msg[s:e] != want) {
			t.Fatalf("span(%s, %s) = %q %v, want %q %v", msg, p, msg[s:e], ok, want, found)
		}
	}
	f(`{"type":"query","id":7}`, "id", "7", true)
	f(`{"type" : "query" , "id" :  "x\"y" }`, "id", `"x\"y"`, true)
	f(`{"a":{"b":{"c":[1,2]}},"c":1}`, "a.b.c", "[1,2]", true)
	f(`{"a":{"b":1},"b":2}`, "b", "2", true)
	f(`{"a":[{"b":1}]}`, "a.b", "", false)
	f(`{"a":"x"}`, "a.b", "", false)
	f(`{"x":{"id":1}}`, "id", "", false)
	f(`{}`, "id", "", false)
	f(`{"a":null}`, "a", "null", true)

	for _, bad := range []string{``, `[1]`, `"s"`, `{"a":`, `{"a" 1}`, `{1:2}`, `not json`} {
		if _, _, _, err := span([]byte(bad), path{"a"}); err == nil {
			t.Fatalf("span(%q): no error", bad)
		}
	}
}

func TestSafetyRules(t *testing.T) {
	f := func(rule, msg string, want bool) {
		t.Helper()
		r, err := ParseSafetyRule(rule)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.matches([]byte(msg))
		if err != nil || got != want {
			t.Fatalf("%s on %s: %v %v, want %v", rule, msg, got, err, want)
		}
	}
	f("type=mutate,write,delete", `{"type":"write"}`, true)
	f("type=mutate,write,delete", `{"type":"query"}`, false)
	f("type=mutate", `{"kind":"mutate"}`, false)
	f("req.method=POST", `{"req":{"method":"POST"}}`, true)
	f(`op~^tasks\.(update|delete)$`, `{"op":"tasks.update"}`, true)
	f(`op~^tasks\.(update|delete)$`, `{"op":"tasks.updated"}`, false)
	f("flag=true", `{"flag":true}`, true)

	for _, bad := range []string{"type", "=x", "type=", "a..b=x", "op~(", ".a=x"} {
		if _, err := ParseSafetyRule(bad); err == nil {
			t.Fatalf("ParseSafetyRule(%q): no error", bad)
		}
	}
}

// verdictOf judges msg as the first client message of a plain JSON session.
func verdictOf(t *testing.T, o Options, msg string) string {
	t.Helper()
	return verdictIn(t, "json", o, msg)
}

// verdictIn judges msg as the first client message of a session of the
// named profile.
func verdictIn(t *testing.T, profile string, o Options, msg string) string {
	t.Helper()
	r, err := New("ws://127.0.0.1:1", &o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.profiles.Lookup(profile)
	if err != nil {
		t.Fatal(err)
	}
	j := r.judge(p.NewConversation(), []byte(msg), false)
	if j.role != protocol.Operation {
		return j.role.String()
	}
	return j.verdict.String()
}

func TestDefaultVerdictsOfPlainJSON(t *testing.T) {
	for msg, want := range map[string]string{
		`{"type":"mutate","id":1}`:                    "mutating",
		`{"type":"delete"}`:                           "mutating",
		`{"type":"query","op":"tasks.update"}`:        "mutating",
		`{"type":"query","op":"tasks.get"}`:           "read",
		`{"method":"createTask"}`:                     "mutating", // camelCase: the old rules let it through
		`{"method":"task/create"}`:                    "mutating",
		`{"action":"ARCHIVE_PROJECT"}`:                "mutating",
		`{"type":"query","op":"settings.list"}`:       "read",
		`{"type":"subscribe","op":"inbox.list"}`:      "read",
		`{"type":"query","op":"comments.add","id":3}`: "mutating",
		`{"type":"connect","token":"x"}`:              "control",
		`{"type":"frobnicate"}`:                       "unknown",
		`[1,2]`:                                       "unknown",
		`not json`:                                    "unknown",
	} {
		if got := verdictOf(t, Options{}, msg); got != want {
			t.Errorf("%s: %q, want %q", msg, got, want)
		}
	}
}

// TestOperatorRulesDecideOverTheProfile: --mutating wins over everything,
// --allow turns an unknown into a read but never a write into one, and
// without the profile's verdicts only the rules decide.
func TestOperatorRulesDecideOverTheProfile(t *testing.T) {
	mut, allow := mustRules("op~^tasks\\.list$"), mustRules("type=frobnicate", "op~.")
	f := func(o Options, msg, want string) {
		t.Helper()
		if got := verdictOf(t, o, msg); got != want {
			t.Errorf("%+v on %s: %q, want %q", o, msg, got, want)
		}
	}
	f(Options{Safety: mut}, `{"type":"query","op":"tasks.list"}`, "mutating")
	f(Options{Allow: allow}, `{"type":"frobnicate"}`, "read")
	f(Options{Allow: allow}, `{"type":"query","op":"tasks.delete"}`, "mutating")
	f(Options{Allow: allow, Safety: mut}, `{"op":"tasks.list"}`, "mutating")
	f(Options{NoDefaultSafety: true}, `{"type":"query","op":"tasks.list"}`, "unknown")
	f(Options{NoDefaultSafety: true, Allow: allow}, `{"type":"frobnicate"}`, "read")
	f(Options{NoDefaultSafety: true, Allow: allow}, `{"op":"tasks.delete"}`, "read") // the operator's word
	f(Options{NoDefaultSafety: true}, `{"type":"connect"}`, "control")
}

// TestPersistedQueryIsReadOnlyWhenItsHashIsAllowed: a GraphQL persisted
// query carries no document to judge, so it is unknown until the operator
// allows its hash; a mutation stays mutating whatever --allow says.
func TestPersistedQueryIsReadOnlyWhenItsHashIsAllowed(t *testing.T) {
	const pq = `{"id":"1","type":"subscribe","payload":{"operationName":"Tasks","extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab12cd"}}}}`
	allow := mustRules("payload.extensions.persistedQuery.sha256Hash=ab12cd")
	if got := verdictIn(t, "graphql-transport-ws", Options{}, pq); got != "unknown" {
		t.Errorf("persisted query: %s, want unknown", got)
	}
	if got := verdictIn(t, "graphql-transport-ws", Options{Allow: allow}, pq); got != "read" {
		t.Errorf("persisted query with its hash allowed: %s, want read", got)
	}
	const mut = `{"id":"2","type":"subscribe","payload":{"query":"mutation { deleteTask(id: 1) }","extensions":{"persistedQuery":{"sha256Hash":"ab12cd"}}}}`
	if got := verdictIn(t, "graphql-transport-ws", Options{Allow: allow}, mut); got != "mutating" {
		t.Errorf("a mutation under an allowed hash: %s, want mutating", got)
	}
}

// TestVerdictsFoldLikeServers: letters that a server's case-insensitive
// comparison turns into ASCII, where Go's folding does not, still mark a
// message mutating: Java's "wrıte".equalsIgnoreCase("write") is true, and
// Java, JavaScript and Python upper-case "poﬆ" to "POST". The operator's
// rules fold the same way.
func TestVerdictsFoldLikeServers(t *testing.T) {
	for msg, want := range map[string]string{
		`{"type":"wrıte"}`:                "mutating", // dotless i
		`{"type":"WRİTE"}`:                "mutating", // dotted capital I
		`{"type":"del\u0065te"}`:          "mutating", // escaped
		`{"op":"tasks.poﬆ"}`:              "mutating", // the st ligature
		`{"action":"ﬁle.upſert"}`:         "mutating", // long s
		`{"method":"inbox/ﬂag_archive"}`:  "mutating",
		`{"type":"query","op":"wrıt"}`:    "read",
		`{"type":"query","op":"ﬁnd.all"}`: "read",
	} {
		if got := verdictOf(t, Options{}, msg); got != want {
			t.Errorf("%s: %q, want %q", msg, got, want)
		}
	}
	rules := mustRules("op=pass")
	for msg, want := range map[string]string{
		`{"op":"paß"}`:  "mutating", // sharp s upper-cases to SS
		`{"op":"pass"}`: "mutating",
		`{"op":"pas"}`:  "unknown",
	} {
		if got := verdictOf(t, Options{Safety: rules}, msg); got != want {
			t.Errorf("rule op=pass on %s: %q, want %q", msg, got, want)
		}
	}
}

func TestRewrite(t *testing.T) {
	rules := func(ss ...string) []RewriteRule {
		var out []RewriteRule
		for _, s := range ss {
			r, err := ParseRewriteRule(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	w := rewriter{rules: rules("token=unredact:s3cret", "user.name=set:warm \"bot\"", "opts=raw:{\"a\":1}"), marker: "__preheat_redacted__"}
	got := string(w.apply([]byte(`{"token":"Bearer __preheat_redacted__","user":{"name":"ann"},"opts":null,"z":1}`)))
	if want := `{"token":"Bearer s3cret","user":{"name":"warm \"bot\""},"opts":{"a":1},"z":1}`; got != want {
		t.Fatalf("rewrite: %s\nwant     %s", got, want)
	}
	if got := string(w.apply([]byte(`{"token":"real"}`))); got != `{"token":"real"}` {
		t.Fatalf("unredact touched an unredacted value: %s", got)
	}
	if got := string(w.apply([]byte(`not json`))); got != "not json" {
		t.Fatalf("rewrite changed a non-JSON message: %s", got)
	}

	shift := rewriter{rules: rules("ms=shift", "s=shift", "us=shift", "iso=shift", "small=shift"), shift: time.Hour}
	got = string(shift.apply([]byte(`{"ms":1763800000000,"s":1763800000,"us":1763800000000000,"iso":"2026-11-22T10:00:00Z","small":42}`)))
	if want := `{"ms":1763803600000,"s":1763803600,"us":1763803600000000,"iso":"2026-11-22T11:00:00Z","small":42}`; got != want {
		t.Fatalf("shift: %s\nwant   %s", got, want)
	}

	fresh := rewriter{rules: rules("id=fresh", "n=fresh")}
	a := fresh.apply([]byte(`{"id":"req_abcdef","n":12345}`))
	b := fresh.apply([]byte(`{"id":"req_abcdef","n":12345}`))
	if string(a) != string(b) {
		t.Fatalf("fresh not consistent within a session: %s vs %s", a, b)
	}
	var m struct {
		ID string
		N  int
	}
	if err := json.Unmarshal(a, &m); err != nil || m.ID == "req_abcdef" || !strings.HasPrefix(m.ID, "req_") || len(m.ID) != 10 || m.N < 10000 || m.N > 99999 {
		t.Fatalf("fresh: %s (%v)", a, err)
	}

	for _, bad := range []string{"token", "token=nope", "=set:x", "x=raw:{", "a..b=fresh"} {
		if _, err := ParseRewriteRule(bad); err == nil {
			t.Fatalf("ParseRewriteRule(%q): no error", bad)
		}
	}
}

// FuzzSpan feeds arbitrary messages to the field finder and the rules that
// use it: no panic, and a found span is always a valid JSON value.
func FuzzSpan(f *testing.F) {
	for _, s := range []string{`{"type":"query","id":7}`, `{"a":{"b":{"c":1}}}`, `{"a":[1,{"b":2}]}`, `{`, `{"a":"\u00`, `[]`} {
		f.Add([]byte(s))
	}
	paths := []path{{"id"}, {"a", "b"}, {"a", "b", "c"}, {"type"}}
	rules := mustRules("type=mutate,write,delete", `op~(?i)(^|[._/-])(create|update|delete)($|[._/-])`)
	w := rewriter{rules: []RewriteRule{{Field: "id", Action: Fresh, path: path{"id"}}, {Field: "a.b", Action: Shift, path: path{"a", "b"}}}, shift: time.Minute}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, p := range paths {
			s, e, ok, err := span(msg, p)
			if ok && (err != nil || s < 0 || e > len(msg) || s > e || !json.Valid(msg[s:e])) {
				t.Fatalf("span(%q, %v) = [%d,%d) %v", msg, p, s, e, err)
			}
		}
		for i := range rules {
			_, _ = rules[i].matches(msg)
		}
		out := w.apply(msg)
		if json.Valid(msg) && !json.Valid(out) {
			t.Fatalf("rewrite made invalid JSON: %q -> %q", msg, out)
		}
	})
}

func TestSafetyRulesJudgeEveryDuplicate(t *testing.T) {
	// Most parsers keep the last of duplicate keys; a rule must not be
	// fooled by a harmless first one.
	for rule, msg := range map[string]string{
		"type=mutate":   `{"type":"query","type":"mutate"}`,
		"a.m=POST":      `{"a":{"m":"GET"},"a":{"m":"POST"}}`,
		"a.m=POST ":     `{"a":{"m":"GET","m":"POST"}}`,
		"op~^tasks\\.u": `{"op":"tasks.get","x":1,"op":"tasks.update"}`,
		"type=delete":   `{"type":"query","TYPE":"delete"}`, // a Go struct reads TYPE as Type
		"type=write":    `{"type\u0000":"write"}`,           // a C parser reads "type"
	} {
		r, err := ParseSafetyRule(strings.TrimSpace(rule))
		if err != nil {
			t.Fatal(err)
		}
		if hit, err := r.matches([]byte(msg)); err != nil || !hit {
			t.Errorf("%s on %s: %v %v, want a match", rule, msg, hit, err)
		}
	}
}

func TestRehearse(t *testing.T) {
	rules := func(ss ...string) []RehearseRule {
		t.Helper()
		var out []RehearseRule
		for _, s := range ss {
			r, err := ParseRehearseRule(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		out, err := compileRehearse(out)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	f := func(rs []RehearseRule, msg, want string) {
		t.Helper()
		got, ok := rehearse([]byte(msg), rs)
		if want == "" {
			if ok {
				t.Fatalf("rehearse(%s) = %s, want refused", msg, got)
			}
			return
		}
		if !ok || string(got) != want {
			t.Fatalf("rehearse(%s) = %s %v\nwant %s", msg, got, ok, want)
		}
	}
	dry := rules("dryRun=true")
	f(dry, `{"type":"mutate","id":1}`, `{"dryRun":true,"type":"mutate","id":1}`)
	f(dry, `{"type":"mutate","dryRun":false}`, `{"type":"mutate","dryRun":true}`)
	f(dry, ` { } `, ` {"dryRun":true } `)
	f(dry, `{"dryRun":false,"dryRun":false}`, "") // a server may read either
	f(dry, `{"DryRun":false}`, "")                // so may a Go struct
	f(dry, `{"dry\u0052un":false}`, "")           // a parser comparing raw bytes finds no dryRun
	f(dry, `{"dryRun\u0000":false}`, "")          // a C parser reads dryRun
	f(dry, `[{"type":"mutate"}]`, "")
	f(dry, `not json`, "")

	sandbox := rules(`params.workspace = "warmup"`, "meta.dry.run=1")
	f(sandbox, `{"params":{"object":5}}`, `{"meta":{"dry":{"run":1}},"params":{"workspace":"warmup","object":5}}`)
	f(sandbox, `{"params":{"workspace":3},"meta":{}}`, `{"params":{"workspace":"warmup"},"meta":{"dry":{"run":1}}}`)
	f(sandbox, `{"params":7}`, "")                        // not an object on the way
	f(sandbox, `{"params":{},"params":{"object":5}}`, "") // which params?

	f(sandbox, `{"par\u0061ms":{"workspace":3}}`, "")

	for _, bad := range []string{"dryRun", "dryRun=yes", "=true", "a..b=1", `x={"a":`, "a<b=1", `a"b=1`, "dry\x01run=1", "é=1"} {
		if _, err := ParseRehearseRule(bad); err == nil {
			t.Errorf("ParseRehearseRule(%q): no error", bad)
		}
	}
	a, _ := ParseRehearseRule("a=1")
	ab, _ := ParseRehearseRule("a.b=2")
	if _, err := compileRehearse([]RehearseRule{a, ab}); err == nil {
		t.Error("compileRehearse accepted a field inside another")
	}
	upper, _ := ParseRehearseRule("A.x=2")
	if _, err := compileRehearse([]RehearseRule{a, upper}); err == nil {
		t.Error("compileRehearse accepted a field inside another but for case")
	}
}

// FuzzRehearse checks the promise a rehearsal makes: whatever the message,
// a rehearsed one is valid JSON that carries every rule's value both where
// this package looks (the first of duplicate keys) and where encoding/json
// does (the last).
func FuzzRehearse(f *testing.F) {
	for _, s := range []string{`{"type":"mutate"}`, `{"dryRun":false}`, `{"params":{"a":1}}`, `{"params":1}`, `{}`,
		`{"params":{"workspace":1},"params":{}}`, `{"dryRun":1,"dryRun":2}`, `[]`, ` {"a" : [ "}" ] } `} {
		f.Add([]byte(s))
	}
	var rules []RehearseRule
	for _, s := range []string{"dryRun=true", `params.workspace="warmup"`} {
		r, err := ParseRehearseRule(s)
		if err != nil {
			f.Fatal(err)
		}
		rules = append(rules, r)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, ok := rehearse(msg, rules)
		if !ok {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("rehearse(%q) made invalid JSON %q", msg, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("rehearse(%q) = %q: %v", msg, out, err)
		}
		params, _ := m["params"].(map[string]any)
		if m["dryRun"] != true || params == nil || params["workspace"] != "warmup" {
			t.Fatalf("rehearse(%q) = %q: encoding/json reads %v", msg, out, m)
		}
		var st struct { // matched regardless of case
			DryRun any
			Params struct{ Workspace any }
		}
		if err := json.Unmarshal(out, &st); err != nil || st.DryRun != true || st.Params.Workspace != "warmup" {
			t.Fatalf("rehearse(%q) = %q: a Go struct reads %+v %v", msg, out, st, err)
		}
		for _, r := range rules {
			raw, found, err := lookup(out, r.path)
			if err != nil || !found || string(raw) != string(r.Value) {
				t.Fatalf("rehearse(%q) = %q: %s reads %s %v %v", msg, out, r.Field, raw, found, err)
			}
		}
	})
}
