package redact

import (
	"net/http"
	"reflect"
	"testing"
)

func TestHeader(t *testing.T) {
	r := mustNew(t, &Options{Headers: []string{"X-Session"}})
	in := http.Header{
		"Authorization":          {"Bearer abc.def"},
		"Proxy-Authorization":    {"Basic dXNlcjpwYXNz"},
		"Cookie":                 {"sid=1; theme=dark", "b=2"},
		"Set-Cookie":             {"sid=1"},
		"X-Session":              {"s"},
		"x-api-key":              {"k"}, // not canonical: still matched
		"Referer":                {"https://app.example/?token=t&tab=2"},
		"Sec-Websocket-Protocol": {"sync.v3, bearer.abc"},
		"User-Agent":             {"test"},
		"X-Debug":                {"sent Bearer abcDEF123456 twice"},
		"Empty":                  nil,
	}
	orig := cloneHeader(in)
	got, n := r.Header(in)
	want := http.Header{
		"Authorization":          {"Bearer " + M},
		"Proxy-Authorization":    {"Basic " + M},
		"Cookie":                 {M, M},
		"Set-Cookie":             {M},
		"X-Session":              {M},
		"x-api-key":              {M},
		"Referer":                {"https://app.example/?token=" + M + "&tab=2"},
		"Sec-Websocket-Protocol": {"sync.v3, bearer.abc"}, // protocol names
		"User-Agent":             {"test"},
		"X-Debug":                {"sent Bearer " + M + " twice"},
		"Empty":                  nil,
	}
	if !reflect.DeepEqual(got, want) || n != 9 {
		t.Errorf("Header = %v, %d\nwant %v, 9", got, n, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Errorf("Header modified its input: %v", in)
	}
	got["User-Agent"][0] = "changed"
	if in["User-Agent"][0] != "test" {
		t.Error("Header's copy shares a slice with its input")
	}

	f := func(auth, want string) {
		t.Helper()
		got, _ := r.Header(http.Header{"Authorization": {auth}})
		if got.Get("Authorization") != want {
			t.Errorf("Authorization %q -> %q, want %q", auth, got.Get("Authorization"), want)
		}
	}
	f("abc", M)
	f("Bearer ", M)
	f("", M)
	f("Token t=1, s=2", "Token "+M)
	f("Bear(er x", M)

	if h, n := r.Header(nil); h != nil || n != 0 {
		t.Errorf("Header(nil) = %v, %d", h, n)
	}
}

// TestHeaderRedactsCredentialHeadersByName checks headers that auth
// proxies and gateways set, which no list named, and the near misses that
// must stay.
func TestHeaderRedactsCredentialHeadersByName(t *testing.T) {
	r := mustNew(t, nil)
	for _, name := range []string{
		"X-Forwarded-Access-Token", "X-Auth-Request-Access-Token", "X-Amzn-Oidc-Data",
		"X-Amzn-Oidc-Accesstoken", "Cf-Access-Jwt-Assertion", "X-Session-Token", "X-Api-Key",
		"X-Goog-Api-Key", "Private-Token", "X-Hub-Signature-256", "X-Csrftoken", "X-Session-Id",
	} {
		got, n := r.Header(http.Header{name: {"s3cr3t-value"}})
		if got.Get(name) != M || n != 1 {
			t.Errorf("%s: %q, %d; want the marker", name, got.Get(name), n)
		}
	}
	for _, name := range []string{
		"Sec-Websocket-Key", "Sec-Websocket-Extensions", "Sec-Websocket-Version", "X-Request-Id",
		"Cf-Access-Authenticated-User-Email", "X-Forwarded-For", "Traceparent", "Origin", "Author",
	} {
		got, n := r.Header(http.Header{name: {"dGhlIHNhbXBsZSBub25jZQ=="}})
		if got.Get(name) != "dGhlIHNhbXBsZSBub25jZQ==" || n != 0 {
			t.Errorf("%s: %q, %d; want it kept", name, got.Get(name), n)
		}
	}
	got, _ := r.Header(http.Header{"X-Forwarded-Authorization": {"Bearer abc"}})
	if got.Get("X-Forwarded-Authorization") != "Bearer "+M {
		t.Errorf("X-Forwarded-Authorization = %q, want the scheme kept", got.Get("X-Forwarded-Authorization"))
	}
}

func cloneHeader(h http.Header) http.Header {
	c := http.Header{}
	for k, vs := range h {
		if vs == nil {
			c[k] = nil
			continue
		}
		c[k] = append([]string{}, vs...)
	}
	return c
}
