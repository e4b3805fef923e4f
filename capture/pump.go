package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// pumpBufferBytes is the size of the pooled buffers bytes are moved through.
const pumpBufferBytes = 32 << 10

var pumpBuffers = sync.Pool{New: func() any { b := make([]byte, pumpBufferBytes); return &b }}

// tee sees one direction's bytes for capture. mark, when set, is called
// with the time a chunk was read, just before it is written on (it must not
// block); see gets the chunk after it was written, with that time (zero
// without mark), and may modify it.
type tee struct {
	mark func(at time.Time)
	see  func(b []byte, at time.Time)
}

// pump moves bytes from src to dst until src ends, writing each chunk to dst
// before anything else sees it; then t sees the chunk (t may be nil). At
// the end of src it half-closes dst, so that a peer's half-close passes
// through. It returns nil at a clean end of src. While src is idle pump
// holds no buffer (see chunkReader).
func pump(dst, src net.Conn, prefix []byte, t *tee) error {
	if len(prefix) > 0 {
		var at time.Time
		if t != nil && t.mark != nil {
			at = time.Now()
			t.mark(at)
		}
		if _, err := dst.Write(prefix); err != nil {
			return err
		}
		if t != nil {
			t.see(prefix, at)
		}
	}
	next := chunkReader(src)
	for {
		bp, n, rerr := next()
		if n > 0 {
			var at time.Time
			if t != nil && t.mark != nil {
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
		if bp != nil {
			pumpBuffers.Put(bp)
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return closeWrite(dst)
			}
			return rerr
		}
	}
}

// plainChunkReader reads c into a pooled buffer with c.Read.
func plainChunkReader(c net.Conn) func() (*[]byte, int, error) {
	return func() (*[]byte, int, error) {
		bp := pumpBuffers.Get().(*[]byte)
		n, err := c.Read(*bp)
		return bp, n, err
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
// b. Leftover bytes already read from a (aPending) or b (bPending) are
// forwarded first. One direction runs on the calling goroutine, the other on
// one splice starts and waits for. It reports whether a's read side ended
// first (its peer closed or failed before b's did) and the first error that
// was not a clean end.
func splice(a, b net.Conn, aPending, bPending []byte, teeA, teeB *tee) (aFirst bool, err error) {
	var first atomic.Int32 // 1 when a's side ended first, 2 when b's did
	stop := func() {
		// One direction failed: stop the other now rather than waiting
		// for its peer.
		now := time.Now()
		a.SetDeadline(now)
		b.SetDeadline(now)
	}
	done := make(chan error, 1)
	go func() {
		err := pump(b, a, aPending, teeA)
		first.CompareAndSwap(0, 1)
		if err != nil {
			stop()
		}
		done <- err
	}()
	errB := pump(a, b, bPending, teeB)
	first.CompareAndSwap(0, 2)
	if errB != nil {
		stop()
	}
	errA := <-done
	a.Close()
	b.Close()
	if errA != nil && first.Load() == 1 || errB == nil {
		return first.Load() == 1, errA
	}
	return first.Load() == 1, errB
}
