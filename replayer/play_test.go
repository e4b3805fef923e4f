package replayer_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/idtarget"
	"github.com/preheatdev/preheat/internal/pipenet"
	"github.com/preheatdev/preheat/replayer"
)

// deaf accepts a websocket and never reads from it, until done is closed.
type deaf struct{ done chan struct{} }

func (d deaf) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	<-d.done
}

// TestReplayEndsAWriteTheTargetDoesNotRead replays, over pipes that hold
// no unread bytes, to a target that never reads: the first write hangs, and
// the session fails as a write within twice ResponseTimeout.
func TestReplayEndsAWriteTheTargetDoesNotRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		target := deaf{done: make(chan struct{})}
		client := pipenet.Serve(t, target)
		defer close(target.done)
		r := newReplayer(t, "ws://pod/", replayer.Options{Rate: -1, ResponseTimeout: time.Second, HTTPClient: client})
		big := strings.Repeat("x", 64<<10)
		evs := idtarget.Session(time.Millisecond, "1 hold", `2 hold`)
		evs[1].Payload = []byte(`{"op":"tasks.get","id":1,"pad":"` + big + `"}`)
		res := r.Replay(t.Context(), evs)
		if res.Failure != "write" || res.Duration < time.Second || res.Duration > 2*time.Second {
			t.Fatalf("%+v: want a write failure after 1 to 2s", res)
		}
	})
}
