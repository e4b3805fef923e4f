package protocol

import (
	"github.com/preheatdev/preheat/internal/jsonscan"
)

// jsonRPCProfile is JSON-RPC 2.0 over websocket, with the conventions of
// rpc-websockets: methods rpc.on and rpc.off subscribe to and unsubscribe
// from server events, rpc.login authenticates.
type jsonRPCProfile struct{ keys *opKeys }

func (p *jsonRPCProfile) Name() string { return "json-rpc" }

func (p *jsonRPCProfile) NewConversation() Conversation {
	return &jsonRPCConversation{keys: p.keys}
}

// jsonRPCConversation judges JSON-RPC messages; they stand alone, so it
// keeps no state.
type jsonRPCConversation struct{ keys *opKeys }

// The members of a JSON-RPC message that judging reads.
var jsonRPCMembers = []string{"method", "params", "id", "result", "error"}

const (
	rpcMethod = iota
	rpcParams
	rpcID
	rpcResult
	rpcError
)

// maxBatch bounds the elements of a batch that are judged; a longer batch
// is Unknown.
const maxBatch = 1024

// Client judges a request, a notification or a batch of them by its method
// (JudgeName), and a method that reads by its params too: a write verb under
// an op key or in an identifier-shaped string there makes it Mutating. A
// batch takes the worst verdict of its elements; a response (to a request
// of the server's) is a Reply. Kind is the method (a batch's first); ID is
// the id's JSON text, quotes and all; a batch has none.
func (c *jsonRPCConversation) Client(msg []byte, binary bool) Judgement {
	if !jsonscan.Valid(msg) {
		return Judgement{Reason: "not json"}
	}
	i := jsonscan.SkipSpace(msg, 0)
	switch msg[i] {
	case '{':
		return c.request(msg)
	case '[':
		return c.batch(msg, i)
	}
	return Judgement{Reason: "not a json-rpc message"}
}

// batch judges the valid JSON array that starts at msg[i].
func (c *jsonRPCConversation) batch(msg []byte, i int) Judgement {
	out := Judgement{Role: Operation}
	n, requests := 0, 0
	i = jsonscan.SkipSpace(msg, i+1)
	for i < len(msg) && msg[i] != ']' {
		if n++; n > maxBatch {
			return Judgement{Kind: out.Kind, Reason: "batch too long"}
		}
		end := jsonscan.ValueEnd(msg, i)
		j := Judgement{Reason: "batch element not an object"}
		if msg[i] == '{' {
			j = c.request(msg[i:end])
		}
		if j.Role != Reply {
			if requests == 0 || j.Verdict.Worse(out.Verdict) != out.Verdict {
				out.Verdict, out.Reason = j.Verdict, j.Reason
			}
			requests++
			if out.Kind == nil {
				out.Kind = j.Kind
			}
		}
		i = jsonscan.SkipSpace(msg, end)
		if i < len(msg) && msg[i] == ',' {
			i = jsonscan.SkipSpace(msg, i+1)
		}
	}
	switch {
	case n == 0:
		return Judgement{Reason: "empty batch"}
	case requests == 0:
		return Judgement{Role: Reply, Reason: "batch of responses"}
	}
	return out
}

// request judges one JSON-RPC object.
func (c *jsonRPCConversation) request(obj []byte) Judgement {
	var v [5][]byte
	if _, ambiguous := fields(obj, jsonRPCMembers, v[:]); ambiguous {
		return Judgement{Reason: "ambiguous members"}
	}
	id := v[rpcID]
	if v[rpcMethod] == nil {
		if v[rpcResult] != nil || v[rpcError] != nil {
			return Judgement{Role: Reply, Reason: "response", ID: id}
		}
		return Judgement{Reason: "no method", ID: id}
	}
	body, ok := jsonscan.StringBody(v[rpcMethod])
	if !ok {
		return Judgement{Reason: "method not a string", ID: id}
	}
	j := Judgement{Role: Operation, Kind: body, ID: id}
	var buf [maxEscaped]byte
	method, ok := decoded(buf[:], body, hasBackslash(body))
	if !ok {
		j.Reason = "escaped method too long"
		return j
	}
	switch string(method) {
	case "rpc.on", "rpc.off":
		j.Verdict, j.Reason = Read, "event subscription"
		return j
	case "rpc.login":
		j.Reason = "login"
		return j
	}
	switch JudgeName(method) {
	case Mutating:
		j.Verdict, j.Reason = Mutating, "write verb"
	case Read:
		j.Verdict, j.Reason = Read, "read verb"
		if v[rpcParams] != nil {
			j.Verdict, j.Reason = argsVerdict(v[rpcParams], c.keys, "write verb in params", "params too big to judge")
		}
	default:
		j.Reason = "unknown method"
	}
	return j
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// Server reads a server message: a response belongs to the request of its
// id. JSON-RPC has no heartbeats; a notification, a request of the server's
// and a batch of responses belong to no one request.
func (c *jsonRPCConversation) Server(msg []byte, binary bool) ServerMessage {
	if !jsonscan.Valid(msg) {
		return ServerMessage{}
	}
	var v [5][]byte
	if ok, _ := fields(msg, jsonRPCMembers, v[:]); !ok || v[rpcMethod] != nil {
		return ServerMessage{}
	}
	if v[rpcResult] == nil && v[rpcError] == nil {
		return ServerMessage{}
	}
	return ServerMessage{ID: v[rpcID]}
}
