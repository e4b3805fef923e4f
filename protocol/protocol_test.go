package protocol

import (
	"fmt"
	"testing"
)

func TestVerdictWorse(t *testing.T) {
	order := []Verdict{Read, Unknown, Mutating}
	for i, v := range order {
		for k, w := range order {
			want := order[max(i, k)]
			if got := v.Worse(w); got != want {
				t.Errorf("%v.Worse(%v) = %v, want %v", v, w, got, want)
			}
		}
	}
}

func BenchmarkJudge(b *testing.B) {
	s := NewSet(nil)
	bench := func(name, profile string, msg []byte) {
		p, err := s.Lookup(profile)
		if err != nil {
			b.Fatal(err)
		}
		conv := p.NewConversation()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				conv.Client(msg, false)
			}
		})
	}
	bench("json", "json", []byte(syncQuery))
	bench("graphql", "graphql-transport-ws", []byte(`{"id":"1","type":"subscribe","payload":{"query":"query GetTasks($project: ID!) { tasks(project: $project, first: 50) { id title done assignee { id name } } }","operationName":"GetTasks","variables":{"project":"p-1"}}}`))
	bench("socketio", "socket.io", []byte(`420["getTask",{"id":1}]`))
	bench("jsonrpc", "json-rpc", []byte(`{"jsonrpc":"2.0","method":"getUser","params":{"id":1},"id":1}`))
}

func ExampleSet_Detect() {
	s := NewSet(nil)
	p := s.Detect("", "/socket.io/?EIO=4&transport=websocket", []byte("40"))
	conv := p.NewConversation()
	for _, msg := range []string{`40`, `420["getTask",{"id":1}]`, `42["tasks:update",{"id":1}]`, `3`} {
		j := conv.Client([]byte(msg), false)
		fmt.Printf("%s: %s %s %q id %q (%s)\n", msg, j.Role, j.Verdict, j.Kind, j.ID, j.Reason)
	}
	// Output:
	// 40: control read "" id "" (socket.io control)
	// 420["getTask",{"id":1}]: operation read "getTask" id "0" (read verb)
	// 42["tasks:update",{"id":1}]: operation mutating "tasks:update" id "" (write verb)
	// 3: reply unknown "" id "" (engine.io pong)
}

func ExampleJudgeName() {
	for _, name := range []string{"getUpdates", "findOneAndUpdate", "user.me", "tasks.subtasks"} {
		fmt.Println(name, Words(name), JudgeName([]byte(name)))
	}
	// Output:
	// getUpdates [get updates] read
	// findOneAndUpdate [find one and update] mutating
	// user.me [user me] read
	// tasks.subtasks [tasks subtasks] unknown
}
