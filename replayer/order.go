package replayer

import "sync/atomic"

// arrivals counts the server messages a replayed session has received that
// are part of its conversation (heartbeats are not), so that the sending
// side can keep the recorded order: a client message recorded after the
// server's k-th message waits for k.
type arrivals struct {
	n      atomic.Int64
	notify chan struct{} // a token after each arrival; 1-buffered
}

func newArrivals() *arrivals { return &arrivals{notify: make(chan struct{}, 1)} }

// add counts one arrival and wakes a waiter.
func (a *arrivals) add() {
	a.n.Add(1)
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *arrivals) count() int { return int(a.n.Load()) }
