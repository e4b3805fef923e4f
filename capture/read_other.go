//go:build !linux

package capture

import "net"

// chunkReader reads into a pooled buffer; only Linux avoids holding it
// while the connection is idle.
func chunkReader(c net.Conn) (next func() (*[]byte, int, error), direct bool) {
	return plainChunkReader(c), false
}
