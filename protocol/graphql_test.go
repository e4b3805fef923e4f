package protocol

import (
	"encoding/json"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func lookup(t testing.TB, name string) Profile {
	t.Helper()
	p, err := NewSet(nil).Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// subscribe returns a graphql-transport-ws subscribe message (or, with typ
// "start", a legacy one) of a document and operation name.
func subscribe(typ, id, query, opName string) string {
	payload := map[string]any{"query": query, "variables": map[string]any{"id": "t-1"}}
	if opName != "" {
		payload["operationName"] = opName
	}
	b, err := json.Marshal(map[string]any{"id": id, "type": typ, "payload": payload})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// graphQLDocs are documents, an operation name, and the verdict and kind of
// the operation it selects.
var graphQLDocs = []struct {
	query, opName string
	verdict       Verdict
	kind          string
}{
	{`query GetTasks { tasks { id title } }`, "", Read, "GetTasks"},
	{`{ tasks { id } }`, "", Read, "tasks"},
	{`{ me { id } tasks(first: 10) { id } }`, "", Read, "me,tasks"},
	{`mutation UpdateTask($id: ID!) { updateTask(id: $id, done: true) { id } }`, "", Mutating, "UpdateTask"},
	{`mutation { deleteTask(id: 1) }`, "", Mutating, "deleteTask"},
	{`subscription OnTask { taskChanged { id } }`, "", Read, "OnTask"},
	{`# mutation DeleteAll { deleteAll }
query Harmless { tasks { id } }`, "", Read, "Harmless"},
	{`query Tasks { tasks { id } } mutation Wipe { wipe }`, "Tasks", Read, "Tasks"},
	{`query Tasks { tasks { id } } mutation Wipe { wipe }`, "Wipe", Mutating, "Wipe"},
	{`query Tasks { tasks { id } } mutation Wipe { wipe }`, "", Unknown, ""},
	{`query Tasks { tasks { id } }`, "Missing", Unknown, "Missing"},
	{`fragment F on Task { id title } query Q { tasks { ...F } }`, "", Read, "Q"},
	{`fragment Root on Query { tasks { id } } { ...Root ... on Query { me { id } } }`, "", Read, "tasks,me"},
	{`query Q { tasks { id }`, "", Unknown, ""},
	{`mutation { `, "", Unknown, ""},
	{`type Query { tasks: [Task] }`, "", Unknown, ""},
	{`fragment F on Task { id }`, "", Unknown, ""},
	{``, "", Unknown, ""},
	{`query A { a } mutation A { b }`, "A", Mutating, "A"},
	{`"""described""" query D { d }`, "", Read, "D"},
}

func TestGraphQLTransportWSJudgesOperations(t *testing.T) {
	var cases []judgeCase
	for _, d := range graphQLDocs {
		cases = append(cases, judgeCase{msg: subscribe("subscribe", "1", d.query, d.opName), verdict: d.verdict, kind: d.kind, id: "1"})
	}
	checkJudgements(t, lookup(t, "graphql-transport-ws"), cases)
}

func TestLegacyGraphQLWSJudgesOperations(t *testing.T) {
	var cases []judgeCase
	for _, d := range graphQLDocs {
		cases = append(cases, judgeCase{msg: subscribe("start", "7", d.query, d.opName), verdict: d.verdict, kind: d.kind, id: "7"})
	}
	checkJudgements(t, lookup(t, "graphql-ws"), cases)
}

var graphQLTransportWSCases = []judgeCase{
	{msg: `{"type":"connection_init","payload":{"token":"x"}}`, role: Control, verdict: Read, kind: "connection_init"},
	{msg: `{"type":"ping"}`, role: Control, verdict: Read, kind: "ping"},
	{msg: `{"type":"pong"}`, role: Reply, kind: "pong"},
	{msg: `{"id":"1","type":"subscribe","payload":{"query":"{ tasks { id } }"}}`, verdict: Read, kind: "tasks", id: "1"},
	{msg: `{"id":"2","type":"subscribe","payload":{"query":"mutation M { x }","operationName":null}}`, verdict: Mutating, kind: "M", id: "2"},
	{msg: `{"id":"1","type":"complete"}`, role: Control, verdict: Read, kind: "complete", id: "1"},
	{msg: `{"id":"3","type":"subscribe","payload":{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}}`, id: "3"},
	{msg: `{"id":"4","type":"subscribe","payload":{"query":"{ a }","Query":"mutation { b }"}}`, id: "4"},
	{msg: `{"id":"5","type":"subscribe","payload":{"query":"{ a }"},"type":"ping"}`},
	{msg: `{"id":"6","type":"subscribe","payload":{"query":"{ a }"},"Type":"ping"}`},
	{msg: `{"id":"7","type":"subscr\u0069be","payload":{"query":"mutation { b }"}}`, kind: `subscr\u0069be`, id: "7"},
	{msg: `{"id":"8","type":"subscribe","payload":{"query":"mutation \u007b b }"}}`, verdict: Mutating, kind: "b", id: "8"},
	{msg: `{"id":"9","type":"subscribe","payload":{"query":42}}`, id: "9"},
	{msg: `{"id":"10","type":"subscribe"}`, id: "10"},
	{msg: `{"id":"11","type":"start","payload":{"query":"{ a }"}}`, kind: "start", id: "11"},
	{msg: `{"type":"connection_init"}`, binary: true},
	{msg: `[1,2]`},
	{msg: `nope`},
}

func TestGraphQLTransportWSMessages(t *testing.T) {
	checkJudgements(t, lookup(t, "graphql-transport-ws"), graphQLTransportWSCases)
}

var legacyGraphQLWSCases = []judgeCase{
	{msg: `{"type":"connection_init","payload":{}}`, role: Control, verdict: Read, kind: "connection_init"},
	{msg: `{"id":"1","type":"start","payload":{"query":"subscription { taskChanged { id } }","variables":{}}}`, verdict: Read, kind: "taskChanged", id: "1"},
	{msg: `{"id":"2","type":"start","payload":{"query":"mutation { a }"}}`, verdict: Mutating, kind: "a", id: "2"},
	{msg: `{"id":"1","type":"stop"}`, role: Control, verdict: Read, kind: "stop", id: "1"},
	{msg: `{"type":"connection_terminate"}`, role: Control, verdict: Read, kind: "connection_terminate"},
	{msg: `{"id":"3","type":"subscribe","payload":{"query":"{ a }"}}`, kind: "subscribe", id: "3"},
}

func TestLegacyGraphQLWSMessages(t *testing.T) {
	checkJudgements(t, lookup(t, "graphql-ws"), legacyGraphQLWSCases)
}

func TestGraphQLServerMessages(t *testing.T) {
	f := func(profile, msg string, heartbeat bool, answer, id string) {
		t.Helper()
		sm := lookup(t, profile).NewConversation().Server([]byte(msg), false)
		if sm.Heartbeat != heartbeat || string(sm.Answer) != answer || string(sm.ID) != id || sm.AnswerBinary {
			t.Errorf("%s: Server(%q) = %+v, want heartbeat %v, answer %q, id %q", profile, msg, sm, heartbeat, answer, id)
		}
	}
	f("graphql-transport-ws", `{"type":"connection_ack"}`, false, "", "")
	f("graphql-transport-ws", `{"type":"ping"}`, true, `{"type":"pong"}`, "")
	f("graphql-transport-ws", `{"type":"pong"}`, true, "", "")
	f("graphql-transport-ws", `{"id":"1","type":"next","payload":{"data":{}}}`, false, "", "1")
	f("graphql-transport-ws", `{"id":"1","type":"error","payload":[]}`, false, "", "1")
	f("graphql-transport-ws", `{"id":"1","type":"complete"}`, false, "", "1")
	f("graphql-ws", `{"type":"connection_ack"}`, false, "", "")
	f("graphql-ws", `{"type":"ka"}`, true, "", "")
	f("graphql-ws", `{"id":"2","type":"data","payload":{"data":{}}}`, false, "", "2")
	f("graphql-ws", `{"id":"2","type":"complete"}`, false, "", "2")
	f("graphql-ws", `{"type":"connection_error","payload":{}}`, false, "", "")
}

// checkGraphQLSafety fails when a subscribe's document parses with its
// selected operation a mutation, yet the message is judged Read.
func checkGraphQLSafety(t *testing.T, msg []byte, j Judgement) {
	if j.Verdict != Read {
		return
	}
	var m struct {
		Payload struct {
			Query         string  `json:"query"`
			OperationName *string `json:"operationName"`
		} `json:"payload"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: m.Payload.Query})
	if err != nil {
		return
	}
	for _, op := range doc.Operations {
		if op.Operation != ast.Mutation {
			continue
		}
		if len(doc.Operations) == 1 || (m.Payload.OperationName != nil && *m.Payload.OperationName == op.Name) {
			t.Fatalf("Client(%q) = Read (%s), but it selects a mutation", msg, j.Reason)
		}
	}
}

func fuzzGraphQL(f *testing.F, profile, typ string, cases []judgeCase) {
	for _, c := range cases {
		f.Add([]byte(c.msg))
	}
	for _, d := range graphQLDocs {
		f.Add([]byte(subscribe(typ, "1", d.query, d.opName)))
	}
	p := lookup(f, profile)
	f.Fuzz(func(t *testing.T, msg []byte) {
		conv := p.NewConversation()
		checkGraphQLSafety(t, msg, conv.Client(msg, false))
		conv.Server(msg, false)
	})
}

func FuzzGraphQLTransportWS(f *testing.F) {
	fuzzGraphQL(f, "graphql-transport-ws", "subscribe", graphQLTransportWSCases)
}

func FuzzLegacyGraphQLWS(f *testing.F) {
	fuzzGraphQL(f, "graphql-ws", "start", legacyGraphQLWSCases)
}
