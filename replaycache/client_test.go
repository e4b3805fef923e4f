package replaycache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
)

// hostileCache serves handler as a cache would: every request is answered
// by it, as an event stream unless it sets another content type.
func hostileCache(t *testing.T, opts *replaycache.ClientOptions, handler func(w http.ResponseWriter, r *http.Request)) *replaycache.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", replaycache.BatchesContentType)
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := replaycache.NewClient(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allocated returns the bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func frameHeader(typ byte, n uint64) []byte {
	return binary.AppendUvarint([]byte{typ}, n)
}

// A server that declares a frame longer than MaxFrameBytes gets an error
// naming the bound, before the client allocates for it.
func TestClientRefusesFramesLongerThanMaxFrameBytes(t *testing.T) {
	c := hostileCache(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Write(frameHeader(1, 1<<40))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // and never sends it
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	n := allocated(func() {
		var r *replaycache.SessionReader
		if r, err = c.Session(ctx, session.NewID(), false); err != nil {
			return
		}
		defer r.Close()
		_, err = r.Next()
		if _, again := r.NextBatch(); !errors.Is(again, replaycache.ErrTooLarge) {
			t.Errorf("the reader went on after ErrTooLarge: %v", again)
		}
	})
	if !errors.Is(err, replaycache.ErrTooLarge) || !strings.Contains(err.Error(), "MaxFrameBytes") {
		t.Fatalf("err = %v, want ErrTooLarge naming MaxFrameBytes", err)
	}
	if n > 4<<20 {
		t.Errorf("reading a declared 1 TiB frame allocated %d KiB", n>>10)
	}
}

// A frame's buffer grows with the bytes that arrive, not with the length
// the server declared.
func TestClientBuffersOnlyTheFrameBytesThatArrive(t *testing.T) {
	c := hostileCache(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Write(frameHeader(1, session.MaxBatchBytes)) // within MaxFrameBytes
		w.Write([]byte("a few bytes, then the end"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	n := allocated(func() {
		var r *replaycache.SessionReader
		if r, err = c.Session(ctx, session.NewID(), false); err != nil {
			return
		}
		defer r.Close()
		_, err = r.NextBatch()
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if n > 4<<20 {
		t.Errorf("a 16 MiB frame of which 25 bytes came allocated %d KiB", n>>10)
	}
}

// A session that never ends stops at MaxSessionBytes with an error, the
// memory gathered for it bounded.
func TestClientStopsSessionsPastMaxSessionBytes(t *testing.T) {
	id := session.NewID()
	// The batches are encoded before the measurement, which counts every
	// allocation in the process, the server's too: 8 MiB of session, twice
	// the bound, stands for an endless one.
	payload := make([]byte, 64<<10)
	var batches [][]byte
	for seq := uint64(1); seq <= 128; seq++ {
		b, err := session.AppendBatch(nil, []session.Event{{Session: id, Seq: seq, Kind: session.KindFrame,
			Direction: session.ServerToClient, Opcode: session.Binary, Payload: payload}})
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	c := hostileCache(t, &replaycache.ClientOptions{MaxSessionBytes: 4 << 20}, func(w http.ResponseWriter, r *http.Request) {
		for _, b := range batches {
			w.Write(frameHeader(1, uint64(len(b))))
			if _, err := w.Write(b); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	n := allocated(func() {
		var r *replaycache.SessionReader
		if r, err = c.Session(ctx, id, true); err != nil {
			return
		}
		defer r.Close()
		_, err = r.Next()
	})
	if !errors.Is(err, replaycache.ErrTooLarge) || !strings.Contains(err.Error(), "MaxSessionBytes") {
		t.Fatalf("err = %v, want ErrTooLarge naming MaxSessionBytes", err)
	}
	if n > 32<<20 {
		t.Errorf("an endless session allocated %d MiB under a 4 MiB MaxSessionBytes", n>>20)
	}
}

// A List answer that never ends stops at MaxSessionBytes.
func TestClientBoundsJSONAnswers(t *testing.T) {
	c := hostileCache(t, &replaycache.ClientOptions{MaxSessionBytes: 1 << 20}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"sessions":[{"route":"`)
		chunk := strings.Repeat("a", 32<<10)
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.List(ctx, replaycache.Filter{}); !errors.Is(err, replaycache.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// roundTripper answers every request with body as an event stream.
type roundTripper []byte

func (b roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Request: req, Header: http.Header{"Content-Type": {replaycache.BatchesContentType}},
		Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// FuzzSessionReader reads arbitrary bytes as a cache's event stream: no
// input panics, none makes one read allocate much more than a frame and a
// decoded batch, and no session gathered exceeds MaxSessionBytes.
func FuzzSessionReader(f *testing.F) {
	evs := corpusSessions(5, time.Now(), 1, 3)[0]
	b, err := session.AppendBatch(nil, evs)
	if err != nil {
		f.Fatal(err)
	}
	var good []byte
	good = append(frameHeader(5, 16+4), evs[0].Session[:]...)
	good = append(good, 3, 'a', 'b', 'c')
	good = append(append(good, frameHeader(1, uint64(len(b)))...), b...)
	good = append(good, frameHeader(3, 0)...)
	good = append(append(good, frameHeader(2, 17)...), evs[0].Session[:]...)
	good = append(good, 1)
	f.Add(good)
	f.Add(frameHeader(1, 1<<40))
	f.Add(append(frameHeader(4, 5), "oops!"...))
	const maxFrame, maxSession = 64 << 10, 256 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := replaycache.NewClient("http://cache", &replaycache.ClientOptions{HTTPClient: &http.Client{Transport: roundTripper(data)},
			MaxFrameBytes: maxFrame, MaxSessionBytes: maxSession})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Session(context.Background(), session.NewID(), false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s, err := r.Next()
			runtime.ReadMemStats(&after)
			if n, limit := after.TotalAlloc-before.TotalAlloc, uint64(session.MaxDecodeBytes+maxSession*4+len(data)*8+1<<20); n > limit {
				t.Fatalf("one Next allocated %d bytes, more than %d", n, limit)
			}
			if err != nil {
				return
			}
			size := 0
			for _, e := range s.Events {
				size += len(e.Payload)
			}
			if size > maxSession {
				t.Fatalf("a session of %d payload bytes", size)
			}
		}
	})
}
