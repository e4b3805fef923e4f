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
// buffer. The buffer is taken only for a read attempt and given back when
// nothing is there yet, so an idle connection holds none; each chunk costs
// one read syscall. Connections without a file descriptor (TLS) fall back
// to Read into a pooled buffer.
func chunkReader(c net.Conn) func() (*[]byte, int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return plainChunkReader(c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return plainChunkReader(c)
	}
	return func() (*[]byte, int, error) {
		var bp *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			if bp == nil {
				bp = pumpBuffers.Get().(*[]byte)
			}
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if !errors.Is(rerr, syscall.EINTR) {
					break
				}
			}
			if errors.Is(rerr, syscall.EAGAIN) {
				pumpBuffers.Put(bp)
				bp = nil
				return false // wait until readable
			}
			return true
		})
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
}
