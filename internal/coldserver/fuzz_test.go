package coldserver

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// FuzzMessage sends arbitrary client messages after a connect and checks
// that the session survives them: a ping sent next is still answered.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"query","id":1,"op":"tasks.list","params":{"filter":{"a":1}},"subscribe":true}`,
		`{"type":"query","id":"x","op":"tasks.get","params":null}`,
		`{"type":"mutate","id":2}`,
		`{"type":"ping","id":-1e400}`,
		`{"type":"query","id":1e999,"op":"tasks.list"}`,
		`{"type":"connect"}`,
		`{"type":1}`,
		`{"type":"query","id":[],"op":"tasks.list","params":[1]}`,
		`{"type":"query","id":3,"op":"tasks.list","params":{"filter":null}}`,
		`"\ud800"`,
		``,
		`nul`,
	} {
		f.Add([]byte(s))
	}
	s := New(&Options{Scale: 0.1, UpdateInterval: -1})
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	var c *websocket.Conn
	defer func() {
		if c != nil {
			c.CloseNow()
		}
	}()
	f.Fuzz(func(t *testing.T, msg []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c == nil {
			var err error
			c, _, err = websocket.Dial(ctx, url, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"connect","id":0}`)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Read(ctx); err != nil {
				t.Fatalf("connect: %v", err)
			}
		}
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"fuzz-ping"}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("session ended after %q: %v", msg, err)
			}
			if string(b) == `{"type":"pong","id":"fuzz-ping"}` {
				return
			}
		}
	})
}
