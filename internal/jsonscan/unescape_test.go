package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestDecodeEscape(t *testing.T) {
	f := func(s string, i int, want rune, wantNext int, wantOK bool) {
		t.Helper()
		r, next, ok := DecodeEscape([]byte(s), i)
		if r != want || next != wantNext || ok != wantOK {
			t.Errorf("DecodeEscape(%q, %d) = %U, %d, %t, want %U, %d, %t", s, i, r, next, ok, want, wantNext, wantOK)
		}
	}
	f(`\n`, 0, '\n', 2, true)
	f(`a\"b`, 1, '"', 3, true)
	f(`\/`, 0, '/', 2, true)
	f(`\\`, 0, '\\', 2, true)
	f(`\u00e9x`, 0, 'é', 6, true)
	f(`\u20AC`, 0, '€', 6, true)
	f(`\ud83d\ude00!`, 0, '😀', 12, true)          // a pair is one escape
	f(`\ud83d\u0041`, 0, utf8.RuneError, 6, true) // a high surrogate, then no low one
	f(`\ude00\ud83d`, 0, utf8.RuneError, 6, true) // a low one first
	f(`\ud83d\ude0`, 0, utf8.RuneError, 6, true)  // the low one cut short
	f(`\ud83d`, 0, utf8.RuneError, 6, true)
	f(`\x`, 0, 0, 0, false)
	f(`\u12g4`, 0, 0, 0, false)
	f(`ab\u12`, 2, 0, 2, false)
	f(`\`, 0, 0, 0, false)
	f(`n\n`, 0, 0, 0, false) // not at a backslash
	f(`\n`, -1, 0, -1, false)
	f(`\n`, 5, 0, 5, false)
}

func TestUnescape(t *testing.T) {
	f := func(s string, size int, want string, wantOK bool) {
		t.Helper()
		dst := make([]byte, size)
		n, ok := Unescape(dst, []byte(s))
		if string(dst[:n]) != want || ok != wantOK {
			t.Errorf("Unescape(%q) into %d bytes = %q, %t, want %q, %t", s, size, dst[:n], ok, want, wantOK)
		}
	}
	f(`plain`, 16, "plain", true)
	f(`a\"b\\c\/d`, 16, `a"b\c/d`, true)
	f(`\b\f\n\r\t`, 16, "\b\f\n\r\t", true)
	f(`\u0041\u00e9\u20AC`, 16, "Aé€", true)
	f(`\ud83d\ude00`, 16, "😀", true)             // a surrogate pair
	f(`\ud83dx`, 16, "\ufffdx", true)            // a lone high surrogate
	f(`\ude00`, 16, "\ufffd", true)              // a lone low surrogate
	f(`\ud83d\u0041`, 16, "\ufffdA", true)       // a high surrogate, then no low one
	f(`\ud83d\ud83d\ude00`, 16, "\ufffd😀", true) // two highs, then a low
	f("\xff\\n", 16, "\xff\n", true)             // not UTF-8: copied
	f(`\x`, 16, "", false)
	f(`ab\`, 16, "ab", false)
	f(`\u12`, 16, "", false)
	f(`\u12g4`, 16, "", false)
	f(`abcd`, 3, "abc", false)
	f(`ab\n`, 2, "ab", false)
	f(`a\u20ac`, 3, "a", false) // € takes three bytes
	f(``, 0, "", true)
}

func TestAppendUnescape(t *testing.T) {
	f := func(s, want string, wantOK bool) {
		t.Helper()
		got, ok := AppendUnescape([]byte("pre:"), []byte(s))
		if string(got) != "pre:"+want || ok != wantOK {
			t.Errorf("AppendUnescape(%q) = %q, %t, want %q, %t", s, got, ok, "pre:"+want, wantOK)
		}
	}
	f(``, "", true)
	f(`plain`, "plain", true)
	f(`a\"b\\c\/d`, `a"b\c/d`, true)
	f(`\b\f\n\r\t`, "\b\f\n\r\t", true)
	f(`\u0041\u00e9\u20AC`, "Aé€", true)
	f(`x\ud83d\ude00y`, "x😀y", true)
	f(`\ud83dx`, "\ufffdx", true)
	f(`\ude00`, "\ufffd", true)
	f(`\ud83d\ud83d\ude00`, "\ufffd😀", true)
	f("\xff\\n\xc3", "\xff\n\xc3", true) // not UTF-8: copied
	f(`ab\x`, "ab", false)
	f(`ab\`, "ab", false)
	f(`a\nb\u12`, "a\nb", false)
}

func TestHex4(t *testing.T) {
	f := func(s string, i int, want rune, wantOK bool) {
		t.Helper()
		r, ok := Hex4([]byte(s), i)
		if r != want || ok != wantOK {
			t.Errorf("Hex4(%q, %d) = %#x, %t, want %#x, %t", s, i, r, ok, want, wantOK)
		}
	}
	f("00e9", 0, 0xe9, true)
	f("xFfFf", 1, 0xffff, true)
	f("aBcD", 0, 0xabcd, true)
	f("12g4", 0, 0, false)
	f("123", 0, 0, false)
	f("1234", 1, 0, false)
	f("1234", -1, 0, false)
}

// FuzzAppendUnescape checks the decoders of string bodies on any bytes:
// none panics, AppendUnescape keeps what dst held and agrees with Unescape
// and with DecodeEscape at every backslash; on a valid body, nothing fails,
// the decoding is no longer than the body and is what encoding/json
// decodes, but for bytes that are not UTF-8, which it copies where
// encoding/json writes U+FFFD.
func FuzzAppendUnescape(f *testing.F) {
	for _, s := range []string{
		``, `plain`, `a\"b\\c\/d`, `\b\f\n\r\t`, `\u0041\u00e9\u20AC`, `\ud83d\ude00`,
		`\ud83dx`, `\ude00`, `\ud83d\u0041`, `\ud83d\ud83d\ude00`, "\xff\\n", "\xc3\\u00a9",
		`\x`, `ab\`, `\u12`, `\u12g4`, `\ud83d\ude0`, `\uDBFF\uDFFF`, `\u0000`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got, ok := AppendUnescape([]byte("pre:"), s)
		if !bytes.HasPrefix(got, []byte("pre:")) {
			t.Fatalf("AppendUnescape(%q) = %q: lost dst", s, got)
		}
		got = got[len("pre:"):]
		buf := make([]byte, 4*len(s)+4)
		n, ok2 := Unescape(buf, s)
		if ok != ok2 || !bytes.Equal(got, buf[:n]) {
			t.Fatalf("AppendUnescape(%q) = %q, %t; Unescape %q, %t", s, got, ok, buf[:n], ok2)
		}
		for i := range s {
			if s[i] != '\\' {
				continue
			}
			r, next, ok := DecodeEscape(s, i)
			if ok && (next <= i+1 || next > len(s)) || !ok && next != i {
				t.Fatalf("DecodeEscape(%q, %d) = %U, %d, %t: next out of place", s, i, r, next, ok)
			}
			if ok && (!utf8.ValidRune(r)) {
				t.Fatalf("DecodeEscape(%q, %d) = %U: not a character", s, i, r)
			}
		}
		q := append(append([]byte{'"'}, s...), '"')
		if !json.Valid(q) {
			return
		}
		if !ok {
			t.Fatalf("AppendUnescape(%q) failed on a valid body", s)
		}
		if len(got) > len(s) {
			t.Fatalf("AppendUnescape(%q) = %q: longer than its body", s, got)
		}
		var want string
		if err := json.Unmarshal(q, &want); err != nil {
			t.Fatal(err)
		}
		// Converting to runes replaces each byte that is not UTF-8 with
		// U+FFFD, as encoding/json does.
		if string([]rune(string(got))) != want {
			t.Fatalf("AppendUnescape(%q) = %q, encoding/json %q", s, got, want)
		}
	})
}
