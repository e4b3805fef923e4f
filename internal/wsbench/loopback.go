package wsbench

import (
	"context"
	"fmt"
	"net"
	"net/url"
)

// CheckLoopbackURL returns an error unless the ws or wss URL s names a
// loopback host: a loopback IP, or a name all of whose addresses are
// loopback.
func CheckLoopbackURL(ctx context.Context, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse target %q: %w", s, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("target %q: scheme must be ws or wss", s)
	}
	return checkLoopbackHost(ctx, u.Hostname())
}

// CheckLoopbackAddr returns an error unless the listen address addr
// (host:port) names a loopback host. An empty host, which means every
// interface, is refused.
func CheckLoopbackAddr(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", addr, err)
	}
	return checkLoopbackHost(ctx, host)
}

func checkLoopbackHost(ctx context.Context, host string) error {
	if host == "" {
		return fmt.Errorf("no host given: only loopback addresses are allowed")
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("host %q is not a loopback address", host)
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("host %q resolves to %s, not a loopback address", host, a.IP)
		}
	}
	return nil
}
