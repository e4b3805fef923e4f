// Package pipenet serves an http.Handler to an http.Client in the same
// process over net.Pipe connections, for tests that run inside a
// testing/synctest bubble: a pipe's blocking is durable there and its time
// is the bubble's fake time, while a loopback socket's is neither.
//
// It owns only that connection plumbing; tests that need a real transport
// use loopback sockets.
package pipenet

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Listener is a net.Listener whose connections are net.Pipe pairs made by
// its DialContext.
type Listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewListener returns an open Listener.
func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next DialContext.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and DialContext; it is safe to call twice.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns a placeholder address.
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

// DialContext connects to the listener, whatever the network and address:
// it has the signature of http.Transport.DialContext.
func (l *Listener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Serve serves h on a new Listener until the test ends, and returns a
// client whose every request reaches h, whatever its URL's host. The server
// is shut down, and its goroutines waited for, in t.Cleanup.
func Serve(t testing.TB, h http.Handler) *http.Client {
	l := NewListener()
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	tr := &http.Transport{DialContext: l.DialContext}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		l.Close()
		<-served
	})
	return &http.Client{Transport: tr}
}
