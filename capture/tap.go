package capture

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// TapOptions configure a Tap. The zero value is usable.
type TapOptions struct {
	// DialTimeout bounds connecting to the upstream, TLS included.
	// Default 10s.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the upstream's answer to a websocket upgrade.
	// Default 30s.
	HandshakeTimeout time.Duration
	// MaxHandshakeBytes bounds the upstream's upgrade response header.
	// Default 64 KiB.
	MaxHandshakeBytes int
	// TLSClientConfig is used for wss:// and https:// upstreams; nil means
	// the system roots and the upstream's host name.
	TLSClientConfig *tls.Config
	// RewriteHost sends the upstream's host as the Host header. By default
	// the client's Host header is forwarded unchanged.
	RewriteHost bool
	// TrustForwarded keeps the client's X-Forwarded-For, -Host and -Proto
	// and Forwarded headers (appending the client's address to
	// X-Forwarded-For), for a tap behind a load balancer that sets them.
	// By default they are replaced, on plain requests and upgrades alike,
	// so that a client cannot claim another address.
	TrustForwarded bool
	// Transport carries plain (non-upgrade) requests. Default: a clone of
	// http.DefaultTransport with TLSClientConfig and up to 256 idle
	// connections to the upstream.
	Transport http.RoundTripper
	// Logger receives the tap's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the tap's proxy metrics. Default a new set; see
	// Tap.Metrics.
	Metrics *metrics.Set
	// NoEventLoop proxies every upgraded connection with a goroutine per
	// direction. By default, on Linux, a connection whose client and
	// upstream sides are both plain sockets (no TLS in the tap) is
	// proxied by an event loop instead: a goroutine waiting on epoll for
	// many connections, which costs less CPU a message and holds no
	// goroutine while the connection is idle. Bytes and capture are the
	// same either way.
	NoEventLoop bool
	// EventLoops is how many event loops share the connections. Default
	// half of GOMAXPROCS, at least 1. With fewer loops than Ps a loop
	// waits in epoll_wait, the cheapest way; with as many (GOMAXPROCS 1,
	// say) loops park on the runtime's poller, since a P held in a system
	// call with no other P idle is taken away within 20 µs, at a cost.
	EventLoops int
	// CaptureWorkers is how many goroutines at most capture (parse,
	// inflate, redact and batch) what the tap forwards. Capture never runs
	// on the goroutines that forward bytes: they hand each session's
	// chunks to these, so that one session's capture cannot delay another
	// connection's messages (see CaptureBacklogBytes). Default half of
	// GOMAXPROCS, at least 1.
	CaptureWorkers int
	// CaptureBacklogBytes bounds the bytes a session's forwarded chunks may
	// hold while they wait for a capture worker (copied into 4 or 32 KiB
	// blocks, which count against the recorder's BudgetBytes too). A
	// session that reaches it, one sending faster than capture keeps up
	// with, has its capture cut, counted as
	// preheat_tap_sessions_cut_total{reason="backlog"}; its connection goes
	// on unrecorded. Default an eighth of the recorder's BudgetBytes (8 MiB
	// with its default), so that no one session's backlog can take
	// capture's whole budget from the others.
	CaptureBacklogBytes int
}

// Tap is a transparent reverse proxy for websocket servers. It forwards every
// HTTP request and websocket upgrade to one upstream; after an upgrade it
// moves bytes both ways unmodified and hands copies to a Recorder. It is an
// http.Handler; Shutdown ends it gracefully.
type Tap struct {
	upstream *url.URL
	rec      *Recorder
	opts     TapOptions
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	dialer   *net.Dialer

	wg       sync.WaitGroup // the upgraded connections being proxied
	mu       sync.Mutex
	conns    map[*spliced]struct{}
	closing  bool
	drained  chan struct{} // closed when closing and conns is empty
	requests *metrics.Counter
	upgrades *metrics.Counter
	active   *metrics.Gauge
	failures func(reason string) *metrics.Counter
	wsBytes  [2]*metrics.Counter
	relay    *relay   // nil: every connection is spliced
	capture  *handoff // nil without a recorder
	cores    [2]*metrics.Counter
	forced   bool // Shutdown's deadline passed: connections are being closed
}

// spliced is one proxied websocket connection pair.
type spliced struct {
	client, upstream net.Conn
	// stop ends the pair when an event loop proxies it (its conns are
	// closed then; the loop holds their sockets). Guarded by Tap.mu.
	stop func()
}

