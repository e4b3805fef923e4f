package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// pumpBufferBytes is the size of the pooled buffers bytes are moved through.
const pumpBufferBytes = 32 << 10

var pumpBuffers = sync.Pool{New: func() any { b := make([]byte, pumpBufferBytes); return &b }}

// tee sees one direction's bytes for capture. mark, when set, is called
// with the time a chunk was read whenever bytes of the other direction may
// be forwarded before see gets the chunk (a pump: before every write; an
// event loop: when a write does not take the whole chunk); see gets the
// chunk after it was written, with that time (zero without mark), and may
// modify it. Neither may block: the Tap's tees copy the chunk into the
// session's capture queue (see handoff).
type tee struct {
	mark func(at time.Time)
	see  func(b []byte, at time.Time)
}

// pump moves one direction's bytes, from src to dst, until src ends,
// writing each chunk to dst before anything else sees it; then t sees the
// chunk (t may be nil). At the end of src it half-closes dst, so that a
// peer's half-close passes through, and calls done with nil at a clean end
// of src, or with the error. While src is idle a pump holds no buffer (see
// chunkReader).
//
// Nor, once src has been silent for idleAfter, does it hold a grown stack.
// Capture (parsing, redaction, encoding) runs on the pump's goroutine and
// needs more than a new goroutine's 2 KiB stack, and the runtime never
// shrinks the grown stack of a goroutine parked in a read: it shrinks a
// stack only while less than a quarter of it is in use (counting 800 bytes
// it keeps in reserve), which a parked read exceeds on a 4 KiB one. So
// when its stack has grown (the runtime moved it), the pump reads with a
// deadline idleAfter away, and if src stays silent until then it goes on in
// a new goroutine, with a new small stack, and the old one ends. A busy
// connection keeps its goroutine, and does not pay for a new goroutine and
// a grown stack with every message. Bytes are never held or delayed by
// this: the read returns as soon as bytes arrive, and the new goroutine
// reads as soon as it runs, with nothing waiting for it.
type pump struct {
	dst, src net.Conn
	next     func() (*[]byte, int, error) // reads src's next chunk (see chunkReader)
	prefix   []byte                       // forwarded first
	t        *tee
	// idleAfter is how long a pump with a grown stack waits for src
	// before it moves to a new goroutine; 0 for never (src is not safe to
	// read with deadlines, or not worth it).
	idleAfter time.Duration
	// stopping is set before the pump's owner stops src with a deadline;
	// a deadline without it is the pump's own (idleBy).
	stopping *atomic.Bool
	idleBy   time.Time // the read deadline the pump set on src; zero for none
	done     func(err error)
}

// stackIdleAfter is how long a pump with a grown stack waits for bytes
// before it moves to a new goroutine (see pump).
const stackIdleAfter = 100 * time.Millisecond

// run forwards chunks until src ends or either side fails, and calls done;
// or it starts a new goroutine to do so (see pump) and returns.
func (p *pump) run() {
	base := stackAddr()
	if len(p.prefix) > 0 {
		prefix := p.prefix
		p.prefix = nil
		if err := p.forward(prefix); err != nil {
			p.done(err)
			return
		}
	}
	for {
		if p.idleAfter > 0 && stackAddr() != base {
			// The stack moved: it grew.
			p.armIdle()
		}
		bp, n, rerr := p.next()
		if !p.idleBy.IsZero() && errors.Is(rerr, os.ErrDeadlineExceeded) && !p.stopping.Load() {
			// The pump's own deadline passed: src was silent.
			p.idleBy = time.Time{}
			p.src.SetReadDeadline(time.Time{})
			if !p.stopping.Load() {
				go p.run() // on a new stack
				return
			}
			// The owner stopped src meanwhile: end with its deadline.
		}
		if n > 0 {
			if err := p.forward((*bp)[:n]); err != nil {
				pumpBuffers.Put(bp)
				p.done(err)
				return
			}
		}
		if bp != nil {
			pumpBuffers.Put(bp)
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				p.done(closeWrite(p.dst))
			} else {
				p.done(rerr)
			}
			return
		}
	}
}

