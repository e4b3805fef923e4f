package main

import (
	"net"
	"strings"
	"testing"
)

func TestCacheLoopbackAddr(t *testing.T) {
	f := func(addr string, want bool) {
		t.Helper()
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
	f("127.0.0.1:8090", true)
	f("127.3.2.1:8090", true)
	f("[::1]:8090", true)
	f("[::ffff:127.0.0.1]:8090", true)
	f("localhost:8090", true)
	f("LocalHost:0", true)
	f(":8090", false) // every interface
	f("0.0.0.0:8090", false)
	f("[::]:8090", false)
	f("10.0.0.5:8090", false)
	f("[fe80::1%eth0]:8090", false)
	f("cache.internal:8090", false) // a name may resolve anywhere
	f("localhost.evil.example:8090", false)
	f("127.0.0.1", false) // not an address to listen on
}

// The cache refuses to serve captured sessions without a token on an
// address other machines can reach, and says how to go on.
func TestCacheRefusesNonLoopbackWithoutToken(t *testing.T) {
	t.Setenv("PREHEAT_CACHE_TOKEN", "")
	stream := "file://" + t.TempDir()
	for _, addr := range []string{":8090", ":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:8090", "cache.internal:8090"} {
		code, _, errOut := preheat(t, "cache", "--stream", stream, "--listen", addr)
		if code != 2 || !strings.Contains(errOut, "--insecure-no-token") || !strings.Contains(errOut, "PREHEAT_CACHE_TOKEN") ||
			!strings.Contains(errOut, "--token") {
			t.Errorf("--listen %s without a token: exit %d, stderr %q; want 2 naming --token, PREHEAT_CACHE_TOKEN and --insecure-no-token",
				addr, code, errOut)
		}
	}
}

// Loopback addresses need no token; other addresses serve with a token or
// with --insecure-no-token.
func TestCacheServesOnLoopbackOrWithTokenOrInsecureFlag(t *testing.T) {
	t.Setenv("PREHEAT_CACHE_TOKEN", "")
	dir := t.TempDir()
	writeSessions(t, dir, 1)
	stream := "file://" + dir
	f := func(args ...string) {
		t.Helper()
		_, stop := startCommand(t, "cache listening", append([]string{"cache", "--stream", stream}, args...)...)
		if code := stop(); code != 0 {
			t.Errorf("cache %q: exit %d", args, code)
		}
	}
	f("--listen", "127.0.0.1:0")
	f("--listen", "localhost:0")
	f("--listen", ":0", "--insecure-no-token")
	f("--listen", ":0", "--token", "tok")
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		f("--listen", "[::1]:0")
	}
	t.Setenv("PREHEAT_CACHE_TOKEN", "tok")
	f("--listen", ":0")
}
