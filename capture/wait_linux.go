//go:build linux

package capture

import (
	"errors"
	"net"
	"syscall"
)

// readinessWaiter returns a function that blocks until c has bytes to read,
// has reached EOF or has failed, without holding a read buffer meanwhile. It
// returns nil for connections that cannot be waited on this way (TLS keeps
// its own buffers anyway), and the caller then simply reads.
func readinessWaiter(c net.Conn) func() error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var one [1]byte
	return func() error {
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			// Peek one byte without consuming it: data, EOF (n == 0) or an
			// error all mean a read will not block. EAGAIN means wait.
			for {
				_, _, perr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
				if !errors.Is(perr, syscall.EINTR) {
					break
				}
			}
			return !errors.Is(perr, syscall.EAGAIN)
		})
		// A peek error (such as a reset) is left for the read to report.
		return err
	}
}
