package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process started by this program, its standard error kept as
// lines to wait on.
type child struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	lines  []string
	notify chan struct{} // a token when a line arrives or stderr ends
	eof    bool
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's error, once done
}

// startChild starts bin with args and env; stdout is discarded.
func startChild(name, bin string, args, env []string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), notify: make(chan struct{}, 1), done: make(chan struct{})}
	c.cmd.Env = env
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			c.poke()
		}
		_, _ = io.Copy(io.Discard, stderr) // a line past the buffer: keep draining
		c.mu.Lock()
		c.eof = true
		c.mu.Unlock()
		c.poke()
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) poke() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitLine returns the first line from index from on that contains substr,
// and its index; an error if the process ends, ctx ends or timeout passes
// first.
func (c *child) waitLine(ctx context.Context, from int, substr string, timeout time.Duration) (string, int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for i := from; ; {
		c.mu.Lock()
		for ; i < len(c.lines); i++ {
			if strings.Contains(c.lines[i], substr) {
				l := c.lines[i]
				c.mu.Unlock()
				return l, i, nil
			}
		}
		eof := c.eof
		c.mu.Unlock()
		if eof {
			return "", i, fmt.Errorf("%s ended before %q\n%s", c.name, substr, c.tail())
		}
		select {
		case <-c.notify:
		case <-t.C:
			return "", i, fmt.Errorf("%s: no %q within %v\n%s", c.name, substr, timeout, c.tail())
		case <-ctx.Done():
			return "", i, ctx.Err()
		}
	}
}

// tail returns the last lines of the process's standard error.
func (c *child) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines[max(0, len(c.lines)-20):], "\n")
}

// stop sends SIGTERM, waits up to grace for the process to end, then kills
// it; it returns the process's state. Safe to call twice.
func (c *child) stop(grace time.Duration) *os.ProcessState {
	select {
	case <-c.done:
		return c.cmd.ProcessState
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	return c.cmd.ProcessState
}

var addrRx = regexp.MustCompile(`\baddr"?[=:]"?([0-9.]+:[0-9]+)`)

// logAddr returns the address a log line names as addr, in the text
// (addr=HOST:PORT) or the JSON ("addr":"HOST:PORT") format; "" if none.
func logAddr(line string) string {
	if m := addrRx.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// memory is a process's resident set from /proc/PID/status, in bytes.
type memory struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: the peak resident so far
}

// readMemory reads /proc/PID/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(string(b))
}

// parseStatus reads VmRSS and VmHWM from the text of /proc/PID/status.
func parseStatus(s string) (memory, error) {
	var m memory
	var seen int
	for line := range strings.SplitSeq(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("status: %s: %q", name, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status: %s: %w", name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		seen++
	}
	if seen != 2 {
		return m, errors.New("status: no VmRSS and VmHWM (a zombie?)")
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// readCPU returns the CPU time, user and system, process pid has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime from the text of /proc/PID/stat. The
// command name, in parentheses, may hold spaces and parentheses itself:
// the fields are counted from the last ')'.
func parseStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", s)
	}
	f := strings.Fields(s[i+1:])
	// state is field 3 of stat(5), f[0]; utime and stime are 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// sampler reads a process's VmRSS every interval until stopped.
type sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at  time.Time
	rss int64
}

func startSampler(pid int, interval time.Duration) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if m, err := readMemory(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, sample{time.Now(), m.RSS})
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and waits for it. It is safe to call twice.
func (s *sampler) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// between returns the samples taken from from up to to.
func (s *sampler) between(from, to time.Time) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, x := range s.samples {
		if !x.at.Before(from) && !x.at.After(to) {
			out = append(out, x.rss)
		}
	}
	return out
}
