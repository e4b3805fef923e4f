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
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

// Start starts a kinesalite server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir, err := toolsDir()
	if err != nil {
		t.Fatalf("kinesalite: %v", err)
	}
	node, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "kinesalite"))
	if nodeErr != nil || modErr != nil {
		what := "node_modules/kinesalite missing in " + dir
		if nodeErr != nil {
			what = "node not on PATH"
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("kinesalite not installed (%s): install Node.js and run 'npm ci --prefix tools/kinesalite'", what)
		}
		t.Skipf("kinesalite not installed (%s): run 'make test' or 'npm ci --prefix tools/kinesalite'", what)
	}

	cmd := exec.Command(node, "server.js", "0")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &logWriter{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("kinesalite: stdin pipe: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("kinesalite: stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("kinesalite: start node: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Closing stdin asks the server to exit; killing the process
			// group makes sure it does.
			stdin.Close()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)

	portc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		// This goroutine ends when stdout closes, at the latest when the
		// cleanup above kills the process.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				n, err := strconv.Atoi(strings.TrimSpace(p))
				if err != nil {
					errc <- fmt.Errorf("bad port line %q", sc.Text())
					break
				}
				portc <- n
				break
			}
		}
		if err := sc.Err(); err != nil {
			errc <- err
		} else {
			errc <- errors.New("server exited before listening")
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case port := <-portc:
		return &Server{port: port, stop: stop}
	case err := <-errc:
		t.Fatalf("kinesalite: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("kinesalite: not listening after %v", startTimeout)
	}
	return nil
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

// toolsDir returns the directory with server.js: $PREHEAT_KINESALITE_DIR,
// or tools/kinesalite under the nearest directory above the working
// directory that holds go.mod.
func toolsDir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "tools", "kinesalite"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// logWriter sends the server's stderr to the test log.
type logWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("kinesalite: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
