package loadtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
)

// frameLines are lines of frame events as session.JSON's encoder writes
// them, payloads of every kind: the fast path must take each.
func frameLines(t testing.TB) [][]byte {
	id := session.ID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff}
	frame := func(dir session.Direction, op session.Opcode, payload string, truncated bool) session.Event {
		return session.Event{Session: id, Seq: 1<<64 - 1, Kind: session.KindFrame, Direction: dir, Opcode: op,
			Offset: 1234567 * time.Microsecond, Payload: []byte(payload), Truncated: truncated}
	}
	evs := []session.Event{
		frame(session.ClientToServer, session.Text, `{"type":"query","id":1,"op":"tasks.list","params":{"q":"a \"b\" c\\d"}}`, false),
		frame(session.ServerToClient, session.Text, `{"type":"result","id":1,"data":["<tag> & é ☃ 𝄞","\u2028"]}`, false),
		frame(session.ServerToClient, session.Binary, "\x00\x01\xff\xfe binary", false),
		frame(session.ClientToServer, session.Text, "line\nbreak\ttab\r\x01\x1f\x7f", true),
		frame(session.ClientToServer, session.Text, "", false),
		{Session: id, Seq: 0, Kind: session.KindFrame, Direction: session.ServerToClient, Opcode: session.Text, Offset: -5 * time.Microsecond},
		frame(session.ClientToServer, session.Text, strings.Repeat(`{"k":"v"},`, 20000), false),
	}
	var out [][]byte
	for i := range evs {
		b, err := json.Marshal(evs[i].ToJSON())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkFrameDecoder fails unless the fast path, when it takes line,
// returns what encoding/json does.
func checkFrameDecoder(t *testing.T, line []byte) (fast bool) {
	t.Helper()
	var d lineDecoder
	got, ok := d.frame(line)
	if !ok {
		return false
	}
	want, err := decodeLineJSON(line)
	if err != nil {
		t.Fatalf("%q: the fast path decoded %+v, encoding/json says %v", line, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: the fast path decoded\n%+v\nencoding/json\n%+v", line, got, want)
	}
	return true
}

func TestFrameDecoderTakesTheEncodersFrames(t *testing.T) {
	for _, line := range frameLines(t) {
		if !checkFrameDecoder(t, line) {
			t.Errorf("%q: not taken by the fast path", line)
		}
	}
}

func TestFrameDecoderAgreesWithEncodingJSON(t *testing.T) {
	const id = `"00112233445566778899aabbccddeeff"`
	f := func(line string, fast bool) {
		t.Helper()
		if got := checkFrameDecoder(t, []byte(line)); got != fast {
			t.Errorf("%s: fast path %t, want %t", line, got, fast)
		}
	}
	base := `"session":` + id + `,"seq":3,"kind":"frame","offset_us":50000,"direction":"client","opcode":"text"`
	f(`{`+base+`,"payload":"x"}`, true)
	f(` { `+strings.ReplaceAll(base, ",", " ,\t")+` , "payload" : "x" } `, true)
	f(`{`+base+`,"payload_hex":"00ff"}`, true)
	f(`{`+base+`,"payload":"x","payload_hex":"zz"}`, true) // the payload wins; hex not read
	f(`{`+base+`}`, true)
	f(`{`+base+`,"truncated":false}`, true)
	f(`{"kind":"frame","direction":"server","opcode":"binary"}`, true)
	f(`{`+base+`,"offset_us":-9223372036854775808}`, false) // twice
	f(`{"offset_us":-9223372036854775808,"kind":"frame","direction":"server","opcode":"text"}`, true)
	f(`{"seq":18446744073709551615,"kind":"frame","direction":"server","opcode":"text"}`, true)
	f(`{"payload":"\ud834\udd1e","kind":"frame","direction":"server","opcode":"text"}`, false) // a surrogate pair
	f(`{"payload":"\u00e9\u0000","kind":"frame","direction":"server","opcode":"text"}`, true)
	// What encoding/json decodes otherwise, or refuses: the slow path.
	for _, s := range []string{
		`{` + base + `,"payload":"x",}`, `{` + base + `,"payload":"x"`, `{` + base + `,"payload":"x"}x`,
		`{` + base + `,"payload":"x" "truncated":true}`, `{` + base + `,"seq":4}`, `{` + base + `,"Payload":"x"}`,
		`{` + base + `,"payload":null}`, `{` + base + `,"payload":"\x"}`, `{` + base + `,"payload":"a` + "\x01" + `"}`,
		`{` + base + `,"payload":"` + "\xff" + `"}`, `{` + base + `,"payload":"\ud800"}`, `{` + base + `,"payload_hex":"0"}`,
		`{` + base + `,"payload_hex":"0g"}`, `{` + base + `,"truncated":1}`, `{` + base + `,"truncated":tru}`,
		`{` + base + `,"extra":1}`, `{"seq":18446744073709551616,"kind":"frame"}`, `{"seq":-1}`, `{"seq":1.0}`, `{"seq":1e3}`,
		`{"seq":01}`, `{"offset_us":-}`, `{"offset_us":9223372036854775808}`, `{"session":"0011","kind":"frame"}`,
		`{"session":"zz112233445566778899aabbccddeeff"}`, `{"kind":"fr\u0061me"}`, `{"kind":"open"}`, `{"kind":"close"}`,
		`{"kind":"frame","direction":"up","opcode":"text"}`, `{"kind":"frame","direction":"client","opcode":"ping"}`,
		`{"error":"cache stopped"}`, `[]`, `{}`, ``, `{"kind":"frame","direction":"client","opcode":"text",}`, `{,}`,
	} {
		f(s, false)
	}
}

func FuzzFrameDecoder(f *testing.F) {
	for _, line := range frameLines(f) {
		f.Add(line)
	}
	f.Add([]byte(`{"session":"00112233445566778899aabbccddeeff","seq":3,"kind":"frame","offset_us":-1,"direction":"server","opcode":"binary","payload_hex":"00ff","truncated":true}`))
	f.Add([]byte(`{"kind":"frame","direction":"client","opcode":"text","payload":"\u00e9\n\\\"\/"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		checkFrameDecoder(t, line)
	})
}

// TestReadCorpusBoundsALine reads lines up to the bound and fails at the
// first longer one, naming it, whether it fits the reader's buffer or not,
// whether it ends with a newline or not.
func TestReadCorpusBoundsALine(t *testing.T) {
	line := func(payload int) string {
		return `{"session":"00112233445566778899aabbccddeeff","seq":1,"kind":"frame","direction":"client","opcode":"text","payload":"` +
			strings.Repeat("x", payload) + `"}` + "\n"
	}
	open := `{"session":"00112233445566778899aabbccddeeff","seq":0,"kind":"open"}` + "\n"
	f := func(in string, maxLine int, want string) {
		t.Helper()
		c, err := readCorpus(strings.NewReader(in), maxLine)
		switch {
		case want == "" && err != nil:
			t.Errorf("%d bytes, lines of at most %d: %v", len(in), maxLine, err)
		case want == "" && len(c.Sessions) != 1:
			t.Errorf("%d bytes, lines of at most %d: %d sessions", len(in), maxLine, len(c.Sessions))
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("%d bytes, lines of at most %d: error %v, want %q", len(in), maxLine, err, want)
		}
	}
	tooLong := func(line, n int) string {
		return fmt.Sprintf("read corpus line %d: line longer than %d bytes", line, n)
	}
	short, long := line(10), line(200<<10) // the reader's buffer is 64 KiB
	f(open+short, len(short), "")
	f(open+short, len(short)-1, tooLong(2, len(short)-1))
	f(open+strings.TrimSuffix(short, "\n"), len(short)-1, "") // no newline: a byte less
	f(open+strings.TrimSuffix(short, "\n"), len(short)-2, tooLong(2, len(short)-2))
	f(open+long+short, len(long), "")
	f(open+long+short, len(long)-1, tooLong(2, len(long)-1))
	f(open+strings.TrimSuffix(long, "\n"), len(long)-2, tooLong(2, len(long)-2))
	f(open+short+long, 100<<10, tooLong(3, 100<<10))
}

// TestLineReaderLetsALongLineGo checks the memory of a long line is not
// held once the lines are short again.
func TestLineReaderLetsALongLineGo(t *testing.T) {
	in := strings.Repeat("x", 3<<20) + "\nshort\n"
	r := lineReader{br: bufio.NewReaderSize(strings.NewReader(in), 64<<10), max: 8 << 20}
	if b, err := r.next(); err != nil || len(b) != 3<<20 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	if b, err := r.next(); err != nil || string(b) != "short" {
		t.Fatalf("%q, %v", b, err)
	}
	if r.long != nil {
		t.Fatalf("holds %d bytes after a short line", cap(r.long))
	}
}

// BenchmarkFrameDecoder decodes the line of a recorded result of about
// 1.5 KB, the bulk of a load test's corpus.
func BenchmarkFrameDecoder(b *testing.B) {
	g := corpus.New(1)
	g.Query("tasks.list")
	ev := session.Event{Session: session.ID{1}, Seq: 2, Kind: session.KindFrame, Direction: session.ServerToClient,
		Opcode: session.Text, Offset: time.Second, Payload: g.Result(g.LastID(), "tasks.list")}
	line, err := json.Marshal(ev.ToJSON())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(line)))
	var d lineDecoder
	for b.Loop() {
		if _, ok := d.frame(line); !ok {
			b.Fatal("not decoded")
		}
	}
}
