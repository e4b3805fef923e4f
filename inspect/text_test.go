package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestTerminalTextEscapesWhatDrivesATerminal(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := terminalText(in); got != want {
			t.Errorf("terminalText(%q) = %q, want %q", in, got, want)
		}
	}
	f("plain /sync?client=web", "plain /sync?client=web")
	f("héllo, 世界 ✓ مرحبا", "héllo, 世界 ✓ مرحبا") // printable text of any script stays
	f("a\nb\rc\td", `a\nb\rc\td`)
	f("\x1b[2J\x07\x00", `\x1b[2J\x07\x00`)                           // C0 controls
	f("del\x7f", `del\x7f`)                                           // DEL
	f("c1\u009b31m", `c1\u009b31m`)                                   // C1 control
	f("line\u2028para\u2029", `line\u2028para\u2029`)                 // separators
	f("\u202eevil\u2066\u200f\u061c", `\u202eevil\u2066\u200f\u061c`) // bidi controls
	f("bad\xffutf8", `bad\xffutf8`)                                   // not UTF-8
	f(`back\slash`, `back\slash`)                                     // left as it is
}

func TestPayloadTextShowsBinaryAsHex(t *testing.T) {
	f := func(in []byte, want string) {
		t.Helper()
		if got := payloadText(in); got != want {
			t.Errorf("payloadText(%q) = %q, want %q", in, got, want)
		}
	}
	f([]byte(`{"op":"get"}`), `{"op":"get"}`)
	f([]byte{0xff, 0x00, 0x10}, "(binary, 3 bytes) ff0010")
	long := bytes.Repeat([]byte{0xfe}, 65)
	f(long, "(binary, 65 bytes) "+strings.Repeat("fe", 64)+"…")
}

func TestJSONEscaperKeepsTheValueAndEscapesTerminalControls(t *testing.T) {
	for _, s := range []string{
		"plain",
		"héllo, 世界 ✓",
		"del\x7f c1\u0085\u009b bidi\u202e\u2067 sep\u2028 esc\x1b",
	} {
		var buf bytes.Buffer
		if err := json.NewEncoder(jsonEscaper{&buf}).Encode(map[string]string{"v": s}); err != nil {
			t.Fatal(err)
		}
		for _, r := range buf.String() {
			if r != '\n' && unsafeRune(r, len(string(r))) {
				t.Errorf("%q encoded with %U raw: %q", s, r, buf.String())
			}
		}
		var back map[string]string
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back["v"] != s {
			t.Errorf("%q came back as %q, %v", s, back["v"], err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	f := func(n int64, want string) {
		t.Helper()
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	f(0, "0B")
	f(1023, "1023B")
	f(1536, "1.5KiB")
	f(5<<20, "5.0MiB")
	f(3<<30, "3.0GiB")
}
