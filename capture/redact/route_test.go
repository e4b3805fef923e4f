package redact

import (
	"net/url"
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
	// Names by the word rule; the allowed phrases stay.
	f("/s?userJwt=1&X-Api-Key=2&sessionKey=3&next_page_token=4&token_type=bearer&author=5",
		"/s?userJwt="+M+"&X-Api-Key="+M+"&sessionKey="+M+"&next_page_token=4&token_type=bearer&author=5", 3)
	f("/s?creds%5Bpass%5D=1&keyboard=2", "/s?creds%5Bpass%5D="+M+"&keyboard=2", 1)
	// Token shapes in other values and in the path.
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
	f("/s?q="+jwt+"&h=Bearer%20abcDEF123456&b=Basic+dXNlcjpwYXNz",
		"/s?q="+M+"&h=Bearer%20"+M+"&b=Basic+"+M, 3)
	f("/ws/"+jwt+"/x?v=1", "/ws/"+M+"/x?v=1", 1)
	f("/ws/"+jwt, "/ws/"+M, 1)
	f("/s?"+jwt, "/s?"+M, 1)
}

func TestRouteNoAlloc(t *testing.T) {
	r := mustNew(t, nil)
	if n := testing.AllocsPerRun(100, func() { r.Route("/sync?client=web&v=3&cursor=abc%20def") }); n != 0 {
		t.Errorf("Route allocates %v times with nothing to redact", n)
	}
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
	for _, s := range []string{
		"/ws/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln?x=1", "/s?h=Bearer%20abcDEF123456&userJwt=1",
		"/s?b=Basic+dXNlcjpwYXNz;next_page_token=2",
		// Found by fuzzing: a name hidden behind ?, a token glued to its
		// padding, credentials in a secret name, a marker after "Bearer".
		"?Creds0?=0", "BeArer 00000000=0", "#BAsiC Xzp0 token=0", "#Bearer =0", "#Bearer 0=0",
		"#%0eyJ0000000.00.", "#BAsiC Xzp= %0X0000",
	} {
		f.Add(s)
	}
	r := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, s string) {
		got, n := r.Route(s)
		if n == 0 && got != s {
			t.Fatalf("Route(%q) = %q with nothing counted", s, got)
		}
		// The path changes only where it holds a token shape.
		if q := strings.IndexAny(s, "?#"); q >= 0 {
			path, _ := replaceTokens(s[:q], inURL)
			if !strings.HasPrefix(got, path) || got[len(path)] != s[q] {
				t.Fatalf("Route(%q) = %q changed the path", s, got)
			}
		} else if want, _ := replaceTokens(s, inURL); got != want {
			t.Fatalf("Route(%q) = %q without a query", s, got)
		}
		if _, _, ok := nextToken(got, 0, inURL); ok {
			t.Fatalf("Route(%q) = %q leaves a token shape", s, got)
		}
		// Whatever a server's query parser sees, no configured value is in it.
		_, rawQuery, _ := strings.Cut(got, "?")
		rawQuery, _, _ = strings.Cut(rawQuery, "#")
		for _, sep := range []string{"&", ";"} {
			vals, _ := url.ParseQuery(strings.ReplaceAll(rawQuery, sep, "&"))
			for name, vs := range vals {
				if !r.paramNames[strings.ToLower(name)] && !secretName(name) {
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
