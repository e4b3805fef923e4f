package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/jvmfixture"
)

// jvmHogEnv names the load TestJVMInterferenceHog puts on its processor.
const jvmHogEnv = "PREHEAT_JVM_HOG"

// TestJVMNeighbourInterference is a diagnostic of the machine, not of
// preheat: how much does work on one processor slow a JVM pinned to the
// other? Session 9 pinned the neighbour JVM and its clients to CPU 0 and
// the warm-up to CPU 1, and the neighbour still lost about half of its
// unpinned excess. Here the neighbour JVM and its client process are
// pinned to CPU 0 as there (this process, which only starts and times
// things, is not pinned), and CPU 1 gets, in turn for 30 s each with idle
// spells between, loads whose shape is known: a busy loop (processor time
// only), a memory stream (two 64 MiB buffers copied back and forth, far
// larger than the cache), loopback TCP echo (the kernel's network path),
// and a second JVM under 1,000 requests/s from 20 s after its start, still
// compiling, as a warm-up's target is. The neighbour's p99 in each spell,
// against the idle spells around it, says what a warm-up on a processor
// of its own can cost a neighbour on this machine, whatever preheat does.
// Linux only; run with PREHEAT_JVM_INTERFERENCE=1 (about 6 minutes):
//
//	PREHEAT_JVM_INTERFERENCE=1 go test -count=1 -run '^TestJVMNeighbourInterference$' -v -timeout 20m ./cmd/preheat/
func TestJVMNeighbourInterference(t *testing.T) {
	if os.Getenv("PREHEAT_JVM_INTERFERENCE") == "" {
		t.Skip("a diagnostic of the machine: PREHEAT_JVM_INTERFERENCE=1")
	}
	if runtime.GOOS != "linux" {
		t.Skip("pins processes with taskset")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs two processors")
	}
	neighbour := jvmfixture.Start(t, &jvmfixture.Options{CPUs: "0"})
	driveJVM(t, neighbour.URL(), time.Minute, 76) // warm
	nc := startNeighbourClient(t, neighbour.URL(), 2, 200, 77, false, "0")
	const spell = 30 * time.Second
	type phase struct {
		load     string
		from, to time.Time
		did      string // what the load counted
	}
	var phases []phase
	idle := func() {
		p := phase{load: "idle", from: time.Now()}
		time.Sleep(spell)
		p.to = time.Now()
		phases = append(phases, p)
		nc.check(t)
	}
	idle()
	for _, load := range []string{"spin", "mem", "net", "jvm"} {
		p := phase{load: load}
		switch load {
		case "jvm":
			other := jvmfixture.Start(t, &jvmfixture.Options{CPUs: "1"})
			driveJVM(t, other.URL(), 20*time.Second, 90) // its first wave, off the clock
			oc := startNeighbourClient(t, other.URL(), 4, 1000, 91, false, "1")
			p.from = time.Now()
			time.Sleep(spell)
			p.to = time.Now()
			ol := oc.stop(t)
			p.did = fmt.Sprintf("%d requests, %d errors", ol.n(), ol.errors.Load())
			other.Close()
		default:
			h := startHog(t, load, "1")
			p.from = time.Now()
			time.Sleep(spell)
			p.to = time.Now()
			p.did = h.stop(t)
		}
		phases = append(phases, p)
		nc.check(t)
		idle()
	}
	nl := nc.stop(t)
	if e := nl.errors.Load(); e > 0 {
		t.Errorf("%d of the neighbour's sessions failed", e)
	}
	var b strings.Builder
	b.WriteString("| load on CPU 1 | neighbour requests | p50 | p99 | p99 / idle p99 around it | load's own count |\n|---|---|---|---|---|---|\n")
	latencies := func(p phase) (p50, p99 time.Duration, n int) {
		ds := nl.between(p.from, p.to)
		return quantileOf(ds, 0, len(ds), 0.5), quantileOf(ds, 0, len(ds), 0.99), len(ds)
	}
	for i, p := range phases {
		p50, p99, n := latencies(p)
		ratio := ""
		if p.load != "idle" && i > 0 && i+1 < len(phases) {
			_, a, _ := latencies(phases[i-1])
			_, c, _ := latencies(phases[i+1])
			ratio = fmt.Sprintf("%.2fx", float64(p99)/(float64(a+c)/2))
		}
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %s | %s |\n", p.load, n, p50.Round(time.Microsecond), p99.Round(time.Microsecond), ratio, p.did)
	}
	t.Log("\n" + b.String())
}

