package replayer

import (
	"testing"

	"github.com/preheatdev/preheat/protocol"
)

// previousDefaultRules are the safety rules the replayer applied by default
// before protocol profiles (up to session 11): the baseline that judging a
// message is measured against.
var previousDefaultRules = []string{
	"type=mutate,write,delete",
	`type~(?i)(^|[._/-])(create|update|delete|remove|write|mutate|insert|upsert|set|put|patch|post|add|move|archive|send)($|[._/-])`,
	`op~(?i)(^|[._/-])(create|update|delete|remove|write|mutate|insert|upsert|set|put|patch|post|add|move|archive|send)($|[._/-])`,
	`method~(?i)(^|[._/-])(create|update|delete|remove|write|mutate|insert|upsert|set|put|patch|post|add|move|archive|send)($|[._/-])`,
	`action~(?i)(^|[._/-])(create|update|delete|remove|write|mutate|insert|upsert|set|put|patch|post|add|move|archive|send)($|[._/-])`,
}

// judgeMessages are one message of each protocol, as real clients send them.
var judgeMessages = []struct{ name, profile, msg string }{
	{"json", "json", `{"type":"query","id":4127,"op":"tasks.list","params":{"workspace":1000012,"object":48211,"fields":["name","assignee","due_on","tags"]}}`},
	{"graphql", "graphql-transport-ws", `{"id":"3","type":"subscribe","payload":{"query":"query TaskList($first: Int) { tasks(first: $first) { id title done } }","operationName":"TaskList","variables":{"first":10}}}`},
	{"socketio", "socket.io", `420["tasks:list",{"workspace":1000012,"limit":20}]`},
	{"jsonrpc", "json-rpc", `{"jsonrpc":"2.0","method":"tasks.list","params":{"workspace":1000012},"id":17}`},
}

// BenchmarkJudge measures the verdict on one client message: "rules" is the
// previous default rule check (top-level fields against regular
// expressions), "profile" the protocol profile's judgement as the replayer
// makes it (the operator's rules, none here, included).
func BenchmarkJudge(b *testing.B) {
	rules := mustRules(previousDefaultRules...)
	r, err := New("ws://127.0.0.1:1", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range judgeMessages {
		msg := []byte(m.msg)
		b.Run(m.name+"/rules", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				for i := range rules {
					_, _ = rules[i].matches(msg)
				}
			}
		})
		p, err := r.profiles.Lookup(m.profile)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(m.name+"/profile", func(b *testing.B) {
			conv := p.NewConversation()
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				_ = conv.Client(msg, false)
			}
		})
	}
}

// TestJudgingPlainJSONDoesNotAllocate: the profile's verdict on a plain
// JSON message, as the replayer asks for it, allocates nothing.
func TestJudgingPlainJSONDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items)")
	}
	r, err := New("ws://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.profiles.Lookup("json")
	if err != nil {
		t.Fatal(err)
	}
	conv := p.NewConversation()
	msg := []byte(judgeMessages[0].msg)
	var j protocol.Judgement
	if n := testing.AllocsPerRun(100, func() { j = conv.Client(msg, false) }); n != 0 {
		t.Fatalf("%v allocations a message", n)
	}
	if j.Verdict != protocol.Read || string(j.Kind) != "tasks.list" {
		t.Fatalf("judged %+v", j)
	}
}
