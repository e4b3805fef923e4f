package redact

import (
	"net/http"
	"testing"
)

func TestSubprotocolsKeepProtocolNamesAndRedactTokens(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
	tokens := mustNew(t, &Options{Subprotocols: []string{"Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZg"}})
	all := mustNew(t, &Options{RedactSubprotocols: SubprotocolAll, Subprotocols: []string{"sync.v3", "graphql-ws"}})
	none := mustNew(t, &Options{RedactSubprotocols: SubprotocolNone})
	f := func(r *Redactor, in, want string, n int) {
		t.Helper()
		got, gn := r.Header(http.Header{"Sec-Websocket-Protocol": {in}})
		if g := got["Sec-Websocket-Protocol"][0]; g != want || gn != n {
			t.Errorf("%v: Sec-WebSocket-Protocol %q -> %q, %d; want %q, %d", r.protoRule, in, g, gn, want, n)
		}
	}
	// Protocol names stay, by default.
	for _, p := range []string{
		"graphql-transport-ws", "graphql-ws", "subscriptions-transport-ws", "mqtt", "mqttv3.1",
		"wamp.2.json", "wamp.2.msgpack.batched", "v10.stomp, v11.stomp, v12.stomp", "sync.v3",
		"actioncable-v1-json, actioncable-unsupported", "v4.channel.k8s.io, base64.channel.k8s.io",
		"v1.json.example.com", "ocpp2.0.1", "soap, wamp", "access_token", "Authorization",
	} {
		f(tokens, p, p, 0)
	}
	// Tokens go: by shape, by looks, after a credential's name.
	f(tokens, "graphql-ws, "+jwt, "graphql-ws, "+M, 1)
	f(tokens, "bearer."+jwt, M, 1)
	f(tokens, "base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklp, v4.channel.k8s.io",
		M+", v4.channel.k8s.io", 1)
	f(tokens, "sync.v3, 550e8400-e29b-41d4-a716-446655440000", "sync.v3, "+M, 1)
	f(tokens, "9f86d081884c7d659a2feaa0c55ad015", M, 1)
	f(tokens, "access_token, abc", "access_token, "+M, 1)
	f(tokens, "Authorization,Bearer ,x1, sync.v3", "Authorization,Bearer ,"+M+", sync.v3", 1)
	f(tokens, "jwt, t0k3n, graphql-ws", "jwt, "+M+", graphql-ws", 1)
	f(tokens, "Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZg", "Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZg", 0) // kept by name
	// All: every entry not kept; none: nothing.
	f(all, "sync.v3", "sync.v3", 0)
	f(all, "sync.v3, bearer.eyJhbGciOi", "sync.v3, "+M, 1)
	f(all, "access_token,eyJ ,graphql-ws", M+","+M+" ,graphql-ws", 2)
	f(all, "SYNC.V3", M, 1) // protocol names are case-sensitive
	f(all, " , ", " , ", 0)
	f(none, "access_token, "+jwt, "access_token, "+jwt, 0)

	// The accepted subprotocol: by its looks, or as an offered entry that
	// was replaced.
	offered := []string{"access_token, t0k3n, graphql-ws"}
	for _, c := range []struct {
		r              *Redactor
		accepted, want string
	}{
		{tokens, "graphql-ws", "graphql-ws"},
		{tokens, "t0k3n", M},
		{tokens, jwt, M},
		{tokens, "access_token", "access_token"},
		{all, "bearer.x", M},
		{all, "graphql-ws", "graphql-ws"},
		{none, "t0k3n", "t0k3n"},
		{tokens, "", ""},
	} {
		if got := c.r.Subprotocol(c.accepted, offered); got != c.want {
			t.Errorf("%v: Subprotocol(%q) = %q, want %q", c.r.protoRule, c.accepted, got, c.want)
		}
	}
}

func TestSubprotocolRuleText(t *testing.T) {
	for _, c := range []struct {
		text string
		want SubprotocolRule
	}{{"tokens", SubprotocolTokens}, {"all", SubprotocolAll}, {"none", SubprotocolNone}, {"true", SubprotocolAll}, {"false", SubprotocolTokens}} {
		var r SubprotocolRule
		if err := r.UnmarshalText([]byte(c.text)); err != nil || r != c.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", c.text, r, err, c.want)
		}
	}
	var r SubprotocolRule
	if err := r.UnmarshalText([]byte("some")); err == nil {
		t.Error("UnmarshalText(some): no error")
	}
	if b, _ := SubprotocolAll.MarshalText(); string(b) != "all" {
		t.Errorf("MarshalText = %q", b)
	}
}
