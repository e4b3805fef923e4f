package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

const B = Blank // a redacted JSON value, for short test tables

func mustNew(t testing.TB, o *Options) *Redactor {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// payloadCase returns a check that r redacts a JSON payload to want,
// replacing fields values and tokens token shapes, and keeps it valid.
func payloadCase(t *testing.T, r *Redactor) func(in, want string, fields, tokens int) {
	return func(in, want string, fields, tokens int) {
		t.Helper()
		dst := []byte("prefix:")
		out, res := r.Payload(dst, []byte(in), false)
		if got := string(out); got != "prefix:"+want {
			t.Errorf("Payload(%s)\n got %s\nwant %s", in, got[len("prefix:"):], want)
		}
		if res.Fields != fields || res.Tokens != tokens || res.Blanked {
			t.Errorf("Payload(%s) = %+v, want %d fields and %d tokens", in, res, fields, tokens)
		}
		if json.Valid([]byte(in)) && !json.Valid(out[len("prefix:"):]) {
			t.Errorf("Payload(%s) = %s: not valid JSON", in, out)
		}
	}
}

func TestPayloadReplacesSecretValuesAndKeepsJSONValid(t *testing.T) {
	f := payloadCase(t, mustNew(t, nil))
	// Every value type.
	f(`{"token":"abc"}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":12.5e3}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":-0}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":true}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":false}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":null}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":{"a":[1,{"token":2}]}}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":[1,"x",{}]}`, `{"token":`+B+`}`, 1, 0)
	f(`{"token":""}`, `{"token":`+B+`}`, 1, 0)
	// Nothing to redact: byte-identical, even when a secret word is a value.
	f(`{"type":"query","id":12}`, `{"type":"query","id":12}`, 0, 0)
	f(`{"op":"token","list":["token"]}`, `{"op":"token","list":["token"]}`, 0, 0)
	f(`{"next_page_token":"x","token_type":"Bearer"}`, `{"next_page_token":"x","token_type":"Bearer"}`, 0, 0)
	f(`"token"`, `"token"`, 0, 0)
	f(`["password", 1]`, `["password", 1]`, 0, 0)
	// Any depth, top-level arrays, whitespace kept.
	f(`[{"a":{"b":[{"password":"x"}]}}, 2]`, `[{"a":{"b":[{"password":`+B+`}]}}, 2]`, 1, 0)
	f(" \n{ \"token\" \t:\r\n \"abc\" , \"n\" : 1 }\n", " \n{ \"token\" \t:\r\n "+B+" , \"n\" : 1 }\n", 1, 0)
	// Case and separators: words, and the defaults matched whole in any case.
	f(`{"TOKEN":1,"Token":2,"accessToken":3,"access_token":4,"ACCESS-TOKEN":5,"ToKeN":6}`,
		`{"TOKEN":`+B+`,"Token":`+B+`,"accessToken":`+B+`,"access_token":`+B+`,"ACCESS-TOKEN":`+B+`,"ToKeN":`+B+`}`, 6, 0)
	// Escaped keys, and the non-ASCII letters that fold to ASCII.
	f(`{"to\u006ben":"abc"}`, `{"to\u006ben":`+B+`}`, 1, 0)
	f(`{"\u0054\u004F\u004B\u0045\u004E":"abc"}`, `{"\u0054\u004F\u004B\u0045\u004E":`+B+`}`, 1, 0)
	f(`{"to`+"\u212a"+`en":"abc"}`, `{"to`+"\u212a"+`en":`+B+`}`, 1, 0)
	f(`{"to\u212Aen":"abc"}`, `{"to\u212Aen":`+B+`}`, 1, 0)
	f(`{"`+"\u017f"+`ecret":"abc"}`, `{"`+"\u017f"+`ecret":`+B+`}`, 1, 0)
	f(`{"user\u005fjwt":"abc","x\njwt":1,"x\u002Ajwt":2}`, `{"user\u005fjwt":`+B+`,"x\njwt":`+B+`,"x\u002Ajwt":`+B+`}`, 3, 0)
	f(`{"to\"ken":"abc","tok\\en":1}`, `{"to\"ken":"abc","tok\\en":1}`, 0, 0)
	// Duplicate keys: every occurrence.
	f(`{"token":"a","token":"b"}`, `{"token":`+B+`,"token":`+B+`}`, 2, 0)
	// Unicode around a match stays as it was.
	f(`{"名前":"José ☃","password":"pässwörd","e":"\u00e9"}`, `{"名前":"José ☃","password":`+B+`,"e":"\u00e9"}`, 1, 0)
	// JSON embedded in a string, as ActionCable and others send it.
	f(`{"command":"subscribe","identifier":"{\"channel\":\"Chat\",\"token\":\"s3cr3t\"}"}`,
		`{"command":"subscribe","identifier":"{\"channel\":\"Chat\",\"token\":`+`\"`+Marker+`\"}"}`, 1, 0)
	f(`{"note":"reset your password"}`, `{"note":"reset your password"}`, 0, 0)
	f(`{"note":"{token} not json"}`, `{"note":`+B+`}`, 1, 0)
	// Deep but within the limit.
	deep := strings.Repeat(`{"a":`, 100) + `{"token":1}` + strings.Repeat(`}`, 100)
	f(deep, strings.Repeat(`{"a":`, 100)+`{"token":`+B+`}`+strings.Repeat(`}`, 100), 1, 0)
}

func TestPayloadReplacesTokenShapesInsideOtherStrings(t *testing.T) {
	f := payloadCase(t, mustNew(t, nil))
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX19fX19f"
	f(`{"note":"`+jwt+`"}`, `{"note":"`+M+`"}`, 0, 1)
	f(`{"url":"https://app.example/cb?x=1&t=`+jwt+`#y","n":1}`, `{"url":"https://app.example/cb?x=1&t=`+M+`#y","n":1}`, 0, 1)
	f(`{"h":"Bearer abcDEF123456","b":"basic dXNlcjpwYXNz"}`, `{"h":"Bearer `+M+`","b":"basic `+M+`"}`, 0, 2)
	f(`{"h":"Bearer ab\/cDEF123456=="}`, `{"h":"Bearer `+M+`"}`, 0, 1)
	f(`["`+jwt+`", "x `+jwt+` y"]`, `["`+M+`", "x `+M+` y"]`, 0, 2)
	// A token under a secret key goes with its value; one in a key goes too.
	f(`{"token":"`+jwt+`","`+jwt+`":1}`, `{"token":`+B+`,"`+M+`":1}`, 1, 1)
	// A token that starts inside an escape is cut after the escape.
	f(`{"s":"\u123eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}`, `{"s":"\u123e`+M+`"}`, 0, 1)
	// Prose is not a token.
	f(`{"s":"the bearer instrument","t":"basic information","u":"Bearer `+M+`"}`,
		`{"s":"the bearer instrument","t":"basic information","u":"Bearer `+M+`"}`, 0, 0)
}

// TestPayloadPathsMatchWholeSuffixes checks dotted paths, with the word
// rule off so that only the paths apply.
func TestPayloadPathsMatchWholeSuffixes(t *testing.T) {
	f := payloadCase(t, mustNew(t, &Options{NoDefaultJSONKeys: true, JSONKeys: []string{"auth.session", "a.b.c", "pin"}}))
	f(`{"auth":{"session":"s","x":1}}`, `{"auth":{"session":`+B+`,"x":1}}`, 1, 0)
	f(`{"session":"s","auth":{"other":{"session":"s"}}}`, `{"session":"s","auth":{"other":{"session":"s"}}}`, 0, 0)
	f(`{"d":[{"Auth":[[{"session":{"k":1}}]]}]}`, `{"d":[{"Auth":[[{"session":`+B+`}]]}]}`, 1, 0)
	f(`{"a":{"a":{"b":{"c":1}}}}`, `{"a":{"a":{"b":{"c":`+B+`}}}}`, 1, 0)
	f(`{"a":{"b":{"b":{"c":1}}}}`, `{"a":{"b":{"b":{"c":1}}}}`, 0, 0)
	f(`{"pin":1,"pins":2}`, `{"pin":`+B+`,"pins":2}`, 1, 0)
}

func TestPayloadBlank(t *testing.T) {
	r := mustNew(t, &Options{MaxDepth: 8})
	f := func(in string, truncated bool, reason Reason) {
		t.Helper()
		out, res := r.Payload(nil, []byte(in), truncated)
		if reason == ReasonNone {
			if string(out) != in || res != (Result{}) {
				t.Errorf("Payload(%q, %v) = %q %+v, want it unchanged", in, truncated, out, res)
			}
			return
		}
		if string(out) != Blank || !res.Blanked || res.Reason != reason || res.Fields != 0 {
			t.Errorf("Payload(%q, %v) = %q %+v, want blank for %v", in, truncated, out, res, reason)
		}
	}
	// Not JSON, but a secret name is in it.
	f(`token=abc`, false, ReasonInvalid)
	f(`42["auth",{"jwt":"x"`, false, ReasonInvalid) // a Socket.IO packet whose JSON is cut
	f(`user_pwd: hunter2`, false, ReasonInvalid)
	f(`{"token":"abc"`, false, ReasonInvalid)
	f(`{"token":"abc"}}`, false, ReasonInvalid)
	f(`{"token":'abc'}`, false, ReasonInvalid)
	f(`{"token":"abc",}`, false, ReasonInvalid)
	f(`{"token":01}`, false, ReasonInvalid)
	f("{\"token\":\"a\tb\"}", false, ReasonInvalid)
	f(`{"token":"\x"}`, false, ReasonInvalid)
	f(`PASSWORD: hunter2`, false, ReasonInvalid)
	f(`x to\u006ben y`, false, ReasonInvalid)
	f(`x to\\u006ben y`, false, ReasonInvalid)
	f("x to\u212aen y", false, ReasonInvalid)
	// Truncated: blanked even if the prefix parses.
	f(`{"token":"abc"}`, true, ReasonTruncated)
	f(`{"id":1,"token":"ab`, true, ReasonTruncated)
	f(`{"id":1,"t":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig`, true, ReasonTruncated)
	// Too deep to trust.
	f(strings.Repeat("[", 9)+`{"token":1}`+strings.Repeat("]", 9), false, ReasonTooDeep)
	// No name anywhere: passed through, valid or not, truncated or not.
	f(`not json at all`, false, ReasonNone)
	f(`{"id":1,"op":"tasks.li`, true, ReasonNone)
	f(`{"id":1}`, true, ReasonNone)
	f(``, false, ReasonNone)
	f(strings.Repeat("[", 20)+strings.Repeat("]", 20), false, ReasonNone)
	// Escapes that cannot spell a name do not trigger a parse.
	f(`{"html":"\u003cb\u003e","s":"a\"b\\c\n\r\t"}`, false, ReasonNone)
	// Near misses of the secret words.
	f(`{"author":"x","tokenize":true,"keyboard":1,"passage":2,"oauth":3,"key":"tasks","assignee":4}`, false, ReasonNone)
}

// TestPayloadTextKeepsAllButTokens checks that text which is not JSON and
// holds no secret name keeps everything but its token shapes.
func TestPayloadTextKeepsAllButTokens(t *testing.T) {
	r := mustNew(t, nil)
	f := func(in, want string, tokens int) {
		t.Helper()
		out, res := r.Payload(nil, []byte(in), false)
		if string(out) != want || res.Tokens != tokens || res.Blanked || res.Fields != 0 {
			t.Errorf("Payload(%q) = %q %+v, want %q with %d tokens", in, out, res, want, tokens)
		}
	}
	f(`hello eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. bye`, `hello `+M+` bye`, 1)
	f(`42["hello",{"x":"eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.abc"}]`, `42["hello",{"x":"`+M+`"}]`, 1)
	f(`plain text, basic plan`, `plain text, basic plan`, 0)
	// Text with a secret word in it is blanked whole (TestPayloadBlank):
	// "Bearer" is one.
	if out, res := r.Payload(nil, []byte(`MSG Authorization: Bearer Zm9vYmFyMTIzNDU2`), false); string(out) != Blank || !res.Blanked {
		t.Errorf("text with a secret word = %q %+v, want it blank", out, res)
	}
}

func TestBinary(t *testing.T) {
	msgpack := []byte("\x82\xa5token\xa3abc\xa2id\x01")
	plain := []byte{0x00, 0x01, 0xfe, 0xff, 'o', 'k'}
	r := mustNew(t, nil)
	if out, res := r.Binary(nil, msgpack); string(out) != Blank || !res.Blanked || res.Reason != ReasonBinary {
		t.Errorf("Binary(msgpack with token) = %q %+v, want blank", out, res)
	}
	if out, res := r.Binary(nil, plain); !bytes.Equal(out, plain) || res != (Result{}) {
		t.Errorf("Binary(plain) = %q %+v, want it unchanged", out, res)
	}
	keep := mustNew(t, &Options{KeepBinary: true})
	if out, res := keep.Binary(nil, msgpack); !bytes.Equal(out, msgpack) || res != (Result{}) {
		t.Errorf("KeepBinary: Binary(msgpack) = %q %+v, want it unchanged", out, res)
	}
}

func TestNoDefaultJSONKeys(t *testing.T) {
	in := []byte(`{"token":"t","password":"p","pin":1}`)
	r := mustNew(t, &Options{NoDefaultJSONKeys: true, JSONKeys: []string{"pin"}})
	if out, res := r.Payload(nil, in, false); string(out) != `{"token":"t","password":"p","pin":`+B+`}` || res.Fields != 1 {
		t.Errorf("Payload = %s %+v", out, res)
	}
	none := mustNew(t, &Options{NoDefaultJSONKeys: true})
	for _, s := range []string{string(in), "token=1", `{"to\u006ben":1}`} {
		if out, res := none.Payload(nil, []byte(s), false); string(out) != s || res != (Result{}) {
			t.Errorf("without keys, Payload(%s) = %s %+v", s, out, res)
		}
		if out, res := none.Binary(nil, []byte(s)); string(out) != s || res != (Result{}) {
			t.Errorf("without keys, Binary(%s) = %s %+v", s, out, res)
		}
	}
	// Headers and queries keep their defaults.
	if got, _ := none.Route("/s?token=1"); got != "/s?token="+Marker {
		t.Errorf("Route = %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	f := func(o Options, want string) {
		t.Helper()
		_, err := New(&o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) error = %v, want it to mention %q", o, err, want)
		}
	}
	f(Options{JSONKeys: []string{""}}, `JSON key name "": empty`)
	f(Options{JSONKeys: []string{"a..b"}}, `JSON key "a..b": empty path segment`)
	f(Options{JSONKeys: []string{".a"}}, `JSON key ".a": empty path segment`)
	f(Options{JSONKeys: []string{"a."}}, `JSON key "a.": empty path segment`)
	f(Options{JSONKeys: []string{strings.Repeat("k", MaxNameLen+1)}}, "longer than 128 bytes")
	f(Options{JSONKeys: make([]string, MaxNames+1)}, "257 JSON key names: want at most 256")
	f(Options{JSONKeys: []string{"a\nb"}}, "control character")
	f(Options{QueryParams: []string{""}}, `query parameter name "": empty`)
	f(Options{Headers: []string{"X Token"}}, `header "X Token": not a valid header name`)
	f(Options{Subprotocols: []string{"a,b"}}, `subprotocol "a,b": not a valid protocol name`)
	f(Options{MaxDepth: -1}, "max depth -1: want 1 to 10000")
	f(Options{RedactSubprotocols: SubprotocolNone + 1}, "subprotocol rule 3: unknown")
	f(Options{MaxDepth: MaxDepthLimit + 1}, "max depth 10001")
	var many []string
	for i := range 33 {
		many = append(many, strings.Repeat("a.", 2)+string(rune('a'+i%26)))
	}
	f(Options{JSONKeys: many}, "more than 64 path segments")
}

// TestConcurrent shares one Redactor between goroutines, for the race
// detector.
func TestConcurrent(t *testing.T) {
	r := mustNew(t, &Options{JSONKeys: []string{"auth.session"}})
	in := []byte(`{"auth":{"session":"s"},"token":"t","d":"{\"token\":1}"}`)
	want, _ := r.Payload(nil, in, false)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var buf []byte
			for range 200 {
				var res Result
				buf, res = r.Payload(buf[:0], in, false)
				if !bytes.Equal(buf, want) || res.Fields != 3 {
					t.Errorf("Payload = %s %+v, want %s", buf, res, want)
					return
				}
				r.Route("/ws?token=1")
			}
		})
	}
	wg.Wait()
}

