package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/certreload"
	"github.com/preheatdev/preheat/stream/streamurl"
)

type tapOptions struct {
	listen, upstream, stream string
	adminListen, adminToken  string
	adminInsecureNoToken     bool
	config                   string
	tlsCert, tlsKey          string
	upstreamCA               string
	upstreamInsecure         bool
	rewriteHost              bool
	trustForwarded           bool
	capture                  bool
	tapID                    string
	sample                   float64
	include, exclude         stringList
	redactHeaders            stringList
	redactQuery              stringList
	redactFields             stringList
	redactSubprotocols       redact.SubprotocolRule
	budget                   byteSize
	maxSessionBytes          byteSize
	maxMessageBytes          byteSize
	maxSessionFrames         int
	maxSessionDuration       time.Duration
	deliveryTimeout          time.Duration
	shutdownTimeout          time.Duration
	eventLoops               int
	captureWorkers           int
	captureBacklog           byteSize
}

func tapCommand() *command {
	return &command{
		name:    "tap",
		summary: "capture websocket sessions as a transparent proxy",
		usage:   "--listen ADDR --upstream URL --stream URL [flags]",
		help: `Runs a transparent reverse proxy in front of the sync routers. Every HTTP request
and websocket upgrade is forwarded to --upstream; after an upgrade, bytes pass both
ways unmodified and are never delayed by capture. Whole client sessions are copied,
redacted and sampled, into --stream.

Redaction happens before anything is buffered. Always replaced with the marker
__preheat_redacted__: the Authorization, Cookie and other credential headers, and
every header, query parameter and JSON key whose name holds a secret word (token,
secret, password, pwd, jwt, auth, credential, session, cookie, api key, private key,
signature, assertion, oidc, bearer, csrf, otp...: X-Forwarded-Access-Token, userJwt,
csrfToken, x-api-key); JWTs, bearer tokens and Basic credentials wherever they stand
(other values, text messages, close reasons, the path); and, by default, the
Sec-WebSocket-Protocol entries that look like credentials (--redact-subprotocols).
--redact-* and the config file add more.

The admin listener (--admin-listen, keep it private; --admin-token or
PREHEAT_ADMIN_TOKEN to require a bearer token) serves /metrics, /status and
POST /capture/on|off, /capture/routes/on|off?route=/path*, /reload. On an
address other than loopback it needs a token, or --admin-insecure-no-token.

--config names a YAML (or JSON) file with the capture policy; it is re-read on
SIGHUP and POST /reload, and its settings win over the flags:

  sample_rate: 0.25          # fraction of sessions recorded, by session id
  include: ["/sync*"]        # routes to record: exact paths, or prefixes ending in *
  exclude: ["/sync/admin*"]  # routes never recorded
  redact:
    headers: [X-Session]     # added to the built-in credential headers
    query: [sessionKey]      # query parameters
    fields: [token, auth.session]  # JSON keys anywhere, or dotted paths
    subprotocols: tokens     # Sec-WebSocket-Protocol entries replaced: tokens, all or none
    keep_subprotocols: []    # protocol names never replaced
    keep_binary: false       # pass binary payloads holding a key name

SIGTERM or SIGINT stop it gracefully: no new connections, open sessions get
--shutdown-timeout to finish, then what was captured is flushed.`,
		setup: withFlags(tapFlags, runTap),
	}
}