// NewTap returns a tap that forwards to upstream (http, https, ws or wss)
// and records sessions with rec. A nil rec proxies without capturing.
func NewTap(upstream string, rec *Recorder, opts *TapOptions) (*Tap, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("parse upstream %q: %w", upstream, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("parse upstream %q: scheme must be http, https, ws or wss", upstream)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("parse upstream %q: no host", upstream)
	}
	o := TapOptions{}
	if opts != nil {
		o = *opts
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.MaxHandshakeBytes <= 0 {
		o.MaxHandshakeBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.EventLoops <= 0 {
		o.EventLoops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.CaptureWorkers <= 0 {
		o.CaptureWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.CaptureBacklogBytes <= 0 && rec != nil {
		o.CaptureBacklogBytes = int(max(rec.opts.BudgetBytes/8, largeBlock))
	}
	t := &Tap{
		upstream: u,
		rec:      rec,
		opts:     o,
		log:      o.Logger,
		dialer:   &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second},
		conns:    make(map[*spliced]struct{}),
		drained:  make(chan struct{}),
	}
	if o.Transport == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = o.TLSClientConfig
		tr.MaxIdleConns = 1024
		tr.MaxIdleConnsPerHost = 256
		tr.DialContext = t.dialer.DialContext
		o.Transport = tr
		t.opts.Transport = tr
	}
	set := o.Metrics
	t.requests = set.NewCounter(`preheat_tap_requests_total{kind="http"}`)
	t.upgrades = set.NewCounter(`preheat_tap_requests_total{kind="websocket"}`)
	t.active = set.NewGauge(`preheat_tap_websockets_active`, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.conns))
	})
	t.failures = func(reason string) *metrics.Counter {
		return set.GetOrCreateCounter(`preheat_tap_upgrade_failures_total{reason="` + reason + `"}`)
	}
	t.wsBytes[fromClient] = set.NewCounter(`preheat_tap_websocket_bytes_total{direction="client"}`)
	t.wsBytes[fromServer] = set.NewCounter(`preheat_tap_websocket_bytes_total{direction="server"}`)
	t.cores[0] = set.NewCounter(`preheat_tap_websockets_proxied_total{core="event_loop"}`)
	t.cores[1] = set.NewCounter(`preheat_tap_websockets_proxied_total{core="goroutines"}`)
	if !o.NoEventLoop {
		t.relay = newRelay(o.EventLoops, &t.wg)
	}
	if rec != nil {
		t.capture = newHandoff(o.CaptureWorkers, int64(o.CaptureBacklogBytes), &t.wg)
		set.NewGauge(`preheat_tap_capture_queued_bytes`, func() float64 { return float64(t.capture.queued.Load()) })
	}
	t.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host := pr.In.Host
			pr.SetURL(u)
			if !o.RewriteHost {
				pr.Out.Host = host
			}
			if o.TrustForwarded {
				// Rewrite starts without them; put the client's back.
				for _, h := range forwardedHeaders {
					if v, ok := pr.In.Header[h]; ok {
						pr.Out.Header[h] = v
					}
				}
			}
			pr.SetXForwarded()
		},
		Transport:     o.Transport,
		FlushInterval: -1, // stream long polls and server-sent events as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
			t.failures("upstream_http").Inc()
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return t, nil
}

// Metrics returns the set the tap's proxy metrics are registered in.
func (t *Tap) Metrics() *metrics.Set { return t.opts.Metrics }

// ServeHTTP forwards r to the upstream.
func (t *Tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isWebsocketUpgrade(r) {
		t.requests.Inc()
		t.rp.ServeHTTP(w, r)
		return
	}
	t.upgrades.Inc()
	t.serveUpgrade(w, r)
}

