package redact_test

import (
	"testing"

	"github.com/preheatdev/preheat/capture/redact"
)

func TestClean(t *testing.T) {
	r, err := redact.New(&redact.Options{JSONKeys: []string{"pin"}})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := redact.New(&redact.Options{KeepBinary: true})
	if err != nil {
		t.Fatal(err)
	}
	f := func(r *redact.Redactor, src string, binary, want bool) {
		t.Helper()
		if got := r.Clean([]byte(src), binary); got != want {
			t.Errorf("Clean(%q, binary %v) = %v, want %v", src, binary, got, want)
		}
		// Clean must agree with what Payload and Binary do.
		var out []byte
		if binary {
			out, _ = r.Binary(nil, []byte(src))
		} else {
			out, _ = r.Payload(nil, []byte(src), false)
		}
		if want && string(out) != src {
			t.Errorf("Clean said %q passes unchanged, but it became %q", src, out)
		}
	}
	f(r, `{"type":"query","id":1}`, false, true)
	f(r, `{"type":"connect","token":"x"}`, false, false)
	f(r, `{"PIN":1}`, false, false)
	f(r, `{"p\u0069n":1}`, false, false)
	f(r, "\x80\x81password\x82", true, false)
	f(keep, "\x80\x81password\x82", true, true)
	f(r, "\x01\x02\x03", true, true)
}
