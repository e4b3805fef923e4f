package protocol

import (
	"encoding/json"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// graphQLProfile is GraphQL over websocket: the graphql-ws library's
// graphql-transport-ws protocol, or with legacy set the older
// subscriptions-transport-ws protocol, whose subprotocol is "graphql-ws".
type graphQLProfile struct{ legacy bool }

func (p *graphQLProfile) Name() string {
	if p.legacy {
		return "graphql-ws"
	}
	return "graphql-transport-ws"
}

func (p *graphQLProfile) NewConversation() Conversation {
	return &graphQLConversation{legacy: p.legacy}
}

// graphQLConversation judges the messages of one GraphQL session. Each
// message stands alone, so it keeps no state.
type graphQLConversation struct{ legacy bool }

// The members of a GraphQL websocket message that judging reads.
var graphQLEnvelope = []string{"type", "id", "payload"}

// Client judges a client message. Its type decides its role:
// connection_init, ping, complete (stop, connection_terminate in the legacy
// protocol) are Control; pong is a Reply; subscribe (start) carries an
// operation, judged by its document. Kind is the operation's name for an
// operation and the message type for the rest; ID is the message's id,
// the text between the quotes.
func (c *graphQLConversation) Client(msg []byte, binary bool) Judgement {
	if binary {
		return Judgement{Reason: "binary message"}
	}
	if !jsonscan.Valid(msg) {
		return Judgement{Reason: "not json"}
	}
	var v [3][]byte
	ok, ambiguous := fields(msg, graphQLEnvelope, v[:])
	switch {
	case !ok:
		return Judgement{Reason: "not a json object"}
	case ambiguous:
		return Judgement{Reason: "ambiguous members"}
	}
	typ, ok := jsonscan.StringBody(v[0])
	if !ok {
		return Judgement{Reason: "no message type"}
	}
	id := graphQLID(v[1])
	control := Judgement{Role: Control, Verdict: Read, Kind: typ, Reason: "control message", ID: id}
	switch string(typ) {
	case "connection_init":
		return control
	}
	if c.legacy {
		switch string(typ) {
		case "stop", "connection_terminate":
			return control
		case "start":
			j := judgeOperation(v[2])
			j.ID = id
			return j
		}
		return Judgement{Kind: typ, Reason: "unknown message type", ID: id}
	}
	switch string(typ) {
	case "ping", "complete":
		return control
	case "pong":
		return Judgement{Role: Reply, Kind: typ, Reason: "pong"}
	case "subscribe":
		j := judgeOperation(v[2])
		j.ID = id
		return j
	}
	return Judgement{Kind: typ, Reason: "unknown message type", ID: id}
}

// Server reads a server message: graphql-transport-ws pings want a pong and,
// like its pongs and the legacy protocol's "ka", are heartbeats; next, data,
// error and complete belong to the operation of their id.
func (c *graphQLConversation) Server(msg []byte, binary bool) ServerMessage {
	if binary || !jsonscan.Valid(msg) {
		return ServerMessage{}
	}
	var v [3][]byte
	if ok, _ := fields(msg, graphQLEnvelope, v[:]); !ok {
		return ServerMessage{}
	}
	typ, _ := jsonscan.StringBody(v[0])
	switch string(typ) {
	case "ping":
		if !c.legacy {
			return ServerMessage{Heartbeat: true, Answer: []byte(`{"type":"pong"}`)}
		}
	case "pong":
		if !c.legacy {
			return ServerMessage{Heartbeat: true}
		}
	case "ka":
		if c.legacy {
			return ServerMessage{Heartbeat: true}
		}
	}
	return ServerMessage{ID: graphQLID(v[1])}
}

// graphQLID returns the id of a message from its JSON text: a string's text
// between the quotes (ids are strings in both protocols), else the text.
func graphQLID(v []byte) []byte {
	if isNull(v) {
		return nil
	}
	if body, ok := jsonscan.StringBody(v); ok {
		return body
	}
	return v
}

// The members of a subscribe or start payload that judging reads.
var graphQLPayload = []string{"query", "operationName", "extensions"}

// maxGraphQLTokens bounds the tokens of a document the parser reads; a
// longer document is Unknown.
const maxGraphQLTokens = 100_000

// judgeOperation judges the payload of a subscribe (or start) message by
// the operation its document selects: mutation is Mutating, query and
// subscription are Read. The document is parsed, not validated: there is no
// schema.
func judgeOperation(payload []byte) Judgement {
	j := Judgement{Role: Operation}
	var v [3][]byte
	ok, ambiguous := fields(payload, graphQLPayload, v[:])
	switch {
	case !ok:
		j.Reason = "no payload"
		return j
	case ambiguous:
		j.Reason = "ambiguous members"
		return j
	}
	var opName string
	if !isNull(v[1]) {
		if json.Unmarshal(v[1], &opName) != nil {
			j.Reason = "operationName not a string"
			return j
		}
		j.Kind = []byte(opName)
	}
	if isNull(v[0]) {
		j.Reason = "no query"
		if persisted(v[2]) {
			j.Reason = "persisted query without text"
		}
		return j
	}
	var query string
	if json.Unmarshal(v[0], &query) != nil {
		j.Reason = "query not a string"
		return j
	}
	doc, ok := parseQuery(query)
	if !ok {
		j.Reason = "graphql parse error"
		return j
	}
	var picked []*ast.OperationDefinition
	for _, op := range doc.Operations {
		if opName == "" || op.Name == opName {
			picked = append(picked, op)
		}
	}
	switch {
	case len(picked) == 0 && opName != "":
		j.Reason = "operation not in document"
		return j
	case len(picked) == 0:
		j.Reason = "no operation in document"
		return j
	case len(picked) > 1 && opName == "":
		j.Reason = "several operations, none named"
		return j
	}
	// Several operations of one name make an invalid document; whichever
	// a server ran, the worst of them is the verdict.
	j.Verdict, j.Reason = Read, "graphql query"
	for _, op := range picked {
		switch op.Operation {
		case ast.Mutation:
			j.Verdict, j.Reason = Mutating, "graphql mutation"
		case ast.Subscription:
			if j.Verdict == Read {
				j.Reason = "graphql subscription"
			}
		case ast.Query:
		default:
			j.Verdict, j.Reason = Unknown, "unknown operation type"
		}
		if j.Verdict == Mutating {
			break
		}
	}
	if opName == "" {
		op := picked[0]
		if op.Name != "" {
			j.Kind = []byte(op.Name)
		} else {
			j.Kind = []byte(strings.Join(rootFields(doc, op.SelectionSet, nil, 0), ","))
		}
	}
	return j
}

// parseQuery parses a GraphQL document. A panic in the parser, which reads
// outside bytes, is taken as a parse error.
func parseQuery(query string) (doc *ast.QueryDocument, ok bool) {
	defer func() {
		if recover() != nil {
			doc, ok = nil, false
		}
	}()
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, maxGraphQLTokens)
	return doc, err == nil && doc != nil
}

// persisted reports whether the extensions of a payload name a persisted
// query (extensions.persistedQuery.sha256Hash).
func persisted(ext []byte) bool {
	var v [1][]byte
	if ok, _ := fields(ext, []string{"persistedQuery"}, v[:]); !ok {
		return false
	}
	ok, _ := fields(v[0], []string{"sha256Hash"}, v[:])
	return ok && !isNull(v[0])
}

// maxFragmentDepth bounds how deep rootFields follows fragment spreads.
const maxFragmentDepth = 8

// rootFields returns the names of the root fields of an operation, through
// inline fragments and fragment spreads, each once.
func rootFields(doc *ast.QueryDocument, set ast.SelectionSet, names []string, depth int) []string {
	if depth > maxFragmentDepth {
		return names
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if !contains(names, s.Name) {
				names = append(names, s.Name)
			}
		case *ast.InlineFragment:
			names = rootFields(doc, s.SelectionSet, names, depth+1)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil {
				names = rootFields(doc, f.SelectionSet, names, depth+1)
			}
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
