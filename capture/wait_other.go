//go:build !linux

package capture

import "net"

// readinessWaiter is only implemented on Linux; elsewhere pump reads
// directly and holds a buffer while a connection is idle.
func readinessWaiter(net.Conn) func() error { return nil }