// hog is a TestJVMInterferenceHog process. stop or the test's cleanup,
// whichever comes first, ends and reaps it.
type hog struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *strings.Builder
	done  chan error
	ended bool // reaped: its process group id may belong to another
}

// startHog runs TestJVMInterferenceHog with load on cpus until stop.
func startHog(t testing.TB, load, cpus string) *hog {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &hog{out: &strings.Builder{}, done: make(chan error, 1)}
	h.cmd = exec.Command("taskset", "-c", cpus, exe, "-test.run=^TestJVMInterferenceHog$", "-test.count=1", "-test.v")
	h.cmd.Env = append(os.Environ(), jvmHogEnv+"="+load)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("hog %s: %v", load, err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		if !h.ended {
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
			h.ended = true
		}
	})
	return h
}

// stop ends the hog and returns what it counted.
func (h *hog) stop(t testing.TB) string {
	t.Helper()
	h.stdin.Close()
	select {
	case err := <-h.done:
		h.ended = true
		if err != nil {
			t.Fatalf("hog: %v; output:\n%s", err, h.out)
		}
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.done
		h.ended = true
		t.Fatalf("hog did not stop within 30 s; output:\n%s", h.out)
	}
	for _, line := range strings.Split(h.out.String(), "\n") {
		if i := strings.Index(line, "hog: "); i >= 0 {
			return strings.TrimSpace(line[i+len("hog: "):])
		}
	}
	t.Fatalf("hog printed no count; output:\n%s", h.out)
	return ""
}

// TestJVMInterferenceHog is the body of startHog's process, not a test of
// its own: it puts the load jvmHogEnv names on its processors until its
// standard input closes, then logs how much it did.
func TestJVMInterferenceHog(t *testing.T) {
	load := os.Getenv(jvmHogEnv)
	if load == "" {
		t.Skip("runs only as TestJVMNeighbourInterference's load")
	}
	var stop atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	var count uint64
	switch load {
	case "spin":
		x := uint64(1)
		for !stop.Load() {
			for range 1 << 20 {
				x = x*6364136223846793005 + 1442695040888963407
			}
			count++
		}
		t.Logf("hog: %d Mi iterations (%d)", count, x&1)
	case "mem":
		a, b := make([]byte, 64<<20), make([]byte, 64<<20)
		for i := range a {
			a[i] = byte(i)
		}
		for !stop.Load() {
			copy(b, a)
			a, b = b, a
			count++
		}
		t.Logf("hog: %d copies of 64 MiB", count)
	case "net":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(c, c); c.Close() }()
			}
		}()
		var n atomic.Uint64
		done := make(chan struct{})
		const conns = 8
		for range conns {
			go func() {
				defer func() { done <- struct{}{} }()
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				msg := make([]byte, 200)
				for !stop.Load() {
					if _, err := c.Write(msg); err != nil {
						return
					}
					if _, err := io.ReadFull(c, msg); err != nil {
						return
					}
					n.Add(1)
				}
			}()
		}
		for range conns {
			<-done
		}
		count = n.Load()
		t.Logf("hog: %d echoes of 200 bytes", count)
	default:
		t.Fatalf("%s=%q: spin, mem or net", jvmHogEnv, load)
	}
	if count == 0 {
		t.Fatal("hog: did nothing")
	}
}
