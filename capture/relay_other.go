//go:build !linux

package capture

import (
	"net"
	"sync"
)

// relay is Linux's event-loop proxy (see relay_linux.go); elsewhere every
// pair is proxied by splice.
type relay struct{}

func newRelay(int, *sync.WaitGroup) *relay { return nil }

// take never takes a pair here.
func (r *relay) take(a, b net.Conn, aPending, bPending []byte, teeA, teeB *tee, end func(aFirst bool, err error)) (stop func(), ok bool) {
	return nil, false
}
