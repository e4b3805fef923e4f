package capture_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// A tap in front of a websocket server, recording into a directory log.
func ExampleNewTap() {
	ctx := context.Background()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Read(ctx)
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"connected"}`))
		c.Read(ctx) // until the client closes
	}))
	defer upstream.Close()

	dir, _ := os.MkdirTemp("", "preheat-example-")
	defer os.RemoveAll(dir)
	prod, _ := dirlog.NewProducer(dir, nil)
	rec, _ := capture.NewRecorder(prod, capture.DefaultPolicy(), nil)
	tap, _ := capture.NewTap(upstream.URL, rec, nil)
	front := httptest.NewServer(tap)

	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/sync", nil)
	if err != nil {
		panic(err)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"connect","token":"s3cr3t"}`))
	c.Read(ctx)
	c.Close(websocket.StatusNormalClosure, "bye")

	// Shut down in order: the proxy, then capture, then the stream.
	front.Close()
	tap.Shutdown(ctx)
	rec.Close(ctx)
	prod.Close(ctx)

	cons, _ := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, nil)
	defer cons.Close()
	for {
		r, err := cons.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		evs, _ := session.DecodeBatch(r.Data, nil)
		for _, e := range evs {
			switch e.Kind {
			case session.KindOpen:
				fmt.Println(e.Seq, "open", e.Open.Route)
			case session.KindFrame:
				fmt.Println(e.Seq, e.Direction, string(e.Payload))
			case session.KindClose:
				fmt.Println(e.Seq, "close by", e.ClosedBy, e.Code, e.Reason)
			}
		}
	}
	// Output:
	// 0 open /sync
	// 1 client {"type":"connect","token":"__preheat_redacted__"}
	// 2 server {"type":"connected"}
	// 3 close by client 1000 bye
}
