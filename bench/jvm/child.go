package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a subcommand of this program run as a process of its own, such
// as the neighbour's clients or a hog. It runs until its standard input
// closes: when stop closes it, or when this process exits, killed or not,
// as the pipe's other end is this process's alone. It leads a process
// group of its own (a session, when asked), which kill ends.
type child struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	tail    *strings.Builder // its standard output and error
	done    chan struct{}    // closed once it has exited and been reaped
	waitErr error            // set before done closes
	once    sync.Once
}

// startChild runs this program with args, on the processors cpus
// (taskset's list form, Linux) if set, in a session of its own if
// ownSession.
func startChild(args []string, cpus string, ownSession bool) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if cpus != "" {
		args = append([]string{"-c", cpus, exe}, args...)
		if exe, err = exec.LookPath("taskset"); err != nil {
			return nil, fmt.Errorf("on CPUs %q: %w", cpus, err)
		}
	}
	c := &child{tail: &strings.Builder{}, done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: ownSession, Setpgid: !ownSession}
	c.cmd.Stdout, c.cmd.Stderr = c.tail, c.tail
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", args[0], err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited returns an error if the child has exited: it should run until
// stop.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("exited early: %v; output:\n%s", c.waitErr, c.tail)
	default:
		return nil
	}
}

// stop closes the child's standard input and waits up to 30 s for it to
// exit, then kills it. It returns an error if the child failed.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case <-c.done:
		if c.waitErr != nil {
			return fmt.Errorf("%v; output:\n%s", c.waitErr, c.tail)
		}
		return nil
	case <-time.After(30 * time.Second):
		c.kill()
		return fmt.Errorf("did not stop within 30 s of its standard input closing; output:\n%s", c.tail)
	}
}

// kill ends the child's process group unless the child has been reaped
// (its group id may then be another's), and waits for it. It is safe to
// call more than once.
func (c *child) kill() {
	c.once.Do(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	})
}

// output returns what the child printed; call it once it has exited.
func (c *child) output() string {
	<-c.done
	return c.tail.String()
}
