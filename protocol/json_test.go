package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// judgeCase is a client message and what a profile must say of it.
type judgeCase struct {
	msg     string
	binary  bool
	role    Role
	verdict Verdict
	kind    string
	id      string
}

// checkJudgements feeds msgs to one conversation of p in order.
func checkJudgements(t *testing.T, p Profile, cases []judgeCase) {
	t.Helper()
	conv := p.NewConversation()
	for _, c := range cases {
		j := conv.Client([]byte(c.msg), c.binary)
		if j.Role != c.role || j.Verdict != c.verdict || string(j.Kind) != c.kind || string(j.ID) != c.id {
			t.Errorf("%s: Client(%q) = role %v, verdict %v (%s), kind %q, id %q; want %v, %v, kind %q, id %q",
				p.Name(), c.msg, j.Role, j.Verdict, j.Reason, j.Kind, j.ID, c.role, c.verdict, c.kind, c.id)
		}
		if j.Reason == "" {
			t.Errorf("%s: Client(%q) gives no reason", p.Name(), c.msg)
		}
	}
}

func jsonProfileFor(t testing.TB, keyFields ...string) Profile {
	t.Helper()
	p, err := NewSet(&Options{KeyFields: keyFields}).Lookup("json")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncQuery is our sync protocol's typical read.
const syncQuery = `{"type":"query","id":7,"op":"tasks.list","params":{"project":"p-1","limit":50,"after":null}}`

var jsonCases = []judgeCase{
	// Our sync protocol.
	{msg: `{"type":"connect","id":0,"client":"web","version":"1.4.2"}`, role: Control, verdict: Read, kind: "connect", id: "0"},
	{msg: syncQuery, verdict: Read, kind: "tasks.list", id: "7"},
	{msg: `{"type":"query","id":8,"op":"user.me"}`, verdict: Read, kind: "user.me", id: "8"},
	{msg: `{"type":"query","id":9,"op":"search.typeahead","params":{"q":"roadmap"}}`, verdict: Read, kind: "search.typeahead", id: "9"},
	{msg: `{"type":"subscribe","op":"inbox.list"}`, verdict: Read, kind: "inbox.list"},
	{msg: `{"type":"mutate","id":10,"op":"tasks.update","params":{"id":"t-1","done":true}}`, verdict: Mutating, kind: "tasks.update", id: "10"},
	{msg: `{"type":"ping"}`, role: Control, verdict: Read, kind: "ping"},
	{msg: `{"type":"connection_init","payload":{}}`, role: Control, verdict: Read, kind: "connection_init"},
	// Envelopes.
	{msg: `{"type":"request","payload":{"op":"tasks.delete"}}`, verdict: Mutating, kind: "tasks.delete"},
	{msg: `{"type":"request","payload":{"op":"tasks.list"}}`, verdict: Read, kind: "tasks.list"},
	{msg: `{"type":"message","data":{"event":"getTask","id":"x"}}`, verdict: Read, kind: "getTask"},
	{msg: `{"type":"request"}`, kind: "request"},
	// Arrays and batches.
	{msg: `{"ops":[{"op":"tasks.list"},{"op":"tasks.delete"}]}`, verdict: Mutating, kind: "tasks.list"},
	{msg: `{"ops":[{"op":"tasks.list"},{"op":"frob"}]}`, kind: "tasks.list"},
	{msg: `{"ops":[{"op":"tasks.list"},{"op":"user.me"}]}`, verdict: Read, kind: "tasks.list"},
	{msg: `[{"method":"getUser"},{"method":"listProjects"}]`, verdict: Read, kind: "getUser"},
	{msg: `{"type":"frob","ops":[{"op":"tasks.list"}]}`, kind: "tasks.list"},
	{msg: `{"type":"query","ops":[{"op":"tasks.list"},{"op":"frob"}]}`, kind: "tasks.list"},
	{msg: `{"op":["tasks.list","delete"]}`, verdict: Mutating, kind: "tasks.list"},
	{msg: `{"type":"query","op":{"name":"delete","args":{"x":"y"}}}`, verdict: Mutating, kind: "delete"},
	{msg: `{"type":"message","event":{"name":"getTask","args":{"id":"t-1"}}}`, verdict: Read, kind: "getTask"},
	{msg: `{"event":{"id":"t-1","args":{"name":"delete"}}}`},
	{msg: `{"event":{"id":"t-1","kind":"frob"}}`, kind: "frob"},
	// Single verbs under the built-in keys.
	{msg: `{"type":"mutation"}`, verdict: Mutating, kind: "mutation"},
	{msg: `{"cmd":"save"}`, verdict: Mutating, kind: "save"},
	{msg: `{"event":"markRead"}`, verdict: Mutating, kind: "markRead"},
	{msg: `{"command":"purge"}`, verdict: Mutating, kind: "purge"},
	{msg: `{"operation":"cancel"}`, verdict: Mutating, kind: "cancel"},
	{msg: `{"action":"getTask"}`, verdict: Read, kind: "getTask"},
	{msg: `{"operationName":"UserProfileQuery"}`, verdict: Read, kind: "UserProfileQuery"},
	{msg: `{"name":"getTask"}`},
	// Keys as some parser reads them: other case, escapes, NUL cut.
	{msg: `{"type":"query","OP":"delete"}`, verdict: Mutating, kind: "delete"},
	{msg: `{"type":"query","\u006fp":"delete"}`, verdict: Mutating, kind: "delete"},
	{msg: `{"type":"query","op\u0000x":"delete"}`, verdict: Mutating, kind: "delete"},
	{msg: `{"type":"query","\u212Aind":"x","op":"tasks.list"}`, verdict: Read, kind: "tasks.list"},
	// Escaped names are judged decoded; the kind is as written.
	{msg: `{"type":"query","op":"tasks.\u0064elete"}`, verdict: Mutating, kind: `tasks.\u0064elete`},
	// Identifier-shaped values anywhere.
	{msg: `{"x":{"y":"tasks.delete"}}`, verdict: Mutating},
	{msg: `{"type":"query","op":"tasks.list","params":{"then":"deleteAll"}}`, verdict: Mutating, kind: "tasks.list"},
	{msg: `{"type":"query","op":"tasks.list","params":{"q":"how to delete a task"}}`, verdict: Read, kind: "tasks.list"},
	{msg: `"tasks.delete"`, verdict: Mutating},
	// Nothing to go by.
	{msg: `{"type":"query","op":"frob"}`, verdict: Read, kind: "frob"},
	{msg: `{"op":"frob"}`, kind: "frob"},
	{msg: `{"hello":"world"}`},
	{msg: `{}`},
	{msg: `[]`},
	{msg: `42`},
	{msg: `not json`},
	{msg: `{"type":"query"`},
	{msg: ``},
	{msg: `{"type":"query","op":"tasks.list"}`, binary: true, verdict: Read, kind: "tasks.list"},
}

func TestJSONJudgesMessages(t *testing.T) {
	checkJudgements(t, jsonProfileFor(t), jsonCases)
}

func TestJSONKeyFieldsComeFirst(t *testing.T) {
	checkJudgements(t, jsonProfileFor(t, "kind", "topic"), []judgeCase{
		{msg: `{"kind":"tasks.archive"}`, verdict: Mutating, kind: "tasks.archive"},
		{msg: `{"type":"query","kind":"tasks.list"}`, verdict: Read, kind: "tasks.list"},
		{msg: `{"topic":"frob","op":"getTask"}`, verdict: Read, kind: "frob"},
		{msg: `{"type":"query","\u212Aind":"delete"}`, verdict: Mutating, kind: "delete"},
		{msg: `{"type":"query","KIND":"delete"}`, verdict: Mutating, kind: "delete"},
	})
}

func TestJSONBounds(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1)
	wide := `{"type":"query","op":"tasks.list","ids":[` + strings.Repeat(`"a",`, maxValues) + `"a"]}`
	numbers := `{"type":"query","op":"tasks.list","ids":[` + strings.Repeat(`1,`, 4*maxValues) + `1]}`
	writeFirst := `{"op":"tasks.delete","ids":[` + strings.Repeat(`"a",`, maxValues) + `"a"]}`
	checkJudgements(t, jsonProfileFor(t), []judgeCase{
		{msg: deep},
		{msg: wide, kind: "tasks.list"},
		{msg: numbers, verdict: Read, kind: "tasks.list"},
		{msg: writeFirst, verdict: Mutating, kind: "tasks.delete"},
	})
	j := jsonProfileFor(t).NewConversation().Client([]byte(deep), false)
	if j.Reason != "too deep" {
		t.Errorf("reason %q, want too deep", j.Reason)
	}
}

