package pipenet_test

import (
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/preheatdev/preheat/internal/pipenet"
)

func TestServeInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := pipenet.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Hour) // fake time: returns at once
			io.WriteString(w, r.Host)
		}))
		resp, err := c.Get("http://any.host/path")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "any.host" || time.Since(start) != time.Hour {
			t.Fatalf("got %q after %v, want the host after exactly an hour of fake time", b, time.Since(start))
		}
	})
}

func TestClosedListenerRefusesDials(t *testing.T) {
	l := pipenet.NewListener()
	l.Close()
	l.Close()
	if _, err := l.DialContext(t.Context(), "tcp", "x"); err == nil {
		t.Fatal("dial to a closed listener succeeded")
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("accept on a closed listener succeeded")
	}
}
