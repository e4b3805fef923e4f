package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestSkipSpace(t *testing.T) {
	f := func(s string, i, want int) {
		t.Helper()
		if got := SkipSpace([]byte(s), i); got != want {
			t.Errorf("SkipSpace(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
	f("", 0, 0)
	f("x", 0, 0)
	f(" \t\r\nx", 0, 4)
	f("a  b", 1, 3)
	f("   ", 1, 3)
	f("\v x", 0, 0) // not JSON whitespace
	f("\u00a0x", 0, 0)
}

func TestStringEnd(t *testing.T) {
	f := func(s string, i, want int, wantEsc bool) {
		t.Helper()
		got, esc := StringEnd([]byte(s), i)
		if got != want || esc != wantEsc {
			t.Errorf("StringEnd(%q, %d) = %d, %t, want %d, %t", s, i, got, esc, want, wantEsc)
		}
	}
	f(`""`, 0, 2, false)
	f(`"ab",1`, 0, 4, false)
	f(`{"k":1}`, 1, 4, false)
	f(`"a\"b"x`, 0, 6, true)
	f(`"a\\"x`, 0, 5, true)
	f(`"\u0041"`, 0, 8, true)
	f(`"open`, 0, 5, false)
	f(`"open\`, 0, 6, true)
	f(`"`, 0, 1, false)
}

func TestLiteralEnd(t *testing.T) {
	f := func(s string, i, want int) {
		t.Helper()
		if got := LiteralEnd([]byte(s), i); got != want {
			t.Errorf("LiteralEnd(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
	f("true", 0, 4)
	f("null,", 0, 4)
	f("-1.5e+3}", 0, 7)
	f("[1,22]", 3, 5)
	f("0 ", 0, 1)
	f("12:", 0, 2)
	f("", 0, 0)
}

func TestValueEnd(t *testing.T) {
	f := func(s string, i, want int) {
		t.Helper()
		if got := ValueEnd([]byte(s), i); got != want {
			t.Errorf("ValueEnd(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
	f(`"s"`, 0, 3)
	f(`{}`, 0, 2)
	f(`[]x`, 0, 2)
	f(`{"a":[1,{"b":"}"}],"c":"]"} ,`, 0, 27)
	f(`[[[]],[]]`, 1, 5)
	f(`{"a":"\"}"}`, 0, 11)
	f(`12 `, 0, 2)
	f(`{"a":1`, 0, 6) // not closed
	f(`x`, 1, 1)
	f(``, 0, 0)
	f(`[1]`, 5, 5)
}

func TestStringBody(t *testing.T) {
	f := func(s, want string, wantOK bool) {
		t.Helper()
		got, ok := StringBody([]byte(s))
		if string(got) != want || ok != wantOK {
			t.Errorf("StringBody(%q) = %q, %t, want %q, %t", s, got, ok, want, wantOK)
		}
	}
	f(`"abc"`, "abc", true)
	f(`""`, "", true)
	f(`"a\"b"`, `a\"b`, true)
	f(`"`, "", false)
	f(`12`, "", false)
	f(`"abc`, "", false)
	f(`null`, "", false)
}

// FuzzScan checks the scanners on any bytes: none panics or returns an
// index outside [i, len(b)] (i itself past the end); on valid JSON, a document is one value and an
// object's members split into valid keys and values; a string's escapes
// decode as encoding/json decodes them.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,null,{"c":"d\"}"}],"e":-1.5e3}`,
		` [ "x" , { } , [ ] ] `,
		`"\ud83d\ude00\u00e9\n\\"`,
		`"\ud83d"`,
		`{"k\u0000":"v","K":{"":""}}`,
		`12`,
		`{"a":`,
		`"unterminated\`,
		"\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range min(len(b), 256) + 2 {
			in := func(name string, got int) {
				t.Helper()
				if got < i || got > max(i, len(b)) {
					t.Fatalf("%s(%q, %d) = %d: outside [%d, %d]", name, b, i, got, i, max(i, len(b)))
				}
			}
			in("SkipSpace", SkipSpace(b, i))
			in("LiteralEnd", LiteralEnd(b, i))
			in("ValueEnd", ValueEnd(b, i))
			if i < len(b) {
				end, _ := StringEnd(b, i)
				in("StringEnd", end)
			}
		}
		var buf [64]byte
		if n, _ := Unescape(buf[:], b); n > len(buf) {
			t.Fatalf("Unescape(%q) = %d: past its buffer", b, n)
		}
		if !json.Valid(b) {
			return
		}
		i := SkipSpace(b, 0)
		end := ValueEnd(b, i)
		if SkipSpace(b, end) != len(b) {
			t.Fatalf("ValueEnd(%q, %d) = %d: the document goes on", b, i, end)
		}
		switch b[i] {
		case '{':
			members(t, b, i)
		case '"':
			end, esc := StringEnd(b, i)
			body, ok := StringBody(b[i:end])
			if !ok || esc != bytes.Contains(body, []byte{'\\'}) {
				t.Fatalf("StringEnd(%q) = %d, %t; StringBody %q, %t", b, end, esc, body, ok)
			}
			var want string
			if err := json.Unmarshal(b[i:end], &want); err != nil {
				t.Fatal(err)
			}
			dst := make([]byte, len(body)) // decoding never lengthens
			n, ok := Unescape(dst, body)
			if !ok {
				t.Fatalf("Unescape(%q) failed", body)
			}
			// encoding/json replaces bytes that are not UTF-8; Unescape
			// copies them.
			if utf8.Valid(body) && string(dst[:n]) != want {
				t.Fatalf("Unescape(%q) = %q, encoding/json %q", body, dst[:n], want)
			}
		}
	})
}

// members checks that the object at b[i] of the valid JSON b splits, by
// StringEnd, SkipSpace and ValueEnd, into keys that are strings and values
// that are valid JSON, and ends at its closing brace.
func members(t *testing.T, b []byte, i int) {
	t.Helper()
	i = SkipSpace(b, i+1)
	for b[i] != '}' {
		kEnd, _ := StringEnd(b, i)
		var k string
		if err := json.Unmarshal(b[i:kEnd], &k); err != nil {
			t.Fatalf("key %q of %q: %v", b[i:kEnd], b, err)
		}
		i = SkipSpace(b, kEnd)
		if b[i] != ':' {
			t.Fatalf("no colon after key %q of %q", k, b)
		}
		i = SkipSpace(b, i+1)
		vEnd := ValueEnd(b, i)
		if !json.Valid(b[i:vEnd]) {
			t.Fatalf("value %q of key %q of %q is not valid JSON", b[i:vEnd], k, b)
		}
		if b[i] == '{' {
			members(t, b, i)
		}
		i = SkipSpace(b, vEnd)
		if b[i] == ',' {
			i = SkipSpace(b, i+1)
		}
	}
}