// isWebsocketUpgrade reports whether r asks to switch to websocket.
func isWebsocketUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// hopHeaders are removed from an upgrade request before it is forwarded,
// as RFC 9110 section 7.6.1 asks of a proxy; Connection and Upgrade are
// then set again for the upgrade.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (t *Tap) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	if !t.track(nil) {
		t.failures("shutting_down").Inc()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.opts.DialTimeout+t.opts.HandshakeTimeout)
	defer cancel()

	out := r.Clone(ctx)
	out.URL.Scheme, out.URL.Host = t.upstream.Scheme, t.upstream.Host
	out.URL.Path, out.URL.RawPath = joinPath(t.upstream, r.URL)
	if t.upstream.RawQuery != "" && r.URL.RawQuery != "" {
		out.URL.RawQuery = t.upstream.RawQuery + "&" + r.URL.RawQuery
	} else if t.upstream.RawQuery != "" {
		out.URL.RawQuery = t.upstream.RawQuery
	}
	if t.opts.RewriteHost {
		out.Host = t.upstream.Host
	}
	out.RequestURI = ""
	for _, c := range r.Header.Values("Connection") {
		for f := range strings.SplitSeq(c, ",") {
			out.Header.Del(strings.TrimSpace(f))
		}
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", r.Header.Get("Upgrade"))
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // keep Go's default user agent out
	}
	setForwarded(out, r, t.opts.TrustForwarded)

	up, err := t.dialUpstream(ctx)
	if err != nil {
		t.failures("dial").Inc()
		t.log.Warn("dial upstream", "upstream", t.upstream.Host, "err", err)
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	deadline, _ := ctx.Deadline()
	up.SetDeadline(deadline)
	// A client that goes away during the handshake ends it now.
	stopWatch := context.AfterFunc(ctx, func() { up.SetDeadline(time.Now()) })
	if err := out.Write(up); err != nil {
		up.Close()
		t.failures("upstream_write").Inc()
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	raw, rest, resp, err := readResponseHead(up, t.opts.MaxHandshakeBytes, out)
	if err != nil {
		up.Close()
		t.failures("upstream_response").Inc()
		t.log.Warn("read upstream upgrade response", "upstream", t.upstream.Host, "err", err)
		http.Error(w, "bad upstream response", http.StatusBadGateway)
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The upstream refused the upgrade: relay its answer, body and
		// all, as a plain response and end. The dial deadline still bounds
		// reading it.
		t.relayRefusal(w, up, raw, rest, out)
		return
	}
	if !stopWatch() {
		up.Close()
		t.failures("client_gone").Inc()
		return
	}
	up.SetDeadline(time.Time{})

	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		t.failures("hijack").Inc()
		t.log.Error("hijack client connection", "err", err)
		return
	}
	// Bytes the client sent after its request, already buffered by the
	// server, go to the upstream first.
	var clientPending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		clientPending, _ = brw.Reader.Peek(n)
		clientPending = bytes.Clone(clientPending)
	}
	if _, err := client.Write(raw); err != nil {
		client.Close()
		up.Close()
		t.failures("client_write").Inc()
		return
	}

	var rec *Recording
	if t.rec != nil {
		rec = t.rec.Begin(r, resp.Header)
	}
	sp := &spliced{client: client, upstream: up}
	if !t.track(sp) {
		client.Close()
		up.Close()
		if rec != nil {
			rec.End(sideTap)
		}
		return
	}
	teeClient := &tee{see: func(b []byte, _ time.Time) { t.wsBytes[fromClient].Add(len(b)) }}
	teeServer := &tee{see: func(b []byte, _ time.Time) { t.wsBytes[fromServer].Add(len(b)) }}
	var f *feed
	if rec != nil {
		// Capture is handed off (see handoff): the forwarding goroutine
		// only copies what it wrote.
		f = t.capture.begin(rec)
		teeClient = &tee{
			mark: func(at time.Time) { f.mark(fromClient, at) },
			see:  func(b []byte, at time.Time) { t.wsBytes[fromClient].Add(len(b)); f.see(fromClient, b, at) },
		}
		teeServer = &tee{
			mark: func(at time.Time) { f.mark(fromServer, at) },
			see:  func(b []byte, at time.Time) { t.wsBytes[fromServer].Add(len(b)); f.see(fromServer, b, at) },
		}
	}
	// The handler returns now, so that the request, the response writer and
	// their buffers are freed. A proxied connection then holds only its
	// sockets in an event loop (see relay), or its two conns and a
	// goroutine per direction (splice's) with, while idle, no buffer and
	// no grown stack. The tap's wait group counts it until both
	// directions have ended.
	cancel()
	t.wg.Add(1)
	end := func(clientFirst bool, err error) {
		defer t.wg.Done()
		if f != nil {
			side := sideServer
			if clientFirst {
				side = sideClient
			}
			t.mu.Lock()
			if t.forced {
				side = sideTap // Shutdown's deadline closed it
			}
			t.mu.Unlock()
			f.end(side)
		}
		t.untrack(sp)
		if err != nil && !isClosedErr(err) {
			t.log.Debug("websocket connection ended with an error", "err", err)
		}
	}
	if stop, ok := t.relay.take(client, up, clientPending, rest, teeClient, teeServer, end); ok {
		t.cores[0].Inc()
		t.mu.Lock()
		sp.stop = stop
		forced := t.forced
		t.mu.Unlock()
		if forced {
			stop() // Shutdown closed the others while this one was taken
		}
		return
	}
	t.cores[1].Inc()
	splice(client, up, clientPending, rest, teeClient, teeServer, end)
}

// relayRefusal relays an upstream's non-101 answer to an upgrade request.
func (t *Tap) relayRefusal(w http.ResponseWriter, up net.Conn, raw, rest []byte, out *http.Request) {
	defer up.Close()
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), bytes.NewReader(rest), up)), out)
	if err != nil {
		http.Error(w, "bad upstream response", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		if k != "Connection" && k != "Keep-Alive" && k != "Transfer-Encoding" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	t.failures(fmt.Sprintf("upstream_status_%dxx", resp.StatusCode/100)).Inc()
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "connection reset by peer") ||
		strings.Contains(err.Error(), "broken pipe")
}

