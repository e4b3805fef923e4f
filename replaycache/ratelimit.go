package replaycache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// This file holds the Server's rate limits on the sessions it serves: one
// per client, by address, and one for all clients together.

// maxClients bounds the per-client rate limiters kept; past it, idle ones
// are forgotten.
const maxClients = 10000

type clientLimiter struct {
	lim  *rate.Limiter
	last time.Time
}

// admit waits at most MaxRateWait for the rate limits, the client's lim
// and the global one, to allow the first session of a response.
func (s *Server) admit(ctx context.Context, lim *rate.Limiter) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.MaxRateWait)
	defer cancel()
	if err := s.charge(ctx, lim); err != nil {
		s.limited.Inc()
		return fmt.Errorf("rate limited: %w", err)
	}
	return nil
}

// charge waits for the client's lim and the global limit to allow one more
// session.
func (s *Server) charge(ctx context.Context, lim *rate.Limiter) error {
	if err := lim.Wait(ctx); err != nil {
		return err
	}
	if lim == s.global {
		return nil
	}
	return s.global.Wait(ctx)
}

func (s *Server) refuse(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusTooManyRequests, err)
}

// clientKey names the client of r for the per-client rate limit: its IP
// address, or the /64 prefix of an IPv6 address (one host may hold a whole
// /64 and rotate through it). Everything a request carries is the client's
// to choose (a header) or shared by all clients (the one token), so neither
// names a client.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// clientLimiter returns the limiter of r's client.
func (s *Server) clientLimiter(r *http.Request) *rate.Limiter {
	id := clientKey(r)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[id]; c != nil {
		c.last = now
		return c.lim
	}
	if len(s.clients) >= maxClients {
		for k, c := range s.clients {
			if now.Sub(c.last) > time.Minute {
				delete(s.clients, k)
			}
		}
		if len(s.clients) >= maxClients {
			return s.global // too many clients at once: they share the global limit
		}
	}
	c := &clientLimiter{lim: rate.NewLimiter(rate.Limit(s.opts.ClientSessionsPerSecond), max(1, int(s.opts.ClientSessionsPerSecond/4))), last: now}
	s.clients[id] = c
	return c.lim
}
