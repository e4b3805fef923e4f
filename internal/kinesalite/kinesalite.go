// Package kinesalite runs a kinesalite server, an in-memory
// Kinesis-compatible server from the npm registry, on loopback for tests.
//
// It owns the server process of one test: Start launches
// tools/kinesalite/server.js with node, waits until it listens on a free
// port of 127.0.0.1, and stops it when the test ends. It skips the test
// when kinesalite is not installed, unless the environment variable CI is
// "true", where a missing server is a failure.
package kinesalite

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/preheatdev/preheat/internal/nodetool"
)

// DirEnv names the environment variable that overrides the directory
// holding server.js and node_modules (default: tools/kinesalite under the
// repository root).
const DirEnv = "PREHEAT_KINESALITE_DIR"

// Region is the region clients made by Server.Client use.
const Region = "us-east-1"

// startTimeout bounds how long Start waits for the server to listen.
const startTimeout = 20 * time.Second

// Server is a running kinesalite process.
type Server struct {
	port int
	dir  string // where it keeps its streams; "" for memory
	mu   sync.Mutex
	proc *nodetool.Process
}

// Stop kills the server now, as a crash or a network partition would end a
// real Kinesis endpoint for its clients: connections are refused from then
// on. It is safe to call more than once; the test's cleanup calls it too.
func (s *Server) Stop() { s.process().Stop() }

// Pause freezes the server (SIGSTOP), as a hung host would: connections
// are still accepted, requests go unanswered. Resume lets it go on, and it
// then answers what it received meanwhile.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.process().Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("kinesalite: pause: %v", err)
	}
}

// Resume undoes Pause.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.process().Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("kinesalite: resume: %v", err)
	}
}

// Restart starts the server again on the same port after Stop, as a
// crashed server that comes back would. A server from StartPersistent
// still has its streams and records; one from Start has none.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	proc, port := run(t, strconv.Itoa(s.port), s.dir)
	if port != s.port {
		t.Fatalf("kinesalite: restarted on port %d, want %d", port, s.port)
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
}

func (s *Server) process() *nodetool.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// tool is kinesalite's directory under tools/.
var tool = nodetool.Tool{Name: "kinesalite", DirEnv: DirEnv, Packages: []string{"kinesalite"}}

// Start starts a kinesalite server that keeps its streams in memory for t
// and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	proc, port := run(t, "0", "")
	return &Server{port: port, proc: proc}
}

// StartPersistent starts a kinesalite server that keeps its streams in a
// directory of t's, so that after Stop, Restart finds them again.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	proc, port := run(t, "0", dir)
	return &Server{port: port, dir: dir, proc: proc}
}

// run starts server.js on port (0 for a free one), keeping its streams in
// dir ("" for memory), and returns the process and its port.
func run(t testing.TB, port, dir string) (*nodetool.Process, int) {
	t.Helper()
	args := []string{"server.js", port}
	if dir != "" {
		args = append(args, dir)
	}
	proc := tool.Run(t, "kinesalite: ", func(l []byte) bool { return bytes.HasPrefix(l, []byte("LISTENING ")) },
		startTimeout, args...)
	p, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(proc.Line), "LISTENING ")))
	if err != nil {
		t.Fatalf("kinesalite: bad port line %q", proc.Line)
	}
	return proc, p
}

// Endpoint returns the server's base URL, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.port)
}

// Client returns a Kinesis client for the server with static credentials
// and region us-east-1. Callers may add per-client options, such as
// middleware, with optFns.
func (s *Server) Client(t testing.TB, optFns ...func(*kinesis.Options)) *kinesis.Client {
	t.Helper()
	opts := kinesis.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}
	return kinesis.New(opts, optFns...)
}

// CreateStream creates a stream with the given number of shards and waits
// until it is ACTIVE.
func (s *Server) CreateStream(t testing.TB, name string, shards int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := s.Client(t)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	}); err != nil {
		t.Fatalf("kinesalite: create stream %q: %v", name, err)
	}
	WaitActive(t, c, name)
}

// WaitActive waits until the stream is ACTIVE, as it is again shortly after
// a split or merge.
func WaitActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kinesalite: stream %q not ACTIVE: %v (last error %v)", name, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
