package protocol

import (
	"slices"
	"strings"
	"testing"
)

func TestSetNamesAndLookup(t *testing.T) {
	s := NewSet(nil)
	want := []string{"graphql-transport-ws", "graphql-ws", "socket.io", "json-rpc", "json"}
	if got := s.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	for _, name := range want {
		p, err := s.Lookup(name)
		if err != nil || p.Name() != name {
			t.Errorf("Lookup(%q) = %v, %v", name, p, err)
		}
	}
	_, err := s.Lookup("socketio")
	if err == nil || !strings.Contains(err.Error(), "socket.io") || !strings.Contains(err.Error(), `"socketio"`) {
		t.Errorf("Lookup(socketio) error %v, want one naming the bad name and the valid ones", err)
	}
}

func TestSetDetect(t *testing.T) {
	s := NewSet(nil)
	f := func(subprotocol, route, first, want string) {
		t.Helper()
		var msg []byte
		if first != "" {
			msg = []byte(first)
		}
		if got := s.Detect(subprotocol, route, msg).Name(); got != want {
			t.Errorf("Detect(%q, %q, %q) = %s, want %s", subprotocol, route, first, got, want)
		}
	}
	f("graphql-transport-ws", "/graphql", `{"type":"connection_init"}`, "graphql-transport-ws")
	f("graphql-ws", "/graphql", `{"type":"connection_init"}`, "graphql-ws")
	f("graphql-ws", "/subscriptions", "", "graphql-ws")
	f("", "/graphql", `{"type":"connection_init","payload":{}}`, "graphql-transport-ws")
	f("", "/socket.io/?EIO=4&transport=websocket", `40`, "socket.io")
	f("", "/socket.io/?EIO=4&transport=websocket", "", "socket.io")
	f("", "/socket.io", "", "socket.io")
	f("", "/realtime/?EIO=4&transport=websocket&sid=abc", `2probe`, "socket.io")
	f("", "/ws", `40{"token":"x"}`, "socket.io")
	f("", "/ws", `40/admin,`, "socket.io")
	f("", "/ws", `40`, "socket.io")
	f("", "/ws", `400`, "json")
	f("", "/rpc", `{"jsonrpc":"2.0","method":"getUser","id":1}`, "json-rpc")
	f("", "/rpc", ` [ {"jsonrpc":"2.0","method":"getUser","id":1} ]`, "json-rpc")
	f("", "/rpc", `{"jsonrpc":"1.0","method":"getUser","id":1}`, "json")
	f("", "/sync", `{"type":"connect","id":0}`, "json")
	f("", "/sync", "", "json")
	f("", "", `garbage`, "json")
	f("mqtt", "/", `{"type":"connection_init"}`, "json")
}

func TestSetKeyFieldsIsolated(t *testing.T) {
	keys := []string{"kind"}
	s := NewSet(&Options{KeyFields: keys})
	keys[0] = "other"
	p, _ := s.Lookup("json")
	j := p.NewConversation().Client([]byte(`{"kind":"tasks.archive"}`), false)
	if j.Verdict != Mutating {
		t.Errorf("KeyFields changed after NewSet took effect: %+v", j)
	}
}
