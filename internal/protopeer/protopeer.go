// Package protopeer runs real websocket protocol peers from the npm
// registry on loopback for end-to-end tests: a server and real clients for
// graphql-transport-ws (graphql-ws), the legacy graphql-ws subprotocol
// (subscriptions-transport-ws), Socket.IO v4 and JSON-RPC 2.0
// (rpc-websockets).
//
// It owns the node processes of one test. Start launches
// tools/protopeers/server.js for one kind on a free port of 127.0.0.1 and
// stops it when the test ends; Server.Counters reads what the server itself
// executed (handshakes, reads, writes, completed subscriptions, protocol
// errors). RunClients runs tools/protopeers/client.js, real client sessions
// against any URL, typically preheat's tap in front of the server, and
// returns the clients' own summary. Both skip the test when Node.js or the
// npm packages are not installed, unless the environment variable CI is
// "true", where that is a failure. The protocols themselves are not spoken
// here; that is the point of the package.
package protopeer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/nodetool"
)

// The kinds of server and client.
const (
	// GraphQLTransportWS is the graphql-transport-ws subprotocol, served by
	// graphql-ws at path /graphql.
	GraphQLTransportWS = "graphql-transport-ws"
	// GraphQLWS is the legacy graphql-ws subprotocol, served by
	// subscriptions-transport-ws at path /graphql.
	GraphQLWS = "graphql-ws"
	// SocketIO is Socket.IO v4 over Engine.IO v4, websocket transport only,
	// at path /socket.io/.
	SocketIO = "socket.io"
	// JSONRPC is JSON-RPC 2.0 served by rpc-websockets at path /rpc.
	JSONRPC = "json-rpc"
)

// Kinds lists every kind.
var Kinds = []string{GraphQLTransportWS, GraphQLWS, SocketIO, JSONRPC}

// DirEnv names the environment variable that overrides the directory
// holding server.js, client.js and node_modules (default: tools/protopeers
// under the repository root).
const DirEnv = "PREHEAT_PROTOPEERS_DIR"

const (
	// startTimeout bounds how long Start waits for the ready line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds how long stopping waits for the killed server's
	// output to end.
	stopTimeout = 5 * time.Second
	// defaultClientTimeout bounds RunClients when ctx has no deadline.
	defaultClientTimeout = 2 * time.Minute
	// maxOutput bounds the client output kept, per stream.
	maxOutput = 64 << 10
	// maxCountersBody bounds the counters response read.
	maxCountersBody = 1 << 20
)

// tool is the peers' directory under tools/, with the npm packages
// server.js and client.js load.
var tool = nodetool.Tool{Name: "protopeers", DirEnv: DirEnv, Packages: []string{
	"graphql", "graphql-ws", "subscriptions-transport-ws", "socket.io", "socket.io-client", "socket.io-parser", "rpc-websockets", "ws"}}

// Counters is what a server counted since it started.
type Counters struct {
	// Connections counts websocket connections accepted (Engine.IO
	// connections for socket.io).
	Connections int `json:"connections"`
	// Handshakes counts protocol handshakes acknowledged: connection_init
	// acked (both GraphQL kinds), namespace connects (socket.io), or
	// connections (json-rpc, which has no handshake).
	Handshakes int `json:"handshakes"`
	// Reads counts read operations the server answered.
	Reads int `json:"reads"`
	// Writes counts write operations the server executed.
	Writes int `json:"writes"`
	// ProtocolErrors counts protocol errors the server reported, each once:
	// a close with an error code, an error message for a bad message, an
	// Engine.IO close for a parse error, missing pong or bad packet, a
	// CONNECT_ERROR, a JSON-RPC error response.
	ProtocolErrors int `json:"protocolErrors"`
	// SubscriptionsCompleted counts subscriptions that delivered every value
	// they asked for.
	SubscriptionsCompleted int `json:"subscriptionsCompleted"`
	// ReadsByKind, WritesByKind and ProtocolErrorsByKind split the counts by
	// operation name or error (for example "createTask", "close 4400",
	// "engine parse error", "rpc -32700").
	ReadsByKind          map[string]int `json:"readsByKind"`
	WritesByKind         map[string]int `json:"writesByKind"`
	ProtocolErrorsByKind map[string]int `json:"protocolErrorsByKind"`
}

// Server is a running protocol server.
type Server struct {
	// Kind is the server's kind, one of Kinds.
	Kind string
	// URL is the websocket URL to connect to, path included, for example
	// ws://127.0.0.1:PORT/graphql. For socket.io it is
	// ws://127.0.0.1:PORT/socket.io/; the wire URL adds
	// ?EIO=4&transport=websocket.
	URL string
	// Path is URL's path: /graphql, /socket.io/ or /rpc.
	Path string
	// CountersURL answers GET with the server's Counters as JSON.
	CountersURL string

	http *http.Client
	stop func()
}

// ServerOptions are optional settings of a server.
type ServerOptions struct {
	// PingInterval sets the server's own heartbeat where the library has
	// one: ws ping frames for graphql-transport-ws (default 12s), "ka"
	// messages for graphql-ws (default none), Engine.IO pings, which the
	// client must answer within the same interval (the library's default:
	// every 25s, answered within 20s), for socket.io. json-rpc has none.
	// Zero keeps the library default; it is rounded to milliseconds.
	PingInterval time.Duration
}

// Start starts a server of the given kind for t and stops it when t ends.
func Start(t testing.TB, kind string) *Server {
	t.Helper()
	return StartWithOptions(t, kind, nil)
}

