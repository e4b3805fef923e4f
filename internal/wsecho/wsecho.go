// Package wsecho serves a websocket echo peer on loopback for tests. Every
// message comes back as it was sent, text as text and binary as binary,
// until the client closes.
//
// It is the one echo upstream the tests of several packages share; peers
// with behaviour of their own (replies after a delay, a record of what
// arrived, protocol rules) stay with the tests that need them. Start serves
// on 127.0.0.1 until the test ends; the test's cleanup closes the server and
// every connection still open and waits for their handlers, so that a test
// leaves no goroutine behind.
package wsecho

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// Options configure the echo server. A nil *Options means the defaults.
type Options struct {
	// Subprotocols are the subprotocols accepted, in order of preference.
	// Default none: the handshake negotiates no subprotocol.
	Subprotocols []string
	// CompressionMode is the permessage-deflate mode negotiated with a
	// client that offers it. Default websocket.CompressionDisabled.
	CompressionMode websocket.CompressionMode
	// CompressionThreshold is the size, in bytes, from which a message is
	// compressed. Default 0: coder/websocket's default for the mode.
	CompressionThreshold int
	// ReadLimit is the largest message echoed, in bytes; a larger one ends
	// its connection. Default 8 MiB.
	ReadLimit int64
	// TLS serves https (wss) with httptest's certificate, which the
	// returned server's Client trusts. Default false: plain http (ws).
	TLS bool
	// FailOnAcceptError fails the test when a request cannot be accepted
	// as a websocket upgrade. Default false: the request gets the error
	// response websocket.Accept writes and the test goes on, as it must
	// when a proxy under test sends plain requests through.
	FailOnAcceptError bool
}

// Start serves an echo on a loopback port until tb ends and returns the
// server: its URL is http:// (https:// with Options.TLS); dial it as ws://
// (wss://) on any path.
func Start(tb testing.TB, opts *Options) *httptest.Server {
	tb.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 8 << 20
	}
	e := &echo{tb: tb, opts: o, conns: make(map[*websocket.Conn]struct{})}
	var srv *httptest.Server
	if o.TLS {
		srv = httptest.NewTLSServer(e)
	} else {
		srv = httptest.NewServer(e)
	}
	tb.Cleanup(func() {
		srv.Close() // waits for requests, but not for hijacked connections
		e.close()
	})
	return srv
}

// echo is the handler of one Start. It tracks its connections because
// httptest.Server.Close does not wait for hijacked ones.
type echo struct {
	tb   testing.TB
	opts Options

	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	closed   bool
	handlers sync.WaitGroup
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		http.Error(w, "echo closed", http.StatusServiceUnavailable)
		return
	}
	e.handlers.Add(1)
	e.mu.Unlock()
	defer e.handlers.Done()

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:         e.opts.Subprotocols,
		CompressionMode:      e.opts.CompressionMode,
		CompressionThreshold: e.opts.CompressionThreshold,
	})
	if err != nil {
		if e.opts.FailOnAcceptError {
			e.tb.Errorf("wsecho: accept: %v", err)
		}
		return
	}
	defer c.CloseNow()
	if !e.track(c) {
		return
	}
	defer e.untrack(c)
	c.SetReadLimit(e.opts.ReadLimit)
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// track adds c to the open connections, or reports false once the echo
// is closed.
func (e *echo) track(c *websocket.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.conns[c] = struct{}{}
	return true
}

func (e *echo) untrack(c *websocket.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, c)
}

// close ends the connections still open and waits for their handlers.
func (e *echo) close() {
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		c.CloseNow()
	}
	e.mu.Unlock()
	e.handlers.Wait()
}