// tapFlags declares the tap command's flags into a new tapOptions.
func tapFlags(fs *flag.FlagSet) *tapOptions {
	o := &tapOptions{sample: 1, capture: true, budget: 64 << 20, maxSessionBytes: 8 << 20, maxMessageBytes: 256 << 10}
	fs.StringVar(&o.listen, "listen", "", "address to serve clients on, such as :8080; required")
	fs.StringVar(&o.upstream, "upstream", "", "URL of the router or server to forward to (http, https, ws or wss); required")
	fs.StringVar(&o.stream, "stream", "", "stream URL to capture into (file:///path or kinesis://STREAM); required")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9091", "address of the admin listener; empty disables it")
	fs.StringVar(&o.adminToken, "admin-token", os.Getenv("PREHEAT_ADMIN_TOKEN"), "bearer token the admin listener requires (default $PREHEAT_ADMIN_TOKEN)")
	fs.BoolVar(&o.adminInsecureNoToken, "admin-insecure-no-token", false, "serve the admin listener without a token on a non-loopback address: anyone who reaches it can switch capture and change its routes")
	fs.StringVar(&o.config, "config", "", "YAML or JSON file with the capture policy, reloaded on SIGHUP")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate file (reloaded when it changes)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the key file for --tls-cert")
	fs.StringVar(&o.upstreamCA, "upstream-ca", "", "PEM file of CA certificates to verify an https/wss upstream with; default the system roots")
	fs.BoolVar(&o.upstreamInsecure, "upstream-insecure-skip-verify", false, "do not verify the upstream's TLS certificate")
	fs.BoolVar(&o.rewriteHost, "rewrite-host", false, "send the upstream's host as Host instead of the client's")
	fs.BoolVar(&o.trustForwarded, "trust-forwarded", false, "keep the client's X-Forwarded-* and Forwarded headers (behind a load balancer that sets them)")
	fs.BoolVar(&o.capture, "capture", true, "start with capture on (it can be switched at run time on the admin listener)")
	fs.StringVar(&o.tapID, "tap-id", "", "name of this tap in captured sessions; default the host name")
	fs.Float64Var(&o.sample, "sample", 1, "fraction of sessions to record, 0 to 1")
	fs.Var(&o.include, "include", "route to record (repeatable; exact path, or prefix ending in *); default every route")
	fs.Var(&o.exclude, "exclude", "route never to record (repeatable)")
	fs.Var(&o.redactHeaders, "redact-header", "extra request header to redact (repeatable)")
	fs.Var(&o.redactQuery, "redact-query", "extra query parameter to redact (repeatable)")
	fs.Var(&o.redactFields, "redact-field", "extra JSON key or dotted path to redact in text messages (repeatable)")
	fs.TextVar(&o.redactSubprotocols, "redact-subprotocols", redact.SubprotocolTokens,
		"which Sec-WebSocket-Protocol entries, and accepted subprotocol, to replace with the marker: `tokens` "+
			"(those that look like credentials: a JWT, a long random-looking entry, the entry after one named "+
			"access_token, Authorization, Bearer and the like; protocol names such as graphql-ws or wamp.2.json stay, "+
			"as the replayer needs them), all (every entry but the config file's keep_subprotocols) or none")
	fs.Var(&o.budget, "budget", "memory for captured data not yet in the stream, the stream producer's buffer included; "+
		"past three quarters of it new sessions are not recorded and the oldest sessions waiting for the stream are given up, whole")
	fs.DurationVar(&o.deliveryTimeout, "delivery-timeout", 5*time.Minute, "how long a captured batch is retried into a Kinesis stream "+
		"before it is given up and its session counted lost (while --budget has room)")
	fs.Var(&o.maxSessionBytes, "max-session-bytes", "stop recording a session after this many payload bytes")
	fs.Var(&o.maxMessageBytes, "max-message-bytes", "truncate longer messages (flagged as truncated)")
	fs.IntVar(&o.maxSessionFrames, "max-session-frames", 50000, "stop recording a session after this many messages")
	fs.DurationVar(&o.maxSessionDuration, "max-session-duration", 10*time.Minute, "stop recording a session this long after its connect")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long open sessions get to finish")
	fs.IntVar(&o.eventLoops, "event-loops", max(1, runtime.GOMAXPROCS(0)/2), "epoll event loops that proxy plain (non-TLS) websocket connections, on Linux; 0: a goroutine per direction instead")
	fs.IntVar(&o.captureWorkers, "capture-workers", max(1, runtime.GOMAXPROCS(0)/2), "goroutines that parse, inflate and redact what the tap forwarded, off the forwarding path")
	fs.Var(&o.captureBacklog, "capture-backlog", "forwarded bytes a session may hold waiting for a capture worker before its capture is cut "+
		"(its connection goes on); default an eighth of --budget")
	return o
}

// loadPolicy builds the capture policy from the flags and, when set, the
// config file, whose settings win.
func loadPolicy(o *tapOptions) (capture.Policy, error) {
	p := capture.Policy{SampleRate: o.sample, Include: o.include, Exclude: o.exclude}
	var c *capture.PolicyFile
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return p, fmt.Errorf("read config: %w", err)
		}
		if c, err = capture.ParsePolicyFile(data); err != nil {
			return p, fmt.Errorf("parse config %q: %w", o.config, err)
		}
	}
	return c.Policy(p, &redact.Options{Headers: o.redactHeaders, QueryParams: o.redactQuery,
		JSONKeys: o.redactFields, RedactSubprotocols: o.redactSubprotocols})
}