func TestJSONServerMessages(t *testing.T) {
	conv := jsonProfileFor(t).NewConversation()
	f := func(msg string, heartbeat bool, id string) {
		t.Helper()
		sm := conv.Server([]byte(msg), false)
		if sm.Heartbeat != heartbeat || string(sm.ID) != id || sm.Answer != nil {
			t.Errorf("Server(%q) = %+v, want heartbeat %v, id %q, no answer", msg, sm, heartbeat, id)
		}
	}
	f(`{"type":"ping"}`, true, "")
	f(`{"op":"KeepAlive"}`, true, "")
	f(`{"type":"ka"}`, true, "")
	f(`{"type":"result","id":7,"data":[]}`, false, "7")
	f(`{"type":"result","id":"abc"}`, false, `"abc"`)
	f(`{"type":"event","op":"tasks.changed"}`, false, "")
	f(`not json`, false, "")
}

func TestJSONClientDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not kept under the race detector")
	}
	conv := jsonProfileFor(t).NewConversation()
	for _, msg := range []string{syncQuery, `{"type":"request","payload":{"op":"tasks.delete"}}`, `{"ops":[{"op":"tasks.list"},{"op":"frob"}]}`} {
		b := []byte(msg)
		allocs := testing.AllocsPerRun(100, func() { conv.Client(b, false) })
		if allocs != 0 {
			t.Errorf("Client(%s) allocates %v times a run", msg, allocs)
		}
	}
}

