// Package nodetool runs the Node.js programs under tools/ that tests use as
// real peers: kinesalite (a Kinesis-compatible server) and the websocket
// protocol peers. Their npm packages are installed from committed lock
// files by make.
//
// It owns finding a tool's directory and node, the rule for a tool that is
// not installed (the test skips and says how to install it, except when the
// environment variable CI is "true", where it fails), and a server
// process's life: started in its own process group, its stderr in the test
// log, its stdout read until it says it is ready, and stopped (stdin
// closed, the group killed, the process reaped) when the test ends. What a
// tool's ready line means, and what its server does, is its own package's.
package nodetool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A Tool is one directory under tools/ holding a Node.js program and its
// package.json.
type Tool struct {
	// Name is the directory's name under tools/, such as "kinesalite".
	Name string
	// DirEnv names the environment variable that overrides the directory.
	DirEnv string
	// Packages are the npm packages that must be installed for the tool
	// to run.
	Packages []string
}

// Dir returns the tool's directory: $DirEnv, or tools/Name under the
// nearest directory above the working directory that holds go.mod.
func (tl Tool) Dir() (string, error) {
	if d := os.Getenv(tl.DirEnv); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find tools directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "tools", tl.Name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find tools directory: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Require returns node's path and the tool's directory, or ends the test
// when either is missing or a package is not installed: a skip that says
// how to install it, or a failure when CI is "true".
func (tl Tool) Require(t testing.TB) (node, dir string) {
	t.Helper()
	dir, err := tl.Dir()
	if err != nil {
		t.Fatalf("%s: %v", tl.Name, err)
	}
	node, nodeErr := exec.LookPath("node")
	what := ""
	if nodeErr != nil {
		what = "node not on PATH"
	} else {
		for _, p := range tl.Packages {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
				what = "node_modules/" + p + " missing in " + dir
				break
			}
		}
	}
	if what != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (%s): install Node.js and run 'npm ci --prefix tools/%s'", tl.Name, what, tl.Name)
		}
		t.Skipf("%s not installed (%s): run 'make test' or 'npm ci --prefix tools/%s'", tl.Name, what, tl.Name)
	}
	return node, dir
}

// stopTimeout bounds how long stopping a server waits for its output to
// close once its process group is killed.
const stopTimeout = 5 * time.Second

// Start runs node with args in the tool's directory as a server for t, and
// returns the first line of its stdout for which ready is true, and a stop
// function that t's cleanup also calls. The server's stderr goes to the
// test log behind logPrefix. It ends the test if the server exits, or
// prints no ready line within timeout.
func (tl Tool) Start(t testing.TB, logPrefix string, ready func(line []byte) bool, timeout time.Duration, args ...string) (line []byte, stop func()) {
	t.Helper()
	p := tl.Run(t, logPrefix, ready, timeout, args...)
	return p.Line, p.Stop
}

// Process is a server started by Run.
type Process struct {
	// Line is the server's ready line.
	Line []byte
	pid  int
	stop func()
}

// Stop kills the server's process group and reaps it. It is safe to call
// more than once; the test's cleanup calls it too.
func (p *Process) Stop() { p.stop() }

// Signal sends sig to the server's process group: SIGSTOP freezes it as a
// hung host would (the kernel still accepts connections, nothing answers),
// SIGCONT lets it go on.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.pid, sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

// Run is Start, returning the server as a Process.
func (tl Tool) Run(t testing.TB, logPrefix string, ready func(line []byte) bool, timeout time.Duration, args ...string) *Process {
	t.Helper()
	node, dir := tl.Require(t)
	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &LogWriter{T: t, Prefix: logPrefix}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: stdin pipe: %v", tl.Name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: stdout pipe: %v", tl.Name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start node: %v", tl.Name, err)
	}

	readyc := make(chan []byte, 1)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// Owned by stop below: it ends when stdout closes, at the latest
		// when stop kills the process group, and stop waits for it.
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if ready(sc.Bytes()) {
				readyc <- append([]byte(nil), sc.Bytes()...)
				break
			}
		}
		if err := sc.Err(); err != nil {
			errc <- fmt.Errorf("read the ready line: %w", err)
		} else {
			errc <- errors.New("server exited before it was ready")
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()

	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Closing stdin asks the server to exit; killing the process
			// group makes sure it does.
			stdin.Close()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(stopTimeout):
				t.Logf("%s: server output still open %v after kill", tl.Name, stopTimeout)
			}
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)

	p := &Process{pid: cmd.Process.Pid, stop: stop}
	select {
	case p.Line = <-readyc:
		return p
	case err := <-errc:
		t.Fatalf("%s: %v", logPrefix+tl.Name, err)
	case <-time.After(timeout):
		t.Fatalf("%s: server not ready after %v", tl.Name, timeout)
	}
	return p
}

// LogWriter sends a process's output to a test's log, a line a call.
type LogWriter struct {
	T      testing.TB
	Prefix string

	mu sync.Mutex
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.T.Logf("%s%s", w.Prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
