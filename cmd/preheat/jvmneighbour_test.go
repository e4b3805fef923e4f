package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// neighbourClientEnv carries a neighbour client's settings to the process
// startNeighbourClient runs, "URL CLIENTS RATE SEED", and
// neighbourClientOutEnv the file it writes its latencies to.
const (
	neighbourClientEnv    = "PREHEAT_JVM_NEIGHBOUR_CLIENT"
	neighbourClientOutEnv = "PREHEAT_JVM_NEIGHBOUR_CLIENT_OUT"
)

// TestJVMNeighbourClient is the body of the process startNeighbourClient
// runs, not a test of its own: it drives a JVM with driveJVMUntil until
// its standard input closes, then writes the latencies to a file: a line
// "errors N", then one line a request, "SENT_UNIX_NS LATENCY_NS WRITE". It
// skips unless neighbourClientEnv is set.
func TestJVMNeighbourClient(t *testing.T) {
	spec := os.Getenv(neighbourClientEnv)
	if spec == "" {
		t.Skip("runs only as TestJVMFigures's neighbour client")
	}
	var (
		url     string
		clients int
		rate    float64
		seed    uint64
	)
	if _, err := fmt.Sscan(spec, &url, &clients, &rate, &seed); err != nil {
		t.Fatalf("%s=%q: %v", neighbourClientEnv, spec, err)
	}
	out := os.Getenv(neighbourClientOutEnv)
	if out == "" {
		t.Fatalf("%s is not set", neighbourClientOutEnv)
	}
	// TestJVMFigures's diagnostic applies to the neighbour's traffic too.
	jvmNoMutations = os.Getenv("PREHEAT_JVM_NO_MUTATIONS") != ""
	defer func() { jvmNoMutations = false }()
	// Standard input reaches its end when the parent closes it or exits,
	// killed or not: the pipe's other end is the parent's alone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	l := driveJVMUntil(ctx, url, clients, rate, seed)
	var b strings.Builder
	fmt.Fprintf(&b, "errors %d\n", l.errors.Load())
	for _, r := range l.requests() {
		fmt.Fprintf(&b, "%d %d %t\n", r.sent.UnixNano(), r.lat.Nanoseconds(), r.write)
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	<-stdinDone
}

// neighbourClient is driveJVMUntil's traffic from a process of its own,
// which leads a session (a scheduling group under autogroup) of its own
// when ownSession is set, and runs on cpus (taskset's list form) when that
// is set. The neighbour's clients stand for its users, who are on other
// machines: timed from the test's process, which also runs the warm-up,
// they would be charged for the warm-up's processor time.
type neighbourClient struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   string
	tail  *strings.Builder
	done  chan error
	ended bool // done has been received from
}

// startNeighbourClient starts clients at rate requests/s in all against
// url, in a new process of this test binary.
func startNeighbourClient(t testing.TB, url string, clients int, rate float64, seed uint64, ownSession bool, cpus string) *neighbourClient {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &neighbourClient{out: filepath.Join(t.TempDir(), fmt.Sprintf("neighbour-%d.txt", seed)), tail: &strings.Builder{}, done: make(chan error, 1)}
	args := []string{"-test.run=^TestJVMNeighbourClient$", "-test.count=1"}
	if cpus != "" {
		args = append([]string{"-c", cpus, exe}, args...)
		if exe, err = exec.LookPath("taskset"); err != nil {
			t.Fatalf("neighbour client on CPUs %q: %v", cpus, err)
		}
	}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %g %d", neighbourClientEnv, url, clients, rate, seed),
		neighbourClientOutEnv+"="+c.out)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: ownSession, Setpgid: !ownSession}
	c.cmd.Stdout, c.cmd.Stderr = c.tail, c.tail
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("neighbour client: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if !c.ended {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	})
	return c
}

// check fails t if the client process has already exited: it runs until
// stop.
func (c *neighbourClient) check(t testing.TB) {
	t.Helper()
	select {
	case err := <-c.done:
		c.ended = true
		t.Fatalf("neighbour client exited early: %v; output:\n%s", err, c.tail)
	default:
	}
}

// stop ends the clients and returns their latencies.
func (c *neighbourClient) stop(t testing.TB) *jvmLatencies {
	t.Helper()
	c.stdin.Close()
	c.ended = true
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("neighbour client: %v; output:\n%s", err, c.tail)
		}
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		t.Fatalf("neighbour client did not stop within 30 s of its stdin closing; output:\n%s", c.tail)
	}
	f, err := os.Open(c.out)
	if err != nil {
		t.Fatalf("neighbour client: %v; output:\n%s", err, c.tail)
	}
	defer f.Close()
	l := &jvmLatencies{}
	sc := bufio.NewScanner(f)
	var errs int64
	if !sc.Scan() {
		t.Fatalf("neighbour client: empty %s (%v); output:\n%s", c.out, sc.Err(), c.tail)
	}
	if _, err := fmt.Sscanf(sc.Text(), "errors %d", &errs); err != nil {
		t.Fatalf("neighbour client: first line %q: %v", sc.Text(), err)
	}
	l.errors.Store(errs)
	for sc.Scan() {
		var sent, lat int64
		var write bool
		if _, err := fmt.Sscan(sc.Text(), &sent, &lat, &write); err != nil {
			t.Fatalf("neighbour client: line %q: %v", sc.Text(), err)
		}
		l.record(time.Unix(0, sent), time.Duration(lat), write)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return l
}
