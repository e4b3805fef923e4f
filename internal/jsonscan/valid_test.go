package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are texts on both sides of json.Valid's line; each test
// checks Valid gives json.Valid's verdict on them.
var validCases = []string{
	``, ` `, `1`, ` 1 `, `-0`, `-`, `01`, `-01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-05`, `1e`, `1e+`,
	`1.5e3x`, `+1`, `0x10`, `1 2`, `true`, `tru`, `truex`, `false`, `null`, `nul`, `NULL`,
	`""`, `"a"`, `"a`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00g9"`, `"\u12"`, `"\x"`,
	"\"\x01\"", "\"\x7f\"", "\"\xff\xfe\"", `"é"`, "\"\t\"",
	`{}`, `{ }`, `{"a":1}`, `{"a" : 1 , "b":[1,2]}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`,
	`{,}`, `{"a":1}}`, `{"a":1]`, `[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,[2,[3]]]`, `[1}`, `[`, `]`, `{`,
	`[{"a":[{}]}]`, `{"a":{"b":{"c":null}}}`, "\r\n\t[1]\r\n", "[1]\v", `{"":""}`, `{"a":1}x`,
	`{"type":"result","id":3,"data":[{"gid":"12","n":1.5e-3,"ok":true}]}`,
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range validCases {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %t, json.Valid %t", s, got, want)
		}
	}
}

// TestValidBoundsNestingAsEncodingJSON checks the depth encoding/json
// allows, 10,000, is Valid's too.
func TestValidBoundsNestingAsEncodingJSON(t *testing.T) {
	for _, n := range []int{63, 64, 65, maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closer := "]"
			if open != "[" {
				closer = "}"
			}
			s := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closer, n))
			if got, want := Valid(s), json.Valid(s); got != want {
				t.Errorf("%d deep %s: Valid %t, json.Valid %t", n, open, got, want)
			}
			if n <= maxDepth && !Valid(s) {
				t.Errorf("%d deep %s: not valid", n, open)
			}
		}
	}
}

// TestValidEndCountsTheDepthAbove checks a value nested depth levels
// deep may itself nest 10,000 - depth levels, as in json.Valid.
func TestValidEndCountsTheDepthAbove(t *testing.T) {
	v := []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100) + " x")
	if got := ValidEnd(v, 0, maxDepth-100); got != 200 {
		t.Errorf("100 levels under %d: end %d, want 200", maxDepth-100, got)
	}
	if got := ValidEnd(v, 0, maxDepth-99); got != -1 {
		t.Errorf("100 levels under %d: end %d, want -1", maxDepth-99, got)
	}
	f := func(s string, i, want int) {
		t.Helper()
		if got := ValidEnd([]byte(s), i, 0); got != want {
			t.Errorf("ValidEnd(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
	f(`{"a":[1,"x"]} , 2`, 0, 13)
	f(`{"a":[1,"x"]} , 2`, 5, 12)
	f(`{"a":[1,"x"]} , 2`, 16, 17)
	f(`"x" y`, 0, 3)
	f(`"x`, 0, -1)
	f(`[1,]`, 0, -1)
	f(`tru`, 0, -1)
	f(``, 0, -1)
	f(`1`, 5, -1)
}

func FuzzValid(f *testing.F) {
	for _, s := range validCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %t, json.Valid %t", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	msg := []byte(`{"type":"result","id":42,"op":"tasks.list","data":[` +
		strings.Repeat(`{"gid":"1200000012345678","resource_type":"task","name":"Draft launch plan","completed":false,`+
			`"assignee":{"gid":"1234","name":"Ada Lovelace"},"due_on":"2026-11-20","modified_at":1763800123456,`+
			`"custom_fields":[{"gid":"1200000087654321","type":"enum","value":"High"}],"num_subtasks":3},`, 5) +
		`{}],"version":123456}`)
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{{"jsonscan", Valid}, {"encoding_json", json.Valid}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if !v.valid(msg) {
					b.Fatal("not valid")
				}
			}
		})
	}
}
