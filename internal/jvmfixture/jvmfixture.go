package jvmfixture

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed java/*.java
var sources embed.FS

// ErrNoJDK is returned by Build and Launch when javac or java is not on
// PATH.
var ErrNoJDK = errors.New("no JDK: javac and java must be on PATH")

// Resolvers is the number of distinct query resolvers the server has.
const Resolvers = 46

// SandboxWorkspace is the workspace id whose writes the server counts as
// rehearsals (sync_rehearsals_total{form="sandbox"}), not as mutations: a
// warm-up sends its writes there with preheat warm --rehearse
// params.workspace=999.
const SandboxWorkspace = 999

// startTimeout bounds how long Launch waits for the server to listen.
const startTimeout = 60 * time.Second

// Options configure one server process. A nil *Options means every
// default.
type Options struct {
	// JVMFlags are passed to java before the class path, such as "-Xint"
	// or "-XX:TieredStopAtLevel=1". Default "-Xms256m -Xmx512m".
	JVMFlags []string
	// Workers is the size of the server's request worker pool. Default 8.
	Workers int
	// Tasks is the number of tasks per workspace in the dataset (there are
	// 50 workspaces); resolvers scan a workspace's tasks, so it sets the
	// work per request. Default 1000.
	Tasks int
	// Stderr receives the JVM's standard error. Default discarded, except
	// the last 4 KiB, which Launch quotes when the server fails to start.
	Stderr io.Writer
	// OwnSession starts the JVM in a session of its own instead of the
	// caller's. Where Linux groups processes for scheduling by session
	// (autogroup, kernel.sched_autogroup_enabled, on in most distributions'
	// kernels), the JVM is then one group, and the processors are shared
	// between whole servers and the test, as a node shares them between
	// containers' cgroups; in the caller's session every thread competes on
	// its own. Default false.
	OwnSession bool
	// CPUs, if set, restricts the JVM to these processors, in taskset's
	// list form ("0", "2-3"), as a node's static CPU manager gives a pod
	// cores of its own; Linux only (taskset, from util-linux). The JVM sizes
	// its collector and compiler threads by them. Default every processor
	// the caller may use.
	CPUs string
}

// Server is a running JVM sync server.
type Server struct {
	cmd         *exec.Cmd
	stdin       io.Closer
	port        int
	metricsPort int
	done        chan struct{}
	closeOnce   sync.Once
}

// URL returns the server's websocket URL, ws://127.0.0.1:PORT/sync.
func (s *Server) URL() string { return "ws://" + s.Addr() + "/sync" }

// Addr returns the websocket listener's address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// MetricsURL returns the Prometheus endpoint, http://127.0.0.1:PORT/metrics.
func (s *Server) MetricsURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.metricsPort) + "/metrics"
}

// Pid returns the JVM's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Close stops the server: it closes the JVM's stdin, which makes it exit,
// and kills its process group if it has not exited within 2 seconds. It
// waits for the process and is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stdin.Close()
		select {
		case <-s.done:
		case <-time.After(2 * time.Second):
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
	return nil
}

// Start builds the server if needed and launches it for t, and closes it
// when t ends. It skips t when no JDK is installed, unless CI is "true".
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Launch(ctx, opts)
	if errors.Is(err, ErrNoJDK) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jvmfixture: %v: install a JDK (apt-get install openjdk-17-jdk-headless)", err)
		}
		t.Skipf("jvmfixture: %v", err)
	}
	if err != nil {
		t.Fatalf("jvmfixture: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Launch builds the server if needed and starts one JVM on free loopback
// ports; it returns once the server listens. The caller must Close it.
func Launch(ctx context.Context, opts *Options) (*Server, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.JVMFlags == nil {
		o.JVMFlags = []string{"-Xms256m", "-Xmx512m"}
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Tasks <= 0 {
		o.Tasks = 1000
	}
	classes, err := Build(ctx)
	if err != nil {
		return nil, err
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNoJDK
	}
	args := append(append([]string{}, o.JVMFlags...), "-cp", classes, "Main",
		"--port", "0", "--metrics-port", "0", "--workers", strconv.Itoa(o.Workers), "--tasks", strconv.Itoa(o.Tasks),
		"--sandbox-workspace", strconv.Itoa(SandboxWorkspace))
	if o.CPUs != "" {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("CPUs %q needs taskset (util-linux): %w", o.CPUs, err)
		}
		// taskset sets the affinity and executes java in its place.
		args = append([]string{"-c", o.CPUs, java}, args...)
		java = taskset
	}
	cmd := exec.Command(java, args...)
	// Either way the JVM leads a process group of its own, which Close kills.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: o.OwnSession, Setpgid: !o.OwnSession}
	tail := &tailBuffer{max: 4096}
	cmd.Stderr = tail
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, o.Stderr)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start java: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start java: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start java: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		// Ends when stdout closes, at the latest when the process dies.
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	fail := func(err error) (*Server, error) {
		s.Close()
		return nil, fmt.Errorf("%w; stderr: %s", err, strings.TrimSpace(tail.String()))
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	select {
	case line, ok := <-lines:
		if !ok {
			return fail(errors.New("java exited before listening"))
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "LISTENING" {
			return fail(fmt.Errorf("unexpected first line %q", line))
		}
		if s.port, err = strconv.Atoi(f[1]); err != nil {
			return fail(fmt.Errorf("bad port line %q", line))
		}
		if s.metricsPort, err = strconv.Atoi(f[2]); err != nil {
			return fail(fmt.Errorf("bad port line %q", line))
		}
		return s, nil
	case <-ctx.Done():
		return fail(fmt.Errorf("not listening: %w", ctx.Err()))
	}
}

// buildMu serialises builds inside one process; separate processes are
// kept apart by building into a temporary directory and renaming it.
var buildMu sync.Mutex

// Build compiles the server's sources with javac, once per version of the
// sources, into a directory under the user's cache directory (or the
// temporary directory), and returns that directory, the class path.
func Build(ctx context.Context) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", ErrNoJDK
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", ErrNoJDK
	}
	names, err := fs.Glob(sources, "java/*.java")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, n := range names {
		b, err := sources.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	root = filepath.Join(root, "preheat-jvmfixture")
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "Main.class")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	out := filepath.Join(tmp, "classes")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	args := []string{"-nowarn", "-encoding", "UTF-8", "-d", out}
	for _, n := range names {
		b, _ := sources.ReadFile(n)
		p := filepath.Join(src, filepath.Base(n))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
		args = append(args, p)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, javac, args...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("javac: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(out, dir); err != nil {
		// Another process built the same sources first.
		if _, serr := os.Stat(filepath.Join(dir, "Main.class")); serr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("build: %w", err)
	}
	return dir, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
