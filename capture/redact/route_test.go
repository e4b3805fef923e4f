package redact

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const M = Marker

func TestRoute(t *testing.T) {
	r := mustNew(t, &Options{QueryParams: []string{"ticket"}})
	f := func(in, want string, n int) {
		t.Helper()
		got, gn := r.Route(in)
		if got != want || gn != n {
			t.Errorf("Route(%q) = %q, %d\n want %q, %d", in, got, gn, want, n)
		}
	}
	f("/sync", "/sync", 0)
	f("/sync?", "/sync?", 0)
	f("/sync?client=web&v=3", "/sync?client=web&v=3", 0)
	f("/sync?token=abc", "/sync?token="+M, 1)
	f("/sync?a=1&token=abc&b=%2Fx+y", "/sync?a=1&token="+M+"&b=%2Fx+y", 1)
	// Names match case-insensitively and percent-decoded; the raw name is kept.
	f("/s?access%5Ftoken=abc&ACCESS_TOKEN=def&Api%4Bey=1", "/s?access%5Ftoken="+M+"&ACCESS_TOKEN="+M+"&Api%4Bey="+M, 3)
	f("/s?%74oken=abc", "/s?%74oken="+M, 1)
	// Repeated parameters, all of them.
	f("/s?sig=1&sig=2&sig=3", "/s?sig="+M+"&sig="+M+"&sig="+M, 3)
	// Without a value, or with an empty one: nothing to hide.
	f("/s?token&x=1", "/s?token&x=1", 0)
	f("/s?token=&x=1", "/s?token=&x=1", 0)
	// Values may hold = and bad escapes; only the value goes.
	f("/s?token=a=b%zz&x=%zz", "/s?token="+M+"&x=%zz", 1)
	// ; separates too.
	f("/s?a=1;token=abc", "/s?a=1;token="+M, 1)
	f("/s?token=abc;def&x=1", "/s?token="+M+"&x=1", 1)
	f("/s?token=abc?def", "/s?token="+M, 1)
	// Empty segments and odd ordering are kept byte for byte.
	f("/s?&&token=1&&", "/s?&&token="+M+"&&", 1)
	// Bracketed names match by their parts.
	f("/s?creds[token]=1&user[name]=x&ticket[]=7", "/s?creds[token]="+M+"&user[name]=x&ticket[]="+M, 2)
	// Configured names add to the defaults.
	f("/s?ticket=7&key=k", "/s?ticket="+M+"&key="+M, 2)
	// A name that cannot be decoded hides the whole query.
	f("/s?to%zzken=abc&a=1", "/s?"+M, 1)
	f("/s?a=1&tok%6", "/s?"+M, 1)
	// Fragments are treated like queries.
	f("/cb#access_token=abc&token_type=bearer", "/cb#access_token="+M+"&token_type=bearer", 1)
	f("/cb?x=1#id_token=abc", "/cb?x=1#id_token="+M, 1)
	f("/cb?token=1#bad%", "/cb?token="+M+"#"+M, 2)
	f("/cb#/route?token=1", "/cb#/route?token="+M, 1)
	f("/s?a=1?token=2", "/s?a=1?token="+M, 1)
	// An absolute URL, as in a Referer.
	f("https://app.example/cb?code=1&password=p", "https://app.example/cb?code=1&password="+M, 1)
	// Path segments are not query parameters.
	f("/token/abc", "/token/abc", 0)
}

func TestRouteNoAlloc(t *testing.T) {
	r := mustNew(t, nil)
	if n := testing.AllocsPerRun(100, func() { r.Route("/sync?client=web&v=3&cursor=abc%20def") }); n != 0 {
		t.Errorf("Route allocates %v times with nothing to redact", n)
	}
}

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
		"Sec-Websocket-Protocol": {"sync.v3, bearer.abc"}, // off by default
		"User-Agent":             {"test"},
		"Empty":                  nil,
	}
	if !reflect.DeepEqual(got, want) || n != 8 {
		t.Errorf("Header = %v, %d\nwant %v, 8", got, n, want)
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

func TestSubprotocols(t *testing.T) {
	r := mustNew(t, &Options{RedactSubprotocols: true, Subprotocols: []string{"sync.v3", "graphql-ws"}})
	f := func(in, want string, n int) {
		t.Helper()
		got, gn := r.Header(http.Header{"Sec-Websocket-Protocol": {in}})
		if g := got["Sec-Websocket-Protocol"][0]; g != want || gn != n {
			t.Errorf("Sec-WebSocket-Protocol %q -> %q, %d; want %q, %d", in, g, gn, want, n)
		}
	}
	f("sync.v3", "sync.v3", 0)
	f("sync.v3, bearer.eyJhbGciOi", "sync.v3, "+M, 1)
	f("access_token,eyJ ,graphql-ws", M+","+M+" ,graphql-ws", 2)
	f("SYNC.V3", M, 1) // protocol names are case-sensitive
	f(" , ", " , ", 0)
	if got := r.Subprotocol("bearer.x"); got != M {
		t.Errorf("Subprotocol(bearer.x) = %q", got)
	}
	if got := mustNew(t, nil).Subprotocol("bearer.x"); got != "bearer.x" {
		t.Errorf("Subprotocol without the option = %q", got)
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

// FuzzRoute checks that Route never panics, never loses a value of a
// configured parameter that url.ParseQuery can see, and changes nothing
// outside the query and fragment.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"/sync?client=web", "/s?token=abc&x=1", "/s?access%5Ftoken=a", "/s?a=1;sig=2",
		"/s?to%zzken=1", "/cb#access_token=x", "/s?creds[token]=1", "https://h/p?password=p#f",
		"/s?token", "/s?%", "?&=&", "/s?token=" + Marker,
	} {
		f.Add(s)
	}
	r := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, s string) {
		got, n := r.Route(s)
		if n == 0 && got != s {
			t.Fatalf("Route(%q) = %q with nothing counted", s, got)
		}
		if q := strings.IndexAny(s, "?#"); q >= 0 && got[:q] != s[:q] {
			t.Fatalf("Route(%q) = %q changed the path", s, got)
		} else if q < 0 && got != s {
			t.Fatalf("Route(%q) = %q without a query", s, got)
		}
		// Whatever a server's query parser sees, no configured value is in it.
		_, rawQuery, _ := strings.Cut(got, "?")
		rawQuery, _, _ = strings.Cut(rawQuery, "#")
		for _, sep := range []string{"&", ";"} {
			vals, _ := url.ParseQuery(strings.ReplaceAll(rawQuery, sep, "&"))
			for name, vs := range vals {
				if !r.paramNames[strings.ToLower(name)] {
					continue
				}
				for _, v := range vs {
					if v != "" && v != Marker {
						t.Fatalf("Route(%q) = %q leaks %s=%q", s, got, name, v)
					}
				}
			}
		}
		if again, _ := r.Route(got); again != got {
			t.Fatalf("Route is not idempotent: %q -> %q -> %q", s, got, again)
		}
	})
}
