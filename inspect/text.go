package inspect

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// payloadText renders a payload for a terminal: UTF-8 as text (with
// terminalText's escapes), anything else as hex.
func payloadText(p []byte) string {
	if utf8.Valid(p) {
		return terminalText(string(p))
	}
	const show = 64
	if len(p) > show {
		return fmt.Sprintf("(binary, %d bytes) %s…", len(p), hex.EncodeToString(p[:show]))
	}
	return fmt.Sprintf("(binary, %d bytes) %s", len(p), hex.EncodeToString(p))
}

// terminalText makes captured text, which any client chose, safe to print
// on a terminal and one line long: newline, carriage return and tab become
// \n, \r and \t; other C0 controls, DEL and bytes that are not UTF-8
// become \xNN; C1 controls, the Unicode line and paragraph separators and
// the bidirectional controls (which reorder what follows them) become
// \uNNNN. Printable text, whatever its script, stays as it is. A backslash
// in the text is not escaped: --json gives the exact bytes.
func terminalText(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafeRune(r, size):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError || r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether terminalText escapes r, decoded from size
// bytes.
func unsafeRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1: // not UTF-8
		return true
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi controls
		return true
	}
	return false
}

// jsonEscaper writes JSON from encoding/json, which escapes C0 controls
// and the line separators, with DEL, C1 controls and the bidirectional
// controls escaped as well (\uNNNN): the same JSON value, safe for a
// terminal. Outside strings JSON is ASCII, so these only occur inside
// strings, and each Encode is one Write, so none is split.
type jsonEscaper struct{ w io.Writer }

func (j jsonEscaper) Write(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		r, size := utf8.DecodeRune(p[i:])
		if r >= 0x7f && r != utf8.RuneError && unsafeRune(r, size) {
			break
		}
		i += size
	}
	if i == len(p) {
		return j.w.Write(p)
	}
	out := append(make([]byte, 0, len(p)+16), p[:i]...)
	for i < len(p) {
		r, size := utf8.DecodeRune(p[i:])
		if r >= 0x7f && r != utf8.RuneError && unsafeRune(r, size) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	if _, err := j.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// orDash is s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanBytes writes n bytes with a binary unit: 1.5KiB, 2.0MiB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
