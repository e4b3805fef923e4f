package protocol

import (
	"fmt"
	"strings"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// Options configures a Set. Nil is usable.
type Options struct {
	// KeyFields are JSON keys that carry an operation name in plain JSON
	// messages, tried before KeyFieldsDefault (the operator's
	// --kind-field). They also widen the keys searched for write verbs in
	// the arguments of Socket.IO events and JSON-RPC params. Default none.
	KeyFields []string
}

// A Set is the built-in profiles, configured. It is safe for concurrent use.
type Set struct {
	profiles []Profile // in the order of Names
	plain    Profile
	rpc      Profile
	sio      Profile
	gql      Profile
	legacy   Profile
}

// NewSet returns the built-in profiles configured by opts.
func NewSet(opts *Options) *Set {
	var extra []string
	if opts != nil {
		extra = opts.KeyFields
	}
	keys := newOpKeys(extra)
	s := &Set{
		gql:    &graphQLProfile{},
		legacy: &graphQLProfile{legacy: true},
		sio:    &socketIOProfile{keys: keys},
		rpc:    &jsonRPCProfile{keys: keys},
		plain:  &jsonProfile{keys: keys},
	}
	s.profiles = []Profile{s.gql, s.legacy, s.sio, s.rpc, s.plain}
	return s
}

// Names returns the profiles' names: "graphql-transport-ws", "graphql-ws",
// "socket.io", "json-rpc" and "json".
func (s *Set) Names() []string {
	names := make([]string, len(s.profiles))
	for i, p := range s.profiles {
		names[i] = p.Name()
	}
	return names
}

// Lookup returns the profile of a name, as Names gives it.
func (s *Set) Lookup(name string) (Profile, error) {
	for _, p := range s.profiles {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("unknown protocol %q: valid are %s", name, strings.Join(s.Names(), ", "))
}

// Detect picks the profile of a recorded session from its negotiated
// subprotocol, its route (request path and query, such as
// "/socket.io/?EIO=4&transport=websocket") and its first client message,
// which may be nil. In order: the subprotocol graphql-transport-ws or
// graphql-ws names its profile; a route under /socket.io/ or with an EIO
// query parameter, or a first message that is a Socket.IO CONNECT ("40",
// "40{...}", "40/admin,...") or an Engine.IO probe ("2probe"), is
// Socket.IO; a first message that is a JSON-RPC 2.0 object or batch is
// JSON-RPC; a first message {"type":"connection_init",...} with no
// subprotocol is graphql-transport-ws. Anything else is plain JSON: Detect
// never returns nil.
func (s *Set) Detect(subprotocol, route string, first []byte) Profile {
	switch strings.TrimSpace(subprotocol) {
	case "graphql-transport-ws":
		return s.gql
	case "graphql-ws":
		return s.legacy
	}
	if socketIORoute(route) || socketIOOpening(first) {
		return s.sio
	}
	if jsonRPCMessage(first) {
		return s.rpc
	}
	if subprotocol == "" && connectionInit(first) {
		return s.gql
	}
	return s.plain
}

// socketIORoute reports whether a route is Engine.IO's: its path under
// /socket.io/ (the default path) or an EIO query parameter (any path).
func socketIORoute(route string) bool {
	path, query, _ := strings.Cut(route, "?")
	if strings.Contains(path+"/", "/socket.io/") {
		return true
	}
	for param := range strings.SplitSeq(query, "&") {
		if k, v, _ := strings.Cut(param, "="); k == "EIO" && (v == "3" || v == "4") {
			return true
		}
	}
	return false
}

// socketIOOpening reports whether a first client message is a Socket.IO
// CONNECT or an Engine.IO upgrade probe.
func socketIOOpening(first []byte) bool {
	if string(first) == "2probe" {
		return true
	}
	if len(first) < 2 || first[0] != eioMessage || first[1] != '0' {
		return false
	}
	return len(first) == 2 || first[2] == '{' || first[2] == '/'
}

// jsonRPCMessage reports whether a message is a JSON-RPC 2.0 object, or a
// batch whose first element is one.
func jsonRPCMessage(msg []byte) bool {
	if !jsonscan.Valid(msg) {
		return false
	}
	i := jsonscan.SkipSpace(msg, 0)
	if msg[i] == '[' {
		i = jsonscan.SkipSpace(msg, i+1)
		msg = msg[i:jsonscan.ValueEnd(msg, i)]
	}
	var v [1][]byte
	ok, _ := fields(msg, []string{"jsonrpc"}, v[:])
	return ok && string(v[0]) == `"2.0"`
}

// connectionInit reports whether a message is a GraphQL websocket
// connection_init.
func connectionInit(msg []byte) bool {
	if !jsonscan.Valid(msg) {
		return false
	}
	var v [1][]byte
	ok, _ := fields(msg, []string{"type"}, v[:])
	return ok && string(v[0]) == `"connection_init"`
}
