package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/testcert"
	"github.com/preheatdev/preheat/internal/wsecho"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls buf until re matches, and returns the first submatch.
func waitFor(t *testing.T, buf *syncBuffer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(buf.String()); m != nil {
			return m[len(m)-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q in the output:\n%s", re, buf.String())
	return ""
}

// tapProcess runs 'preheat tap' in-process until the test ends.
type tapProcess struct {
	addr, admin string
	stderr      *syncBuffer
	cancel      context.CancelFunc
	done        chan int
}

func startTap(t *testing.T, args ...string) *tapProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &tapProcess{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	args = append([]string{"tap", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--shutdown-timeout", "2s"}, args...)
	go func() { p.done <- run(ctx, args, io.Discard, p.stderr) }()
	p.addr = waitFor(t, p.stderr, `msg="tap listening" addr=(\S+)`)
	p.admin = waitFor(t, p.stderr, `msg="admin listening" addr=(\S+)`)
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the tap as SIGTERM would, and returns its exit code.
func (p *tapProcess) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("tap did not stop:\n%s", p.stderr.String())
		return -1
	}
}

func (p *tapProcess) talk(t *testing.T, path string, msgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+p.addr+path, nil)
	if err != nil {
		t.Fatalf("dial through the tap: %v", err)
	}
	defer c.CloseNow()
	for _, m := range msgs {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != m {
			t.Fatalf("echo %q: %q %v", m, got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func (p *tapProcess) adminCall(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTapCommand runs the tap end to end: a config file with a redaction
// rule, its reload by the admin API and by SIGHUP, a graceful stop, and the
// captured sessions read back with inspect.
func TestTapCommand(t *testing.T) {
	up := wsecho.Start(t, nil)
	dir := t.TempDir()
	streamDir := filepath.Join(dir, "stream")
	cfg := filepath.Join(dir, "tap.yaml")
	writeConfig := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("sample_rate: 1\nredact:\n  fields: [pin]\n")
	p := startTap(t, "--upstream", up.URL, "--stream", "file://"+streamDir, "--config", cfg, "--admin-token", "tok", "--tap-id", "tap-under-test")

	p.talk(t, "/sync", `{"type":"connect","pin":"PinSecret1"}`, `{"type":"query","id":1}`)

	if code, _ := p.adminCall(t, "GET", "/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("admin without token: %d", code)
	}
	writeConfig("exclude: [\"/sync\"]\n")
	if code, body := p.adminCall(t, "POST", "/reload", "tok"); code != http.StatusOK || !strings.Contains(body, `"/sync"`) {
		t.Fatalf("reload: %d %s", code, body)
	}
	p.talk(t, "/sync", `{"type":"excluded"}`)

	writeConfig("sample_rate: 1\nbogus_field: 1\n")
	if code, _ := p.adminCall(t, "POST", "/reload", "tok"); code != http.StatusBadRequest {
		t.Fatalf("reload of a bad config: %d", code)
	}
	writeConfig("sample_rate: 1\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.stderr, `(?s)config reloaded.*config reloaded`)
	p.talk(t, "/sync", `{"type":"after-hup"}`)

	if code := p.stop(t); code != 0 {
		t.Fatalf("tap exited %d:\n%s", code, p.stderr.String())
	}

	code, out, errOut := preheat(t, "inspect", "--stream", "file://"+streamDir, "--json")
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d sessions captured, want 2 (one excluded):\n%s", n, out)
	}
	if !strings.Contains(out, `"tap":"tap-under-test"`) {
		t.Fatalf("tap id missing:\n%s", out)
	}
	all := readTreeBytes(t, streamDir)
	if bytes.Contains(all, []byte("PinSecret1")) {
		t.Fatal("a configured secret reached the stream")
	}
	// The payload itself is compressed on disk: check the decoded events.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		id := regexp.MustCompile(`"session":"([0-9a-f]+)"`).FindStringSubmatch(line)[1]
		_, evs, _ := preheat(t, "inspect", "--stream", "file://"+streamDir, "--session", id, "--json")
		if strings.Contains(evs, "PinSecret1") {
			t.Fatal("a configured secret is in a captured event")
		}
		if strings.Contains(evs, `"pin`) && !strings.Contains(evs, redact.Marker) {
			t.Fatalf("pin not replaced by the marker:\n%s", evs)
		}
	}
}

func readTreeBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}

func TestTapCommandUsage(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := preheat(t, append([]string{"tap"}, args...)...)
		if code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("tap %q: exit %d, stderr %q; want failure mentioning %q", args, code, errOut, want)
		}
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sample_rate: 2\n"), 0o600)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("redact:\n  feilds: [x]\n"), 0o600)
	stream := "file://" + filepath.Join(dir, "s")
	f("--listen is required", "--upstream", "ws://127.0.0.1:1", "--stream", stream)
	f("--upstream is required", "--listen", "127.0.0.1:0", "--stream", stream)
	f("--stream is required", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1")
	f("go together", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--tls-cert", "x")
	f("sample rate 2", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--config", bad)
	f("feilds", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--config", unknown)
	f("scheme must be", "--listen", "127.0.0.1:0", "--upstream", "ftp://x", "--stream", stream)
	f("unknown unit", "--budget", "12parsecs")
	f("--capture-workers must be 1 or more", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--capture-workers", "0")
	f("unknown unit", "--capture-backlog", "lots")
	f("--delivery-timeout must be positive", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--delivery-timeout", "0s")
	f("want tokens, all or none", "--redact-subprotocols", "some")
	badRule := filepath.Join(dir, "rule.yaml")
	os.WriteFile(badRule, []byte("redact:\n  subprotocols: maybe\n"), 0o600)
	f("want tokens, all or none", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--config", badRule)
}

// TestTapRedactSubprotocolsFlagAndConfig checks --redact-subprotocols, its
// default, and the config key that wins over it when set, with the
// boolean spellings of old config files.
func TestTapRedactSubprotocolsFlagAndConfig(t *testing.T) {
	const offered = "graphql-ws, access_token, t0k3n"
	const m = redact.Marker
	dir := t.TempDir()
	f := func(args []string, config, want string) {
		t.Helper()
		fs := flag.NewFlagSet("tap", flag.ContinueOnError)
		o := tapFlags(fs)
		if config != "" {
			o.config = filepath.Join(dir, "tap.yaml")
			if err := os.WriteFile(o.config, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		p, err := loadPolicy(o)
		if err != nil {
			t.Fatalf("%q %q: %v", args, config, err)
		}
		h, _ := p.Redactor.Header(http.Header{"Sec-Websocket-Protocol": {offered}})
		if got := h.Get("Sec-Websocket-Protocol"); got != want {
			t.Errorf("%q, config %q: Sec-WebSocket-Protocol %q, want %q", args, config, got, want)
		}
	}
	tokens, all := "graphql-ws, access_token, "+m, m+", "+m+", "+m
	f(nil, "", tokens)
	f([]string{"--redact-subprotocols", "all"}, "", all)
	f([]string{"--redact-subprotocols=none"}, "", offered)
	f([]string{"--redact-subprotocols", "none"}, "sample_rate: 1\n", offered)
	f([]string{"--redact-subprotocols", "none"}, "redact:\n  subprotocols: tokens\n", tokens)
	f(nil, "redact:\n  subprotocols: all\n  keep_subprotocols: [graphql-ws]\n", "graphql-ws, "+m+", "+m)
	f([]string{"--redact-subprotocols", "none"}, "redact:\n  subprotocols: false\n", tokens)
	f(nil, "redact:\n  subprotocols: true\n", all)
}

// TestTapCommandTLS serves the tap over TLS and swaps its certificate
// files while it runs.
func TestTapCommandTLS(t *testing.T) {
	up := wsecho.Start(t, nil)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	poolA := testcert.Write(t, certFile, keyFile, "cert-a")
	p := startTap(t, "--upstream", up.URL, "--stream", "file://"+filepath.Join(dir, "s"), "--tls-cert", certFile, "--tls-key", keyFile)

	serverCN := func(pool *x509.CertPool) (string, error) {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := serverCN(poolA); err != nil || cn != "cert-a" {
		t.Fatalf("first certificate: %q %v", cn, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolA}}}
	c, _, err := websocket.Dial(ctx, "wss://"+p.addr+"/sync", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("wss through the tap: %v", err)
	}
	c.Write(ctx, websocket.MessageText, []byte("over tls"))
	if _, got, err := c.Read(ctx); err != nil || string(got) != "over tls" {
		t.Fatalf("echo over TLS: %q %v", got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// New files are picked up without a restart (SIGHUP forces the check).
	poolB := testcert.Write(t, certFile, keyFile, "cert-b")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cn, err := serverCN(poolB)
		if err == nil && cn == "cert-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not reloaded: %q %v", cn, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The tap refuses to serve its admin API (capture on and off, routes,
// reload) without a token on an address other machines can reach, and says
// how to go on.
func TestTapAdminRefusesNonLoopbackWithoutToken(t *testing.T) {
	t.Setenv("PREHEAT_ADMIN_TOKEN", "")
	stream := "file://" + t.TempDir()
	for _, addr := range []string{":9091", ":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:9091", "tap.internal:9091"} {
		code, _, errOut := preheat(t, "tap", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--admin-listen", addr)
		if code != 2 || !strings.Contains(errOut, "--admin-token") || !strings.Contains(errOut, "PREHEAT_ADMIN_TOKEN") ||
			!strings.Contains(errOut, "--admin-insecure-no-token") {
			t.Errorf("--admin-listen %s without a token: exit %d, stderr %q; want 2 naming --admin-token, PREHEAT_ADMIN_TOKEN and --admin-insecure-no-token",
				addr, code, errOut)
		}
	}
}

// On another address than loopback the admin API needs a token or
// --admin-insecure-no-token; with either the tap goes on to listen there.
// (192.0.2.1, a documentation address, is not on this machine, so the
// listen fails after the check, without opening a port beyond loopback.)
func TestTapAdminNonLoopbackWithTokenOrInsecureFlag(t *testing.T) {
	t.Setenv("PREHEAT_ADMIN_TOKEN", "")
	stream := "file://" + t.TempDir()
	base := []string{"tap", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--stream", stream, "--admin-listen", "192.0.2.1:9091"}
	for _, extra := range [][]string{{"--admin-token", "tok"}, {"--admin-insecure-no-token"}} {
		code, _, errOut := preheat(t, append(base, extra...)...)
		if code != 1 || strings.Contains(errOut, "refusing") || !strings.Contains(errOut, "listen admin") {
			t.Errorf("%q: exit %d, stderr %q; want the admin listen itself to fail", extra, code, errOut)
		}
	}
	t.Setenv("PREHEAT_ADMIN_TOKEN", "tok")
	if code, _, errOut := preheat(t, base...); code != 1 || strings.Contains(errOut, "refusing") {
		t.Errorf("with PREHEAT_ADMIN_TOKEN: exit %d, stderr %q; want the admin listen itself to fail", code, errOut)
	}
}
