package demo

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
)

// server is one simulated sync server listening on loopback.
type server struct {
	name string
	sim  *coldserver.Server
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startServer starts a simulated server; the same seed gives the same
// code (paths and their costs), each server its own JVM.
func startServer(name string, scale float64, seed uint64) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sim := coldserver.New(&coldserver.Options{Scale: scale, Seed: seed})
	s := &server{name: name, sim: sim, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: sim, ErrorLog: log.New(io.Discard, "", 0)}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *server) url() string        { return "ws://" + s.ln.Addr().String() + "/sync" }
func (s *server) metricsURL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.sim.Close() // ends the websocket handlers, which Shutdown does not wait for
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
