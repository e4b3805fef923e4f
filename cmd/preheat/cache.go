package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/internal/certreload"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/streamurl"
)

type cacheOptions struct {
	stream, listen   string
	window, gapWait  time.Duration
	maxBytes         byteSize
	token            string
	insecureNoToken  bool
	tlsCert, tlsKey  string
	protocol         string
	kindFields       stringList
	kindByRoute      bool
	rate, clientRate float64
	shutdownTimeout  time.Duration
}

func cacheCommand() *command {
	return &command{
		name:    "cache",
		summary: "serve recent whole sessions from the stream to warmers",
		usage:   "--stream URL --listen ADDR [--window 15m] [--max-bytes 2GiB] [flags]",
		help: `Reads the stream once, keeps a rolling window of whole sessions from their connect
onward, and serves them to any number of warmers and load tests, so that hundreds
of starting pods never hit the stream's read limits.

On start it reads from now minus --window, so a restarted cache is useful again
within seconds. Events are put back in order and deduplicated; a session missing
an event for --gap-wait is cut there (marked truncated); a session whose connect
was never seen is never served. Sessions are held in an LRU bounded by
--max-bytes and dropped once their connect leaves the window.

Each session's protocol (GraphQL over websocket, Socket.IO, JSON-RPC or plain
JSON) is detected from its subprotocol, route and first client message, or fixed
with --protocol. Each client operation's kind is what its protocol names it: a
GraphQL operation, a Socket.IO event, a JSON-RPC method, a plain JSON message's
op, type or like field, or a --kind-field. Warmers ask for sessions covering
kinds they have not been served yet; a kind counts for that only once three
cached sessions hold it, so that no one client steers what warmers replay.

The cache serves every captured session to whoever presents its token, so it
refuses to listen beyond loopback (127.0.0.0/8, ::1, localhost) without one:
set --token or PREHEAT_CACHE_TOKEN, or pass --insecure-no-token to serve
anyone who can reach the address.

API (HTTP/1.1 and HTTP/2, also without TLS; a bearer token with --token or
PREHEAT_CACHE_TOKEN): GET /v1/status, GET /v1/sessions, GET /v1/sessions/{id}
[?follow=1&format=jsonl], GET or POST /v1/select, GET /metrics, GET /healthz.
Events come in the framed batch format (docs/format.md) or as JSON lines.`,
		setup: withFlags(cacheFlags, runCache),
	}
}

// cacheFlags declares the cache command's flags into a new cacheOptions.
func cacheFlags(fs *flag.FlagSet) *cacheOptions {
	o := &cacheOptions{maxBytes: 2 << 30}
	fs.StringVar(&o.stream, "stream", "", "stream URL to read (file:///path or kinesis://STREAM); required")
	fs.StringVar(&o.listen, "listen", "", "address to serve on, such as :8090; required")
	fs.DurationVar(&o.window, "window", 15*time.Minute, "keep sessions whose connect is this recent")
	fs.Var(&o.maxBytes, "max-bytes", "memory for cached sessions (LRU past it)")
	fs.DurationVar(&o.gapWait, "gap-wait", 0, "how long a session waits for a missing event before it is cut there (default the cache's, 10s)")
	fs.StringVar(&o.token, "token", os.Getenv("PREHEAT_CACHE_TOKEN"), "bearer token clients must present (default $PREHEAT_CACHE_TOKEN)")
	fs.BoolVar(&o.insecureNoToken, "insecure-no-token", false, "serve without a token on a non-loopback address: anyone who reaches it gets every captured session")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate file (reloaded when it changes)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the key file for --tls-cert")
	fs.StringVar(&o.protocol, "protocol", "", "protocol of every session: graphql-transport-ws, graphql-ws, socket.io, json-rpc or json (default detected per session)")
	fs.Var(&o.kindFields, "kind-field", "JSON key naming a plain JSON client message's operation, besides the protocol's own (repeatable)")
	fs.BoolVar(&o.kindByRoute, "kind-by-route", false, "classify messages by the session's route instead of by their protocol")
	fs.Float64Var(&o.rate, "rate", 5000, "sessions served per second to all clients together")
	fs.Float64Var(&o.clientRate, "client-rate", 200, "sessions served per second to one client")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long open requests get to finish")
	return o
}

func runCache(ctx context.Context, e *env, o *cacheOptions, args []string) error {
	switch {
	case len(args) > 0:
		return usagef("unexpected arguments %q", args)
	case o.stream == "":
		return usagef("--stream is required")
	case o.listen == "":
		return usagef("--listen is required")
	case o.window <= 0:
		return usagef("--window must be positive")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together")
	case o.rate <= 0 || o.clientRate <= 0:
		return usagef("--rate and --client-rate must be positive")
	case o.token == "" && !o.insecureNoToken && !loopbackAddr(o.listen):
		return usagef("refusing to serve every captured session without a token on %q, which is not a loopback address: "+
			"set --token or PREHEAT_CACHE_TOKEN, listen on 127.0.0.1, or pass --insecure-no-token", o.listen)
	}
	if _, err := streamurl.Parse(o.stream); err != nil {
		return usagef("%v", err)
	}
	if o.protocol != "" {
		if _, err := protocol.NewSet(nil).Lookup(o.protocol); err != nil {
			return usagef("--protocol: %v", err)
		}
	}
	var certs *certreload.Reloader
	if o.tlsCert != "" {
		var err error
		if certs, err = certreload.New(o.tlsCert, o.tlsKey, e.log); err != nil {
			return err
		}
	}

	streamSet, cacheSet, serverSet := metrics.NewSet(), metrics.NewSet(), metrics.NewSet()
	cons, err := openConsumer(ctx, o.stream, stream.Start{Time: time.Now().Add(-o.window)}, e.log, streamSet)
	if err != nil {
		return err
	}
	defer cons.Close()
	cache := replaycache.New(cons, &replaycache.Options{
		Window:      o.window,
		MaxBytes:    int64(o.maxBytes),
		GapWait:     o.gapWait,
		Protocol:    o.protocol,
		KindFields:  o.kindFields,
		KindByRoute: o.kindByRoute,
		Logger:      e.log,
		Metrics:     cacheSet,
	})
	handler := replaycache.NewServer(cache, &replaycache.ServerOptions{
		Token:                   o.token,
		SessionsPerSecond:       o.rate,
		ClientSessionsPerSecond: o.clientRate,
		Logger:                  e.log,
		Metrics:                 serverSet,
		WriteMetrics: func(w io.Writer) {
			cacheSet.WritePrometheus(w)
			serverSet.WritePrometheus(w)
			streamSet.WritePrometheus(w)
			metrics.WriteProcessMetrics(w)
		},
	})

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sopts := &replaycache.ServeOptions{ShutdownTimeout: o.shutdownTimeout, Logger: e.log}
	if certs != nil {
		sopts.TLS = &tls.Config{GetCertificate: certs.GetCertificate}
	}
	e.log.Info("cache listening", "addr", ln.Addr().String(), "stream", o.stream, "window", o.window,
		"max_bytes", formatBytes(int64(o.maxBytes)), "tls", certs != nil, "token", o.token != "")

	if o.token == "" && !loopbackAddr(o.listen) {
		e.log.Warn("serving without a token (--insecure-no-token): anyone who can reach the address gets every captured session", "addr", ln.Addr().String())
	}
	return replaycache.Serve(ctx, ln, cache, handler, sopts)
}

// loopbackAddr reports whether the listen address addr ("host:port") can
// be reached only from this machine: a loopback IP address (127.0.0.0/8,
// ::1) or "localhost". An empty host listens on every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