// dialUpstream connects to the upstream, with TLS for https.
func (t *Tap) dialUpstream(ctx context.Context) (net.Conn, error) {
	host := t.upstream.Host
	if t.upstream.Port() == "" {
		if t.upstream.Scheme == "https" {
			host = net.JoinHostPort(host, "443")
		} else {
			host = net.JoinHostPort(host, "80")
		}
	}
	if t.upstream.Scheme != "https" {
		return t.dialer.DialContext(ctx, "tcp", host)
	}
	cfg := t.opts.TLSClientConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.upstream.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"} // websocket upgrades are HTTP/1.1
	d := &tls.Dialer{NetDialer: t.dialer, Config: cfg}
	return d.DialContext(ctx, "tcp", host)
}

// readResponseHead reads the upstream's response header from c, up to max
// bytes. It returns the raw header bytes (forwarded to the client as they
// are), any bytes read past the header, and the parsed response.
func readResponseHead(c net.Conn, max int, req *http.Request) (raw, rest []byte, resp *http.Response, err error) {
	buf := make([]byte, 0, 4096)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			raw, rest = buf[:i+4], buf[i+4:]
			break
		}
		if len(buf) >= max {
			return nil, nil, nil, fmt.Errorf("response header larger than %d bytes", max)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), max))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):min(cap(buf), max)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, nil, err
		}
	}
	resp, err = http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		return nil, nil, nil, err
	}
	return raw, bytes.Clone(rest), resp, nil
}

// joinPath joins the upstream's base path with the request's path, as
// httputil.ReverseProxy does.
func joinPath(base, req *url.URL) (path, rawpath string) {
	if base.RawPath == "" && req.RawPath == "" {
		return singleJoiningSlash(base.Path, req.Path), ""
	}
	apath, bpath := base.EscapedPath(), req.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return base.Path + req.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return base.Path + "/" + req.Path, apath + "/" + bpath
	}
	return base.Path + req.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash && b != "":
		return a + "/" + b
	}
	return a + b
}

// forwardedHeaders are the client's claims about where a request came from.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

// setForwarded sets the X-Forwarded headers on out as the plain-request
// path (httputil.ReverseProxy with Rewrite and SetXForwarded) does: the
// client's own are dropped unless trusted.
func setForwarded(out, in *http.Request, trust bool) {
	if !trust {
		for _, h := range forwardedHeaders {
			out.Header.Del(h)
		}
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := out.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", in.Host)
	if in.TLS != nil {
		out.Header.Set("X-Forwarded-Proto", "https")
	} else {
		out.Header.Set("X-Forwarded-Proto", "http")
	}
}

// track registers sp as active; with nil it only reports whether the tap
// still accepts upgrades.
func (t *Tap) track(sp *spliced) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	if sp != nil {
		t.conns[sp] = struct{}{}
	}
	return true
}

func (t *Tap) untrack(sp *spliced) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, sp)
	if t.closing && len(t.conns) == 0 {
		select {
		case <-t.drained:
		default:
			close(t.drained)
		}
	}
}

// Shutdown stops accepting websocket upgrades and waits for open sessions to
// end until ctx is done; then it closes those still open. It does not stop
// the http.Server the tap is mounted in: call its Shutdown first, which
// stops new connections but does not wait for upgraded ones. Shutdown is
// safe to call more than once.
func (t *Tap) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if !t.closing {
		t.closing = true
		if len(t.conns) == 0 {
			close(t.drained)
		}
	}
	t.mu.Unlock()
	select {
	case <-t.drained:
		t.wg.Wait()
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	t.forced = true
	type open struct {
		client, upstream net.Conn
		stop             func()
	}
	opened := make([]open, 0, len(t.conns))
	for sp := range t.conns {
		opened = append(opened, open{sp.client, sp.upstream, sp.stop})
	}
	t.mu.Unlock()
	n := len(opened)
	// Closed outside the lock: a TLS close may block sending close_notify,
	// and the proxying goroutines untrack themselves under it. A pair that
	// an event loop took meanwhile is stopped by serveUpgrade (forced).
	for _, o := range opened {
		if o.stop != nil {
			o.stop()
			continue
		}
		o.client.Close()
		o.upstream.Close()
	}
	t.log.Warn("shutdown deadline reached; closed open websocket sessions", "sessions", n)
	<-t.drained
	t.wg.Wait()
	return ctx.Err()
}
