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
	stop func()
}

// Stop kills the server now, as a crash or a network partition would end a
// real Kinesis endpoint for its clients: connections are refused from then
// on. It is safe to call more than once; the test's cleanup calls it too.
func (s *Server) Stop() { s.stop() }

// tool is kinesalite's directory under tools/.
var tool = nodetool.Tool{Name: "kinesalite", DirEnv: DirEnv, Packages: []string{"kinesalite"}}

// Start starts a kinesalite server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	line, stop := tool.Start(t, "kinesalite: ", func(l []byte) bool { return bytes.HasPrefix(l, []byte("LISTENING ")) },
		startTimeout, "server.js", "0")
	port, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(line), "LISTENING ")))
	if err != nil {
		t.Fatalf("kinesalite: bad port line %q", line)
	}
	return &Server{port: port, stop: stop}
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
