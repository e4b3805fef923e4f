package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// pumpBufferBytes is the size of the pooled buffers bytes are moved through.
const pumpBufferBytes = 32 << 10

var pumpBuffers = sync.Pool{New: func() any { b := make([]byte, pumpBufferBytes); return &b }}

// tee sees one direction's bytes for capture. mark is called with the time
// a chunk was read, just before it is written on (it must not block); see
// gets the chunk after it was written, and may modify it.
type tee struct {
	mark func(at time.Time)
	see  func(b []byte, at time.Time)
}

// pump moves bytes from src to dst until src ends, writing each chunk to dst
// before anything else sees it; then t sees the chunk (t may be nil). At the end of src it half-closes dst, so that
// a peer's half-close passes through. It returns nil at a clean end of src.
//
// While src is idle pump holds no buffer: it waits for src to become
// readable first (see waitReadable), then borrows a pooled buffer for one
// read and write.
func pump(dst, src net.Conn, prefix []byte, t *tee) error {
	if len(prefix) > 0 {
		at := time.Now()
		if t != nil {
			t.mark(at)
		}
		if _, err := dst.Write(prefix); err != nil {
			return err
		}
		if t != nil {
			t.see(prefix, at)
		}
	}
	wait := readinessWaiter(src)
	for {
		if wait != nil {
			if err := wait(); err != nil {
				return err
			}
		}
		bp := pumpBuffers.Get().(*[]byte)
		n, rerr := src.Read(*bp)
		if n > 0 {
			var at time.Time
			if t != nil {
				at = time.Now()
				t.mark(at)
			}
			if _, werr := dst.Write((*bp)[:n]); werr != nil {
				pumpBuffers.Put(bp)
				return werr
			}
			if t != nil {
				t.see((*bp)[:n], at)
			}
		}
		pumpBuffers.Put(bp)
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return closeWrite(dst)
			}
			return rerr
		}
	}
}

// closeWrite half-closes c if it can, so the peer reads EOF while the other
// direction goes on; otherwise it closes c.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		err := cw.CloseWrite()
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		return err
	}
	return c.Close()
}

// splice proxies a and b in both directions until both have ended or either
// fails, then closes both. teeA sees bytes read from a, teeB bytes read from
// b. Leftover bytes already read from a (aPending) or b (bPending)
// are forwarded first. It reports whether a's read side ended first (its
// peer closed or failed before b's did) and the first error that was not a
// clean end.
func splice(a, b net.Conn, aPending, bPending []byte, teeA, teeB *tee) (aFirst bool, err error) {
	type result struct {
		fromA bool
		err   error
	}
	done := make(chan result, 2)
	go func() { done <- result{true, pump(b, a, aPending, teeA)} }()
	go func() { done <- result{false, pump(a, b, bPending, teeB)} }()
	for i := range 2 {
		r := <-done
		if i == 0 {
			aFirst = r.fromA
		}
		if r.err != nil && err == nil {
			err = r.err
			if i == 0 {
				// One direction failed: stop the other now rather than
				// waiting for its peer.
				now := time.Now()
				a.SetDeadline(now)
				b.SetDeadline(now)
			}
		}
	}
	a.Close()
	b.Close()
	return aFirst, err
}
