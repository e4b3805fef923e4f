package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T, ln net.Listener) (net.Conn, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// reader returns src's chunk reader.
func reader(src net.Conn) func() (*[]byte, int, error) {
	next, _ := chunkReader(src)
	return next
}

// deepSink keeps deep's arrays from being optimized away.
var deepSink byte

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) {
	var buf [1000]byte
	buf[n%len(buf)] = byte(n)
	if n > 0 {
		deep(n - 1)
	}
	deepSink += buf[n%len(buf)]
}

func stackBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestPumpIdleStack checks that a pump whose tee grew its goroutine's stack
// does not keep the grown stack while its source is idle, and that it still
// forwards every byte, in order, to the tee and to its destination.
func TestPumpIdleStack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux pumps move to new goroutines")
	}
	// Enough pumps that the runtime's own stack caches (32 KiB per P, which
	// the stack metric counts) are well under 1 KiB a pump: with 64 a CI
	// run under -race once read exactly 1,024 bytes a pump.
	const pumps = 128
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type end struct {
		in, out net.Conn // the test writes to in and reads from out
		seen    bytes.Buffer
		done    chan error
	}
	ends := make([]*end, pumps)
	for i := range ends {
		in, src := tcpPair(t, ln)
		dst, out := tcpPair(t, ln)
		e := &end{in: in, out: out, done: make(chan error, 1)}
		ends[i] = e
		p := &pump{dst: dst, src: src, next: reader(src), prefix: []byte("prefix,"),
			idleAfter: time.Nanosecond, stopping: new(atomic.Bool), t: &tee{
				mark: func(time.Time) {},
				see: func(b []byte, _ time.Time) {
					if bytes.HasPrefix(b, []byte("deep")) {
						deep(32) // far past a new goroutine's stack
					}
					e.seen.Write(b)
				},
			}}
		p.done = func(err error) { e.done <- err }
		go p.run()
	}
	roundTrip := func(e *end, msg string) {
		t.Helper()
		if _, err := e.in.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(e.out, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("forwarded %q, want %q", got, msg)
		}
	}
	for _, e := range ends {
		got := make([]byte, len("prefix,"))
		if _, err := io.ReadFull(e.out, got); err != nil || string(got) != "prefix," {
			t.Fatalf("prefix: read %q, %v", got, err)
		}
	}
	runtime.GC()
	before := stackBytes()
	for i, e := range ends {
		roundTrip(e, fmt.Sprintf("deep %d,", i))
		// A shallow chunk after the deep one: once it is through, the pump
		// has gone back to reading after the deep work.
		roundTrip(e, "shallow,")
	}
	// Collections shrink a grown stack by halves, but not below 4 KiB: a
	// parked read uses too much of it. Pumps that kept their grown stacks
	// would hold 2 KiB each more than they did before the deep work. A
	// pump that read the shallow chunk before it found src silent moves
	// after that: give them time.
	var per int64
	for range 100 {
		runtime.GC()
		runtime.GC()
		if per = (int64(stackBytes()) - int64(before)) / pumps; per < 1<<10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("stack per pump: %d bytes more after the deep work", per)
	if per >= 1<<10 {
		t.Errorf("idle pumps hold %d bytes more stack each after deep work, want less than 1 KiB", per)
	}

	for i, e := range ends {
		if err := e.in.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := <-e.done; err != nil {
			t.Errorf("pump %d ended with %v, want nil", i, err)
		}
		if rest, err := io.ReadAll(e.out); err != nil || len(rest) > 0 {
			t.Errorf("pump %d: after the end, read %q, %v; want EOF", i, rest, err)
		}
		want := fmt.Sprintf("prefix,deep %d,shallow,", i)
		if got := e.seen.String(); got != want {
			t.Errorf("pump %d: tee saw %q, want %q", i, got, want)
		}
	}
}

// TestPumpStoppedWhileIdle checks that a pump waiting with its own idle
// deadline still ends at once when its owner stops src with a deadline.
func TestPumpStoppedWhileIdle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux pumps move to new goroutines")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in, src := tcpPair(t, ln)
	dst, out := tcpPair(t, ln)
	seen := make(chan struct{}, 1)
	stopping := new(atomic.Bool)
	done := make(chan error, 1)
	p := &pump{dst: dst, src: src, next: reader(src), idleAfter: time.Nanosecond, stopping: stopping,
		t:    &tee{see: func([]byte, time.Time) { deep(32); seen <- struct{}{} }},
		done: func(err error) { done <- err }}
	go p.run()
	if _, err := in.Write([]byte("deep")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(out, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	<-seen
	// The pump now waits with its own deadline, an hour away (or is about
	// to). Stop it as splice does.
	stopping.Store(true)
	src.SetDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("stopped pump ended with %v, want a deadline error", err)
	}
}
