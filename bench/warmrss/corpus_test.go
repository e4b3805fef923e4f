package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func TestWriteCorpusWritesWholeSessionsInTapSizedBatches(t *testing.T) {
	const n, q, pad = 3, 60, 20000
	dir := t.TempDir()
	ctx := context.Background()
	st, err := writeCorpus(ctx, dir, n, q, pad, 7, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bySession := map[session.ID][]session.Event{}
	records, events := 0, 0
	var payload int64
	for {
		r, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		records++
		if len(r.Data) > stream.MaxRecordBytes {
			t.Errorf("record of %d bytes, over the stream's limit", len(r.Data))
		}
		evs, err := session.DecodeBatch(r.Data, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			bySession[e.Session] = append(bySession[e.Session], e)
			events++
			payload += int64(len(e.Payload))
		}
	}
	if len(bySession) != n || st.Sessions != n {
		t.Fatalf("%d sessions read, %d written; want %d", len(bySession), st.Sessions, n)
	}
	if records != st.Records || events != st.Events || payload != st.PayloadBytes {
		t.Errorf("read %d records, %d events, %d payload bytes; stats say %d, %d, %d",
			records, events, payload, st.Records, st.Events, st.PayloadBytes)
	}
	if records < 3*n {
		t.Errorf("%d records for %d sessions of about %d KiB: not cut into batches", records, n, st.PayloadBytes/n>>10)
	}
	for id, evs := range bySession {
		if evs[0].Kind != session.KindOpen || evs[len(evs)-1].Kind != session.KindClose {
			t.Errorf("session %s: does not run from open to close", id)
		}
		clients := 0
		for i, e := range evs {
			if e.Seq != uint64(i) {
				t.Fatalf("session %s: event %d has seq %d", id, i, e.Seq)
			}
			if e.Kind != session.KindFrame {
				continue
			}
			if e.Direction == session.ClientToServer {
				clients++
				continue
			}
			var m struct {
				Pad string `json:"pad"`
			}
			if err := json.Unmarshal(e.Payload, &m); err != nil || len(m.Pad) != pad {
				t.Fatalf("session %s: server message %.60q: pad of %d letters, err %v", id, e.Payload, len(m.Pad), err)
			}
		}
		if clients != q+1 {
			t.Errorf("session %s: %d client messages, want the connect and %d", id, clients, q)
		}
	}
}

func TestPadJSON(t *testing.T) {
	f := func(msg string, n int, want string) {
		t.Helper()
		got := string(padJSON([]byte(msg), n, rand.New(rand.NewPCG(1, 2))))
		if want != "" {
			if got != want {
				t.Errorf("padJSON(%q, %d) = %q, want %q", msg, n, got, want)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("padJSON(%q, %d) = %q: %v", msg, n, got, err)
		}
		if p, _ := m["pad"].(string); len(p) != n || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			t.Errorf("padJSON(%q, %d): pad %q", msg, n, p)
		}
	}
	f(`{}`, 5, "")
	f(`{"type":"result","id":3}`, 1, "")
	f(`{"type":"result","id":3}`, 1000, "")
	f(`[1,2]`, 10, `[1,2]`)
	f(`pong`, 10, `pong`)
}
