package protocol

import (
	"encoding/json"
	"testing"
)

var jsonRPCCases = []judgeCase{
	{msg: `{"jsonrpc":"2.0","method":"getUser","params":{"id":1},"id":1}`, verdict: Read, kind: "getUser", id: "1"},
	{msg: `{"jsonrpc":"2.0","method":"tasks.update","params":{"id":1,"done":true},"id":"abc"}`, verdict: Mutating, kind: "tasks.update", id: `"abc"`},
	{msg: `{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x407d73d8a49eeb85d32cf465507dd71d507100c1","latest"],"id":2}`, verdict: Read, kind: "eth_getBalance", id: "2"},
	{msg: `{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0xd46e"],"id":3}`, verdict: Mutating, kind: "eth_sendRawTransaction", id: "3"},
	{msg: `{"jsonrpc":"2.0","method":"query","params":{"op":"tasks.delete"},"id":4}`, verdict: Mutating, kind: "query", id: "4"},
	{msg: `{"jsonrpc":"2.0","method":"frobnicate","id":5}`, kind: "frobnicate", id: "5"},
	// Notifications have no id.
	{msg: `{"jsonrpc":"2.0","method":"markRead","params":[7]}`, verdict: Mutating, kind: "markRead"},
	{msg: `{"jsonrpc":"2.0","method":"subscribe","params":["tasks"]}`, verdict: Read, kind: "subscribe"},
	// rpc-websockets.
	{msg: `{"jsonrpc":"2.0","method":"rpc.on","params":["taskChanged"],"id":6}`, verdict: Read, kind: "rpc.on", id: "6"},
	{msg: `{"jsonrpc":"2.0","method":"rpc.off","params":["taskChanged"],"id":7}`, verdict: Read, kind: "rpc.off", id: "7"},
	{msg: `{"jsonrpc":"2.0","method":"rpc.login","params":{"user":"u","password":"p"},"id":8}`, kind: "rpc.login", id: "8"},
	// Batches take their worst.
	{msg: `[{"jsonrpc":"2.0","method":"getUser","id":1},{"jsonrpc":"2.0","method":"listProjects","id":2}]`, verdict: Read, kind: "getUser"},
	{msg: `[{"jsonrpc":"2.0","method":"getUser","id":1},{"jsonrpc":"2.0","method":"deleteUser","id":2}]`, verdict: Mutating, kind: "getUser"},
	{msg: `[{"jsonrpc":"2.0","method":"getUser","id":1},{"jsonrpc":"2.0","method":"frob","id":2}]`, kind: "getUser"},
	{msg: `[{"jsonrpc":"2.0","method":"getUser","id":1},3]`, kind: "getUser"},
	{msg: `[]`},
	// Responses to the server's requests are replies.
	{msg: `{"jsonrpc":"2.0","result":{"ok":true},"id":9}`, role: Reply, id: "9"},
	{msg: `{"jsonrpc":"2.0","error":{"code":-32601,"message":"no"},"id":10}`, role: Reply, id: "10"},
	{msg: `[{"jsonrpc":"2.0","result":1,"id":1}]`, role: Reply},
	// Malformed or ambiguous.
	{msg: `{"jsonrpc":"2.0","method":"getUser","Method":"deleteUser","id":11}`},
	{msg: `{"jsonrpc":"2.0","method":"getUser","method":"deleteUser","id":12}`},
	{msg: `{"jsonrpc":"2.0","method":7,"id":13}`, id: "13"},
	{msg: `{"jsonrpc":"2.0","id":14}`, id: "14"},
	{msg: `"getUser"`},
	{msg: `{"jsonrpc":"2.0","method":"getUser"`},
}

func TestJSONRPCJudgesMessages(t *testing.T) {
	checkJudgements(t, lookup(t, "json-rpc"), jsonRPCCases)
}

func TestJSONRPCServerMessages(t *testing.T) {
	conv := lookup(t, "json-rpc").NewConversation()
	f := func(msg string, id string) {
		t.Helper()
		sm := conv.Server([]byte(msg), false)
		if sm.Heartbeat || sm.Answer != nil || string(sm.ID) != id {
			t.Errorf("Server(%q) = %+v, want id %q only", msg, sm, id)
		}
	}
	f(`{"jsonrpc":"2.0","result":{"name":"x"},"id":1}`, "1")
	f(`{"jsonrpc":"2.0","error":{"code":-32600,"message":"bad"},"id":"abc"}`, `"abc"`)
	f(`{"jsonrpc":"2.0","method":"taskChanged","params":{}}`, "")
	f(`{"jsonrpc":"2.0","method":"confirm","params":{},"id":5}`, "")
	f(`{"notification":"taskChanged","params":[]}`, "")
	f(`[{"jsonrpc":"2.0","result":1,"id":1}]`, "")
	f(`junk`, "")
}

func FuzzJSONRPC(f *testing.F) {
	for _, c := range jsonRPCCases {
		f.Add([]byte(c.msg))
	}
	p := lookup(f, "json-rpc")
	f.Fuzz(func(t *testing.T, msg []byte) {
		conv := p.NewConversation()
		j := conv.Client(msg, false)
		conv.Server(msg, false)
		if j.Verdict != Read {
			return
		}
		// Whatever method a parser reads must not write.
		var one struct{ Method string }
		var batch []struct{ Method string }
		if json.Unmarshal(msg, &one) == nil && JudgeName([]byte(one.Method)) == Mutating {
			t.Fatalf("Client(%q) = Read (%s), but method %q writes", msg, j.Reason, one.Method)
		}
		if json.Unmarshal(msg, &batch) == nil {
			for _, r := range batch {
				if JudgeName([]byte(r.Method)) == Mutating {
					t.Fatalf("Client(%q) = Read (%s), but method %q writes", msg, j.Reason, r.Method)
				}
			}
		}
	})
}
