package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// hog is the body of the process startHog runs: it puts a load of a known
// shape on the processors it may use until its standard input closes (or
// an interrupt), then prints "hog: " and how much it did.
//
//   - spin: a busy loop, processor time only;
//   - mem: two 64 MiB buffers copied back and forth, far larger than the
//     cache, a memory stream;
//   - net: loopback TCP echo over 8 connections, the kernel's network path.
func hog(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("hog", flag.ContinueOnError)
	load := fs.String("load", "", "spin, mem or net; required")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	if *load != "spin" && *load != "mem" && *load != "net" {
		return usagef("hog: --load %q: spin, mem or net", *load)
	}
	var stop atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	go func() {
		<-ctx.Done()
		stop.Store(true)
	}()
	var count uint64
	var did string
	switch *load {
	case "spin":
		x := uint64(1)
		for !stop.Load() {
			for range 1 << 20 {
				x = x*6364136223846793005 + 1442695040888963407
			}
			count++
		}
		did = fmt.Sprintf("%d Mi iterations (%d)", count, x&1)
	case "mem":
		a, b := make([]byte, 64<<20), make([]byte, 64<<20)
		for i := range a {
			a[i] = byte(i)
		}
		for !stop.Load() {
			copy(b, a)
			a, b = b, a
			count++
			// copy is one call of the runtime's memmove, in assembly,
			// where the scheduler cannot preempt it: on one processor
			// (GOMAXPROCS 1 under taskset) the goroutine that sees the
			// end of standard input would never run without this yield.
			runtime.Gosched()
		}
		did = fmt.Sprintf("%d copies of 64 MiB", count)
	case "net":
		var err error
		if count, err = echo(&stop); err != nil {
			return err
		}
		did = fmt.Sprintf("%d echoes of 200 bytes", count)
	}
	if count == 0 {
		return errors.New("hog: did nothing")
	}
	fmt.Fprintf(out, "hog: %s\n", did)
	return nil
}

// echo sends 200-byte messages over 8 loopback TCP connections to an echo
// server until stop, and returns how many came back.
func echo(stop *atomic.Bool) (uint64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				_, _ = io.Copy(c, c)
				c.Close()
			})
		}
	})
	var n atomic.Uint64
	var clients sync.WaitGroup
	for range 8 {
		clients.Go(func() {
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
		})
	}
	clients.Wait()
	return n.Load(), nil
}

// hogProcess is a hog running as a process of its own.
type hogProcess struct{ *child }

// startHog runs a hog with load on cpus until stop.
func startHog(load, cpus string) (*hogProcess, error) {
	c, err := startChild([]string{"hog", "--load", load}, cpus, false)
	if err != nil {
		return nil, fmt.Errorf("hog %s: %w", load, err)
	}
	return &hogProcess{c}, nil
}

// stop ends the hog and returns what it counted.
func (h *hogProcess) stop() (string, error) {
	if err := h.child.stop(); err != nil {
		return "", fmt.Errorf("hog: %w", err)
	}
	out := h.output()
	for line := range strings.SplitSeq(out, "\n") {
		if s, ok := strings.CutPrefix(line, "hog: "); ok {
			return strings.TrimSpace(s), nil
		}
	}
	return "", fmt.Errorf("hog printed no count; output:\n%s", out)
}