func FuzzJSONProfile(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c.msg))
	}
	p := jsonProfileFor(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		j := p.NewConversation().Client(msg, false)
		if j.Verdict == Read && writeUnderOpKey(msg) {
			t.Fatalf("Client(%q) = Read (%s), but a write verb is under an op key", msg, j.Reason)
		}
		if len(j.Kind) > 0 && !bytes.Contains(msg, j.Kind) {
			t.Fatalf("kind %q is not in %q", j.Kind, msg)
		}
		p.NewConversation().Server(msg, false)
	})
}

// writeUnderOpKey reports whether msg is JSON with a plainly written op key
// (exact spelling) whose plainly written string value holds a write verb: a
// check independent of the walk, by searching the bytes.
func writeUnderOpKey(msg []byte) bool {
	for _, k := range KeyFieldsDefault {
		rest := msg
		pat := []byte(`"` + k + `"`)
		for {
			i := bytes.Index(rest, pat)
			if i < 0 {
				break
			}
			rest = rest[i+len(pat):]
			v := bytes.TrimLeft(rest, " \t\r\n")
			if len(v) == 0 || v[0] != ':' {
				continue
			}
			v = bytes.TrimLeft(v[1:], " \t\r\n")
			if len(v) == 0 || v[0] != '"' {
				continue
			}
			end := bytes.IndexAny(v[1:], `"\`)
			if end < 0 || v[1+end] != '"' {
				continue
			}
			if JudgeName(v[1:1+end]) == Mutating && inKeyPosition(msg, len(msg)-len(rest)-len(pat)) {
				return true
			}
		}
	}
	return false
}

// inKeyPosition reports whether the string at msg[i] is a member's key of
// valid JSON: outside any string, right after '{' or ','.
func inKeyPosition(msg []byte, i int) bool {
	if !json.Valid(msg) {
		return false
	}
	inString := false
	for j := 0; j < i; j++ {
		switch msg[j] {
		case '\\':
			if inString {
				j++
			}
		case '"':
			inString = !inString
		}
	}
	if inString {
		return false
	}
	k := i - 1
	for k >= 0 && (msg[k] == ' ' || msg[k] == '\t' || msg[k] == '\n' || msg[k] == '\r') {
		k--
	}
	if k < 0 || (msg[k] != '{' && msg[k] != ',') {
		return false
	}
	// After a ',' the string is a key only inside an object: find the
	// innermost open bracket.
	depth := 0
	inString = false
	for j := k; j >= 0; j-- {
		if msg[j] == '"' && !escapedAt(msg, j) {
			inString = !inString
			continue
		}
		if inString {
			continue
		}
		switch msg[j] {
		case '}', ']':
			depth++
		case '{', '[':
			if depth == 0 {
				return msg[j] == '{'
			}
			depth--
		}
	}
	return false
}

// escapedAt reports whether the quote at msg[j] is escaped.
func escapedAt(msg []byte, j int) bool {
	n := 0
	for k := j - 1; k >= 0 && msg[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}