// StartWithOptions is Start with optional settings; opts may be nil.
func StartWithOptions(t testing.TB, kind string, opts *ServerOptions) *Server {
	t.Helper()
	if !slices.Contains(Kinds, kind) {
		t.Fatalf("protopeer: unknown kind %q", kind)
	}
	args := []string{"server.js", "--kind", kind, "--port", "0"}
	if opts != nil && opts.PingInterval > 0 {
		args = append(args, "--ping-ms", strconv.FormatInt(max(opts.PingInterval.Milliseconds(), 1), 10))
	}
	var r readyLine
	ready := func(l []byte) bool { return json.Unmarshal(l, &r) == nil && r.WS != "" }
	_, stop := tool.Start(t, "protopeer "+kind+" server: ", ready, startTimeout, args...)
	return &Server{
		Kind:        kind,
		URL:         r.WS,
		Path:        r.Path,
		CountersURL: r.Counters,
		http:        &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		stop:        stop,
	}
}

// readyLine is the line server.js prints once it listens.
type readyLine struct {
	WS       string `json:"ws"`
	Path     string `json:"path"`
	Counters string `json:"counters"`
}

// Stop kills the server now: connections are refused from then on. It is
// safe to call more than once; the test's cleanup calls it too.
func (s *Server) Stop() { s.stop() }

// Counters reads the server's counters.
func (s *Server) Counters(ctx context.Context) (Counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.CountersURL, nil)
	if err != nil {
		return Counters{}, fmt.Errorf("get counters: %w", err)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return Counters{}, fmt.Errorf("get counters: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCountersBody))
	if err != nil {
		return Counters{}, fmt.Errorf("read counters: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Counters{}, fmt.Errorf("get counters: status %s", resp.Status)
	}
	var c Counters
	if err := json.Unmarshal(body, &c); err != nil {
		return Counters{}, fmt.Errorf("decode counters %q: %w", body, err)
	}
	return c, nil
}

// WaitCounters reads the counters until cond holds for them or ctx ends,
// for counts that trail the client, such as a close passed on by a proxy.
// It returns the last counters read.
func (s *Server) WaitCounters(ctx context.Context, cond func(Counters) bool) (Counters, error) {
	for {
		c, err := s.Counters(ctx)
		if err == nil && cond(c) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return c, fmt.Errorf("wait for counters: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ClientOptions are the settings of a client run.
type ClientOptions struct {
	// Sessions is the number of sessions, one connection each (default 1).
	Sessions int
	// Concurrency is how many sessions run at a time (default
	// min(Sessions, 4)).
	Concurrency int
	// Writes adds one or two writes to every session (default none).
	Writes bool
	// Ticks is the number of values each session's subscription asks for
	// (default 3).
	Ticks int
}

// ClientSummary is client.js's report of a run.
type ClientSummary struct {
	Sessions int `json:"sessions"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	// Reads, Writes and Subscriptions count operations that completed. A
	// JSON-RPC notification write counts once sent.
	Reads         int `json:"reads"`
	Writes        int `json:"writes"`
	Subscriptions int `json:"subscriptions"`
	// Errors holds the first few session errors.
	Errors []string `json:"errors"`
}

// RunClients runs client sessions of the given kind against url, for
// example a Server's URL or a proxy in front of it (for socket.io, the
// Engine.IO path may be left off url). It returns the clients' summary, and
// an error if a session failed or the run did not finish. A ctx without a
// deadline gets one of 2 minutes.
func RunClients(ctx context.Context, t testing.TB, kind, url string, opts ClientOptions) (ClientSummary, error) {
	t.Helper()
	if !slices.Contains(Kinds, kind) {
		return ClientSummary{}, fmt.Errorf("run clients: unknown kind %q", kind)
	}
	node, dir := tool.Require(t)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultClientTimeout)
		defer cancel()
	}
	sessions := opts.Sessions
	if sessions <= 0 {
		sessions = 1
	}
	args := []string{"client.js", "--kind", kind, "--url", url, "--sessions", strconv.Itoa(sessions)}
	if opts.Writes {
		args = append(args, "--writes", "1")
	}
	if opts.Concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(opts.Concurrency))
	}
	if opts.Ticks > 0 {
		args = append(args, "--ticks", strconv.Itoa(opts.Ticks))
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopTimeout
	stdout := &boundedBuffer{max: maxOutput}
	stderr := &boundedBuffer{max: maxOutput}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	runErr := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("protopeer: %s client stderr: %s", kind, s)
	}
	if ctx.Err() != nil {
		return ClientSummary{}, fmt.Errorf("run %s clients: %w", kind, ctx.Err())
	}
	sum, parseErr := parseSummary(stdout.String())
	switch {
	case parseErr != nil && runErr != nil:
		return ClientSummary{}, fmt.Errorf("run %s clients: %w (stderr %q)", kind, runErr, tail(stderr.String()))
	case parseErr != nil:
		return ClientSummary{}, fmt.Errorf("run %s clients: %w", kind, parseErr)
	case runErr != nil || sum.Failed > 0 || sum.OK != sessions:
		return sum, fmt.Errorf("run %s clients: %d of %d sessions failed: %s", kind, sessions-sum.OK, sessions, strings.Join(sum.Errors, "; "))
	}
	return sum, nil
}

// parseSummary decodes the last line of client.js's output.
func parseSummary(out string) (ClientSummary, error) {
	out = strings.TrimSpace(out)
	line := out[strings.LastIndexByte(out, '\n')+1:]
	var s ClientSummary
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return ClientSummary{}, fmt.Errorf("decode summary %q: %w", tail(line), err)
	}
	return s, nil
}

// boundedBuffer keeps the first max bytes written to it and drops the rest,
// so a runaway child cannot fill memory.
type boundedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string { return b.buf.String() }

// tail returns the end of s, short enough for an error message.
func tail(s string) string {
	const n = 2000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
