package capture_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/capture/redact"
)

// redacted reports whether p's redactor replaces the value of header.
func redacted(t *testing.T, p capture.Policy, header string) bool {
	t.Helper()
	h, _ := p.Redactor.Header(http.Header{http.CanonicalHeaderKey(header): {"plain-value"}})
	return h.Get(header) == redact.Marker
}

// policyFile decodes a policy file's text.
func policyFile(t *testing.T, text string) *capture.PolicyFile {
	t.Helper()
	f, err := capture.ParsePolicyFile([]byte(text))
	if err != nil {
		t.Fatalf("decode %q: %v", text, err)
	}
	return f
}

// TestParsePolicyFileNamesUnknownKeys: a misspelt key is refused with its
// name and line, in the file's words rather than the decoder's Go types; an
// empty file is a file with no settings; malformed YAML is an error.
func TestParsePolicyFileNamesUnknownKeys(t *testing.T) {
	_, err := capture.ParsePolicyFile([]byte("sample_rate: 0.5\nredact:\n  feilds: [token]\n"))
	if err == nil || err.Error() != "line 3: unknown key feilds" {
		t.Fatalf("unknown key: got %v, want \"line 3: unknown key feilds\"", err)
	}
	f, err := capture.ParsePolicyFile(nil)
	if err != nil || f == nil || f.SampleRate != nil {
		t.Fatalf("empty file: %+v, %v", f, err)
	}
	if _, err := capture.ParsePolicyFile([]byte("include: [unclosed\n")); err == nil {
		t.Fatal("malformed YAML was accepted")
	}
	if _, err := capture.ParsePolicyFile([]byte("sample_rate: lots\n")); err == nil || strings.Contains(err.Error(), "capture.") {
		t.Fatalf("a value of the wrong type: %v (want an error without Go type names)", err)
	}
}

func TestPolicyFileWinsOverBase(t *testing.T) {
	base := capture.Policy{SampleRate: 1, Include: []string{"/a*"}, Exclude: []string{"/a/x"}}
	ro := &redact.Options{Headers: make([]string, 1, 8)}
	ro.Headers[0] = "X-From-Flags"

	var none *capture.PolicyFile
	p, err := none.Policy(base, ro)
	if err != nil {
		t.Fatal(err)
	}
	if p.SampleRate != 1 || !slices.Equal(p.Include, base.Include) || !slices.Equal(p.Exclude, base.Exclude) ||
		!redacted(t, p, "X-From-Flags") || redacted(t, p, "X-From-File") {
		t.Errorf("without a file: %+v", p)
	}

	f := policyFile(t, "sample_rate: 0.25\ninclude: [\"/sync*\"]\nredact:\n  headers: [X-From-File]\n")
	p, err = f.Policy(base, ro)
	if err != nil {
		t.Fatal(err)
	}
	if p.SampleRate != 0.25 || !slices.Equal(p.Include, []string{"/sync*"}) || !slices.Equal(p.Exclude, base.Exclude) {
		t.Errorf("with a file: sample %v, include %q, exclude %q; want the file's sample and include, the base's exclude", p.SampleRate, p.Include, p.Exclude)
	}
	if !redacted(t, p, "X-From-Flags") || !redacted(t, p, "X-From-File") {
		t.Error("the file's redacted headers do not add to the base's")
	}
	if len(ro.Headers) != 1 || ro.Headers[:2][1] != "" {
		t.Errorf("Policy wrote into the caller's options: %q", ro.Headers[:2])
	}
}

func TestPolicyFileRefusesBadPolicies(t *testing.T) {
	f := func(text, want string) {
		t.Helper()
		if _, err := policyFile(t, text).Policy(capture.DefaultPolicy(), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy file %q: %v, want an error mentioning %q", text, err, want)
		}
	}
	f("sample_rate: 1.5\n", "sample rate 1.5")
	f("include: [sync]\n", `route pattern "sync"`)
	f("redact:\n  fields: [\"a..b\"]\n", "redaction rules")
	if _, err := policyFile(t, `{"sample_rate": 0.5, "redact": {"keep_binary": true}}`).Policy(capture.DefaultPolicy(), nil); err != nil {
		t.Errorf("a JSON policy file: %v", err)
	}
}