func runTap(ctx context.Context, e *env, o *tapOptions, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	switch {
	case o.listen == "":
		return usagef("--listen is required")
	case o.upstream == "":
		return usagef("--upstream is required")
	case o.stream == "":
		return usagef("--stream is required")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together")
	case o.shutdownTimeout <= 0:
		return usagef("--shutdown-timeout must be positive")
	case o.deliveryTimeout <= 0:
		return usagef("--delivery-timeout must be positive")
	case o.eventLoops < 0:
		return usagef("--event-loops must be 0 or more")
	case o.captureWorkers < 1:
		return usagef("--capture-workers must be 1 or more")
	case o.adminListen != "" && o.adminToken == "" && !o.adminInsecureNoToken && !loopbackAddr(o.adminListen):
		return usagef("refusing to serve the admin API without a token on %q, which is not a loopback address: "+
			"set --admin-token or PREHEAT_ADMIN_TOKEN, listen on 127.0.0.1, or pass --admin-insecure-no-token", o.adminListen)
	}
	policy, err := loadPolicy(o)
	if err != nil {
		return err
	}
	upstreamTLS := &tls.Config{InsecureSkipVerify: o.upstreamInsecure}
	if o.upstreamCA != "" {
		pem, err := os.ReadFile(o.upstreamCA)
		if err != nil {
			return fmt.Errorf("read --upstream-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--upstream-ca %q holds no PEM certificates", o.upstreamCA)
		}
		upstreamTLS.RootCAs = pool
	}
	var certs *certreload.Reloader
	if o.tlsCert != "" {
		if certs, err = certreload.New(o.tlsCert, o.tlsKey, e.log); err != nil {
			return err
		}
	}

	streamSet, recSet, tapSet := metrics.NewSet(), metrics.NewSet(), metrics.NewSet()
	prod, err := streamurl.OpenProducer(ctx, o.stream, &streamurl.ProducerOptions{
		Logger: e.log, Metrics: streamSet,
		// The recorder's budget covers what the producer holds, and keeps
		// it under the budget by giving up the oldest: the producer's own
		// bound is only a backstop, out of the budget's way.
		BufferBytes:     2 * int64(o.budget),
		DeliveryTimeout: o.deliveryTimeout,
	})
	if err != nil {
		return err
	}
	rec, err := capture.NewRecorder(prod, policy, &capture.RecorderOptions{
		TapID:              o.tapID,
		MaxSessionDuration: o.maxSessionDuration,
		MaxSessionBytes:    int(o.maxSessionBytes),
		MaxSessionFrames:   o.maxSessionFrames,
		MaxMessageBytes:    int(o.maxMessageBytes),
		BudgetBytes:        int64(o.budget),
		Logger:             e.log,
		Metrics:            recSet,
	})
	if err != nil {
		prod.Close(ctx)
		return err
	}
	rec.SetEnabled(o.capture)
	tap, err := capture.NewTap(o.upstream, rec, &capture.TapOptions{
		TLSClientConfig:     upstreamTLS,
		RewriteHost:         o.rewriteHost,
		TrustForwarded:      o.trustForwarded,
		Logger:              e.log,
		Metrics:             tapSet,
		NoEventLoop:         o.eventLoops == 0,
		EventLoops:          o.eventLoops,
		CaptureWorkers:      o.captureWorkers,
		CaptureBacklogBytes: int(o.captureBacklog),
	})
	if err != nil {
		rec.Close(ctx)
		prod.Close(ctx)
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		rec.Close(ctx)
		prod.Close(ctx)
		return fmt.Errorf("listen: %w", err)
	}
	if certs != nil {
		// HTTP/1.1 only: websocket upgrades need it, and plain requests
		// lose little.
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: certs.GetCertificate, NextProtos: []string{"http/1.1"}})
	}

	reload := func() error { // capture.Serve makes reloads one at a time
		if certs != nil {
			if err := certs.Reload(); err != nil {
				e.log.Error("reload TLS certificate", "err", err)
			}
		}
		if o.config == "" {
			return nil
		}
		p, err := loadPolicy(o)
		if err == nil {
			err = rec.SetPolicy(p)
		}
		if err != nil {
			e.log.Error("config not reloaded; the previous policy stays", "err", err)
			return err
		}
		e.log.Info("config reloaded", "file", o.config, "sample_rate", p.SampleRate)
		return nil
	}

	var adminLn net.Listener
	if o.adminListen != "" {
		adminLn, err = net.Listen("tcp", o.adminListen)
		if err != nil {
			ln.Close()
			rec.Close(ctx)
			prod.Close(ctx)
			return fmt.Errorf("listen admin: %w", err)
		}
	}
	e.log.Info("tap listening", "addr", ln.Addr().String(), "upstream", o.upstream, "stream", o.stream, "tls", certs != nil, "capture", o.capture)
	if adminLn != nil {
		e.log.Info("admin listening", "addr", adminLn.Addr().String(), "token", o.adminToken != "")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return capture.Serve(ctx, ln, tap, prod, &capture.ServeOptions{
		AdminListener: adminLn,
		Admin: &capture.AdminOptions{
			Token:  o.adminToken,
			Reload: reload,
			WriteMetrics: func(w io.Writer) {
				tapSet.WritePrometheus(w)
				recSet.WritePrometheus(w)
				streamSet.WritePrometheus(w)
				metrics.WriteProcessMetrics(w)
			},
		},
		Reloads:         hup,
		ShutdownTimeout: o.shutdownTimeout,
		Logger:          e.log,
	})
}
