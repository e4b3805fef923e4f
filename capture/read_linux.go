//go:build linux

package capture

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// chunkReader returns a function that reads c's next chunk into a pooled
// buffer, and whether it reads c's descriptor directly. The buffer is taken
// only for a read attempt and given back when nothing is there yet, so an
// idle connection holds none; each chunk costs one read syscall.
// Connections without a file descriptor (TLS) fall back to Read into a
// pooled buffer.
func chunkReader(c net.Conn) (next func() (*[]byte, int, error), direct bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return plainChunkReader(c), false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return plainChunkReader(c), false
	}
	r := &fdReader{rc: rc}
	r.readFD = r.read // bound once: a read allocates nothing
	return r.next, true
}

// fdReader reads a connection's descriptor into pooled buffers. Its fields
// carry one read's result out of the callback syscall.RawConn.Read calls.
type fdReader struct {
	rc     syscall.RawConn
	readFD func(fd uintptr) bool
	bp     *[]byte
	n      int
	err    error
}

// next reads the next chunk.
func (r *fdReader) next() (*[]byte, int, error) {
	err := r.rc.Read(r.readFD)
	bp, n, rerr := r.bp, r.n, r.err
	r.bp, r.n, r.err = nil, 0, nil
	if err == nil && rerr != nil {
		err = os.NewSyscallError("read", rerr)
	}
	if n < 0 {
		n = 0
	}
	if err == nil && n == 0 {
		err = io.EOF
	}
	return bp, n, err
}

// read is the callback of one read attempt.
func (r *fdReader) read(fd uintptr) bool {
	if r.bp == nil {
		r.bp = pumpBuffers.Get().(*[]byte)
	}
	for {
		r.n, r.err = syscall.Read(int(fd), *r.bp)
		if !errors.Is(r.err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(r.err, syscall.EAGAIN) {
		pumpBuffers.Put(r.bp)
		r.bp = nil
		return false // wait until readable
	}
	return true
}
