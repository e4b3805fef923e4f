package redact

import "testing"

// TestCloseReasonRedactedLikeText checks close reasons: text with a secret
// name in it becomes the marker, a token alone goes, JSON is redacted as a
// payload, and the rest is kept.
func TestCloseReasonRedactedLikeText(t *testing.T) {
	r := mustNew(t, nil)
	f := func(in, want string, res Result) {
		t.Helper()
		got, gres := r.CloseReason(in)
		if got != want || gres != res {
			t.Errorf("CloseReason(%q) = %q %+v, want %q %+v", in, got, gres, want, res)
		}
	}
	f("", "", Result{})
	f("going away", "going away", Result{})
	f("bad token abc123", M, Result{Blanked: true, Reason: ReasonInvalid})
	f("policy: Bearer abcDEF123456 denied", M, Result{Blanked: true, Reason: ReasonInvalid})
	f("expired: eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. retry", "expired: "+M+" retry", Result{Tokens: 1})
	f(`{"error":"denied","jwt":"abc"}`, `{"error":"denied","jwt":`+B+`}`, Result{Fields: 1})
}
