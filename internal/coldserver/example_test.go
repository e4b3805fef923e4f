package coldserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/coldserver"
)

func Example() {
	s := coldserver.New(&coldserver.Options{Scale: 0.1})
	defer s.Close()
	hs := httptest.NewServer(s)
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/sync",
		&websocket.DialOptions{Subprotocols: []string{"sync.v3"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	for _, msg := range []string{
		`{"type":"connect","id":0,"user":1001}`,
		`{"type":"mutate","id":1,"op":"tasks.update"}`,
		`{"type":"ping","id":2}`,
	} {
		c.Write(ctx, websocket.MessageText, []byte(msg))
		_, reply, err := c.Read(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if strings.Contains(string(reply), `"connected"`) {
			reply = []byte(`{"type":"connected",...}`)
		}
		fmt.Println(string(reply))
	}
	fmt.Println("mutations:", s.Mutations(), "subprotocol:", c.Subprotocol())
	// Output:
	// {"type":"connected",...}
	// {"type":"ack","id":1}
	// {"type":"pong","id":2}
	// mutations: 1 subprotocol: sync.v3
}