// TestPayloadNoAlloc checks the common case allocates nothing once dst has
// room.
func TestPayloadNoAlloc(t *testing.T) {
	r := mustNew(t, nil)
	in := []byte(`{"type":"query","id":12,"op":"tasks.list","params":{"workspace":1000012,"fields":["name","due_on"]}}`)
	secret := []byte(`{"type":"connect","id":0,"token":"tok_0123456789abcdef","resume":null}`)
	buf := make([]byte, 0, 1024)
	for _, m := range [][]byte{in, secret} {
		if n := testing.AllocsPerRun(100, func() { buf, _ = r.Payload(buf[:0], m, false) }); n != 0 {
			t.Errorf("Payload(%s) allocates %v times", m, n)
		}
	}
}

// TestSocketIOPacketsAreRedactedFieldByField: a Socket.IO packet is not
// JSON, but the JSON it frames is redacted field by field and its prefix
// kept, so that the handshake and the events still replay.
func TestSocketIOPacketsAreRedactedFieldByField(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`40{"client":"web","session":"s3cret"}`:                      `40{"client":"web","session":"__preheat_redacted__"}`,
		`42["login",{"user":"ann","password":"hunter2"}]`:            `42["login",{"user":"ann","password":"__preheat_redacted__"}]`,
		`42/admin,17["update",{"apiToken":"abc"}]`:                   `42/admin,17["update",{"apiToken":"__preheat_redacted__"}]`,
		`451-["upload",{"_placeholder":true,"num":0},{"token":"t"}]`: `451-["upload",{"_placeholder":true,"num":0},{"token":"__preheat_redacted__"}]`,
		`420["getTask",{"id":1}]`:                                    `420["getTask",{"id":1}]`,
	} {
		got, _ := r.Payload(nil, []byte(in), false)
		if string(got) != want {
			t.Errorf("Payload(%s) = %s, want %s", in, got, want)
		}
	}
}