// armIdle sets src's read deadline to idleAfter from now, unless the one
// set before is still more than half of that away, so that a busy
// connection sets it seldom.
func (p *pump) armIdle() {
	now := time.Now()
	if !p.idleBy.IsZero() && p.idleBy.Sub(now) > p.idleAfter/2 {
		return
	}
	p.idleBy = now.Add(p.idleAfter)
	p.src.SetReadDeadline(p.idleBy)
	if p.stopping.Load() {
		// The owner may have stopped src before that deadline replaced its
		// own: stop it again.
		p.src.SetReadDeadline(now)
	}
}

// forward writes b to dst, then lets the tee see it.
func (p *pump) forward(b []byte) error {
	t := p.t
	var at time.Time
	if t != nil && t.mark != nil {
		at = time.Now()
		t.mark(at)
	}
	if _, err := p.dst.Write(b); err != nil {
		return &writeError{err}
	}
	if t != nil {
		t.see(b, at)
	}
	return nil
}

// writeError is a failure to write to a direction's destination: its peer
// went away, so that side, not the one being read, ended the connection.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// stackAddr returns an address in the caller's goroutine stack that is the
// same on every call from one function's frame until the runtime moves the
// stack, which it does to grow it (or, at a garbage collection, to shrink
// it).
//
//go:noinline
func stackAddr() uintptr {
	var b byte
	return uintptr(unsafe.Pointer(&b))
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

// splice proxies a, the client's conn, and b, the upstream's, in both
// directions, in goroutines of its own, until both have ended or either
// fails; then it closes both and calls end, on the goroutine that finished
// last. teeA sees bytes read from a, teeB bytes read from b. Leftover bytes
// already read from a (aPending) or b (bPending) are forwarded first. end
// gets whether a's read side ended first (its peer closed or failed before
// b's did) and the first error that was not a clean end. splice returns at
// once; nothing waits for the connection while it is proxied, and it holds
// only its two pumps' goroutines (see pump).
func splice(a, b net.Conn, aPending, bPending []byte, teeA, teeB *tee, end func(aFirst bool, err error)) {
	s := &spliceState{a: a, b: b, end: end}
	s.left.Store(2)
	pa := &pump{dst: b, src: a, prefix: aPending, t: teeA, stopping: &s.stopping}
	pa.done = func(err error) { s.finish(fromClient, err) }
	pb := &pump{dst: a, src: b, prefix: bPending, t: teeB, stopping: &s.stopping}
	pb.done = func(err error) { s.finish(fromServer, err) }
	for _, p := range []*pump{pa, pb} {
		var direct bool
		p.next, direct = chunkReader(p.src)
		if direct {
			p.idleAfter = stackIdleAfter
		}
	}
	go pa.run()
	go pb.run()
}

// spliceState is what the two directions of a splice share. A side, a or
// b, is named for the direction that reads it: fromClient reads a,
// fromServer reads b.
type spliceState struct {
	a, b     net.Conn
	end      func(aFirst bool, err error)
	first    atomic.Int32 // 0 until a side ends, then 1 + the side that ended first
	firstDir atomic.Int32 // the direction whose end set first
	left     atomic.Int32 // directions still running
	stopping atomic.Bool  // set before a failed direction stops the other
	errs     [2]error     // each direction's end
}

// finish records that direction dir ended with err; the second to finish
// closes both conns and calls end. The side that ended first is the one
// read, or, when writing failed, the one written.
func (s *spliceState) finish(dir direction, err error) {
	side := dir
	if _, ok := errors.AsType[*writeError](err); ok {
		side = dir.other()
	}
	if s.first.CompareAndSwap(0, 1+int32(side)) {
		s.firstDir.Store(int32(dir))
	}
	if err != nil {
		// One direction failed: stop the other now rather than waiting
		// for its peer.
		s.stopping.Store(true)
		now := time.Now()
		s.a.SetDeadline(now)
		s.b.SetDeadline(now)
	}
	s.errs[dir] = err
	if s.left.Add(-1) > 0 {
		return
	}
	s.a.Close()
	s.b.Close()
	// The first direction's error, unless it ended cleanly.
	d := direction(s.firstDir.Load())
	err = s.errs[d]
	if err == nil {
		err = s.errs[d.other()]
	}
	s.end(s.first.Load() == 1+int32(fromClient), err)
}
