//go:build !linux

package capture

import "net"

// chunkReader reads into a pooled buffer; only Linux avoids holding it
// while the connection is idle.
func chunkReader(c net.Conn) func() (*[]byte, int, error) { return plainChunkReader(c) }
