package redact

import (
	"net/http"
	"testing"
)

// Real-world tokens.
const (
	jwtHS256 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	jwtNone  = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."
	jwe      = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ"
)

// TestTokenShapesReplaceOnlyTheToken checks the shape detectors over real
// tokens and near misses: only the token goes, the text around it stays.
func TestTokenShapesReplaceOnlyTheToken(t *testing.T) {
	f := func(in, want string, n int) {
		t.Helper()
		got, gn := replaceTokens(in, inText)
		if got != want || gn != n {
			t.Errorf("replaceTokens(%q)\n = %q, %d\nwant %q, %d", in, got, gn, want, n)
		}
		b, bn := appendTokens([]byte("x"), []byte(in), inText)
		if bn == 0 {
			b = append(b, in...)
		}
		if string(b[1:]) != want || bn != n {
			t.Errorf("appendTokens(%q) = %q, %d", in, b[1:], bn)
		}
	}
	f(jwtHS256, M, 1)
	f("bad token "+jwtHS256, "bad token "+M, 1)
	f("t="+jwtNone+"&x=1", "t="+M+"&x=1", 1)
	f(jwe+" end", M+" end", 1)
	f(`"`+jwtHS256+`","`+jwtNone+`"`, `"`+M+`","`+M+`"`, 2)
	f("Authorization: Bearer ya29.a0AfH6SMBx-ghp_16C7e42F292c6912E7710c838347Ae178B4a", "Authorization: Bearer "+M, 1)
	f("bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a;", "bearer "+M+";", 1)
	f("BEARER+abcdEFGH1234==", "BEARER+"+M, 1)
	f("Bearer%20abcdEFGH1234%2F%3D", "Bearer%20"+M, 1)
	f("Basic dXNlcjpwYXNzd29yZA==", "Basic "+M, 1)
	f("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ== x", "Authorization: Basic "+M+" x", 1)
	f(`Basic dXNlcjpw\/YXNz`, `Basic dXNlcjpw\/YXNz`, 0) // not base64 of user:pass
	// Near misses stay.
	for _, s := range []string{
		"eyJ", "eyJhbGciOiJIUzI1NiJ9", "eyJhbG.eyJzdWIi.x", "eyJhbGciOiJIUzI1NiJ9.e.sig",
		"the bearer of the news", "Bearer abcdefg", "the bearer instrument", "Bearer abcdefghijk",
		"Basic information", "basic plan", "Basic dGVzdA==", "xBearer abcdEFGH1234",
		"Bearer " + M, "Bearer =abcdEFGH1234", "dGhlIHNhbXBsZSBub25jZQ==",
		"550e8400-e29b-41d4-a716-446655440000", "v1.2.3", "a.b.c", "", "Bearer",
	} {
		f(s, s, 0)
	}
}

// FuzzTokenShapes checks that the shape detectors never panic, that what
// they leave holds no token and is left alone the second time, and that
// the string and byte forms agree. It drives the other text entry points
// too, which must not panic.
func FuzzTokenShapes(f *testing.F) {
	for _, s := range []string{jwtHS256, jwtNone, jwe, "Bearer ya29.a0AfH6SMBx", "Basic dXNlcjpwYXNz", "x Bearer%20abcDEF123456==x", `Basic dXNl\/cjpw`, "eyJ" + M} {
		f.Add(s)
	}
	r := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, s string) {
		for _, url := range []bool{inText, inURL} {
			got, n := replaceTokens(s, url)
			b, bn := appendTokens(nil, []byte(s), url)
			if bn == 0 {
				b = []byte(s)
			}
			if string(b) != got || bn != n || (n == 0) != (got == s) {
				t.Fatalf("replaceTokens(%q, %v) = %q, %d; appendTokens = %q, %d", s, url, got, n, b, bn)
			}
			if _, _, ok := nextToken(got, 0, url); ok {
				t.Fatalf("replaceTokens(%q, %v) = %q leaves a token", s, url, got)
			}
			if again, n := replaceTokens(got, url); again != got || n != 0 {
				t.Fatalf("replaceTokens(%q, %v) is not idempotent: %q -> %q", s, url, got, again)
			}
		}
		reason, res := r.CloseReason(s)
		if res.Blanked && reason != Marker {
			t.Fatalf("CloseReason(%q) = %q %+v", s, reason, res)
		}
		r.Header(http.Header{"X-Any": {s}, "Sec-Websocket-Protocol": {s}, "Referer": {s}})
		r.Subprotocol(s, []string{s, "x, " + s})
		r.Route(s)
	})
}
