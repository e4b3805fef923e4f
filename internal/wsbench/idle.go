package wsbench

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/preheatdev/preheat/internal/corpus"
)

// IdleOptions configure Idle. A nil *IdleOptions means the defaults.
type IdleOptions struct {
	// Conns is the number of connections held. Default 1,000.
	Conns int
	// Hold is how long they are held once all are open. Default 10s.
	Hold time.Duration
	// Seed seeds the connect messages. Default 1.
	Seed uint64
	// Compression offers permessage-deflate. Default false.
	Compression bool
	// DialParallel is how many connections are dialled at once.
	// Default 64.
	DialParallel int
	// Ready, if set, is called once every connection is open and has had
	// its connect message echoed, before the hold starts.
	Ready func(open int, took time.Duration)
}

// IdleResult is what Idle did.
type IdleResult struct {
	Target string `json:"target"`
	Conns  int    `json:"conns"`
	// OpenSeconds is how long opening every connection took.
	OpenSeconds float64 `json:"open_seconds"`
	// HeldSeconds is how long they were held.
	HeldSeconds float64 `json:"held_seconds"`
}

// Idle opens opts.Conns connections to the echo server at target, sends
// each one connect message (so a capturing proxy starts recording its
// session) and reads the echo, holds them silent for opts.Hold or until ctx
// is done, then closes them all with a normal closure.
func Idle(ctx context.Context, target string, opts *IdleOptions) (*IdleResult, error) {
	o := IdleOptions{Conns: 1000, Hold: 10 * time.Second, Seed: 1, DialParallel: 64}
	if opts != nil {
		o.Compression, o.Ready = opts.Compression, opts.Ready
		if opts.Conns > 0 {
			o.Conns = opts.Conns
		}
		if opts.Hold > 0 {
			o.Hold = opts.Hold
		}
		if opts.Seed != 0 {
			o.Seed = opts.Seed
		}
		if opts.DialParallel > 0 {
			o.DialParallel = opts.DialParallel
		}
	}
	if err := CheckLoopbackURL(ctx, target); err != nil {
		return nil, err
	}
	conns := make([]*websocket.Conn, o.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.DialParallel)
	for i := range conns {
		g.Go(func() error {
			c, err := dial(gctx, target, o.Compression)
			if err != nil {
				return err
			}
			conns[i] = c
			return roundTrip(gctx, c, corpus.New(o.Seed+uint64(i)).Connect(), nil)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("open idle connections: %w", err)
	}
	r := &IdleResult{Target: target, Conns: o.Conns, OpenSeconds: time.Since(start).Seconds()}
	if o.Ready != nil {
		o.Ready(o.Conns, time.Since(start))
	}
	held := time.Now()
	t := time.NewTimer(o.Hold)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	r.HeldSeconds = time.Since(held).Seconds()

	// Close politely, so the proxy sees ordinary session ends; a peer that
	// does not answer the close handshake is cut after a second.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	closeAll(cctx, conns, o.DialParallel)
	return r, nil
}

// closeAll closes every non-nil conn with closeSoon, parallel at a time,
// and sets it to nil.
func closeAll(ctx context.Context, conns []*websocket.Conn, parallel int) {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, c := range conns {
		if c == nil {
			continue
		}
		g.Go(func() error {
			closeSoon(c)
			conns[i] = nil
			return nil
		})
	}
	g.Wait()
}

// closeSoon closes c with a normal closure, or cuts it if the peer has not
// answered within a second.
func closeSoon(c *websocket.Conn) {
	t := time.AfterFunc(time.Second, func() { c.CloseNow() })
	defer t.Stop()
	c.Close(websocket.StatusNormalClosure, "")
}
