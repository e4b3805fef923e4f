package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/preheatdev/preheat/internal/corpus"
)

// fuzzPaths are the dotted paths the payload fuzz and property tests
// configure on top of the default keys.
var fuzzPaths = []string{"auth.session", "a.b.card"}

func fuzzRedactor(t testing.TB) *Redactor {
	return mustNew(t, &Options{JSONKeys: append([]string{"pin"}, fuzzPaths...), MaxDepth: 32})
}

// oracle says whether a key, with the keys of its enclosing objects, is
// secret, using encoding/json's decoding and strings.EqualFold's folding
// rather than the package's own for the configured names and the defaults,
// and the word rule on the decoded key.
func oracle(anc []string, key string) bool {
	for _, k := range append([]string{"pin"}, defaultJSONKeys...) {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	if secretName(strings.NewReplacer("\u212a", "k", "\u017f", "s").Replace(key)) {
		return true
	}
	for _, p := range fuzzPaths {
		segs := strings.Split(p, ".")
		n := len(segs)
		if len(anc) < n-1 || !strings.EqualFold(key, segs[n-1]) {
			continue
		}
		ok := true
		for i, s := range segs[:n-1] {
			if !strings.EqualFold(anc[len(anc)-(n-1)+i], s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// checkRedacted decodes a JSON document and fails if a configured key has
// any value but Marker.
func checkRedacted(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var walk func(anc []string) error
	walk = func(anc []string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key := kt.(string)
				if oracle(anc, key) {
					v, err := dec.Token()
					if err != nil {
						return err
					}
					if v != Marker {
						return fmt.Errorf("key %q under %q kept %v", key, anc, v)
					}
					continue
				}
				if err := walk(append(anc[:len(anc):len(anc)], key)); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if err := walk(anc); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		}
		return err
	}
	if err := walk(nil); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data: %v", err)
	}
	return nil
}

// mentions reports whether b has a configured or default name as plain
// bytes, in any ASCII case, or a secret word.
func mentions(b []byte) bool {
	lb := bytes.ToLower(b)
	for _, k := range append([]string{"pin", "session", "card"}, defaultJSONKeys...) {
		if bytes.Contains(lb, []byte(k)) {
			return true
		}
	}
	return secretName(b)
}

func FuzzPayload(f *testing.F) {
	g := corpus.New(1)
	f.Add(g.Connect(), false)
	f.Add(g.Query(g.Kind()), false)
	f.Add(g.Result(1, "tasks.list"), false)
	f.Add(g.Update(), true)
	for _, s := range []string{
		`{"token":"abc"}`, `{"to\u006ben":1}`, `[{"auth":[{"session":{"x":[1]}}]}]`,
		`{"a":{"b":{"card":null}}}`, `{"d":"{\"password\":\"p\"}"}`, `{"token":"ab`, `token=1`,
		`{"pin":1,"pin":2}`, `{"secret": [true, false, -1.5e-3, "x\"y"]}`, "{\"to\u212aen\":0}",
		strings.Repeat(`[`, 40) + `{"token":1}` + strings.Repeat(`]`, 40), `"\ud83d\ude00"`,
		`{"userJwt":"x","x-api-key":1,"token_type":"Bearer","nextPageToken":"p"}`,
		`{"n":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig","h":"Bearer abcDEF123456"}`,
		`{"s":"\u123eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.x"}`, `x eyJhbGciOiJub25lIn0.eyJhIjoxfQ. y`,
		`{"b":"Basic dXNlcjpwYXNz","c":"Basic\/dXNl"}`,
	} {
		f.Add([]byte(s), false)
	}
	r := fuzzRedactor(f)
	f.Fuzz(func(t *testing.T, in []byte, truncated bool) {
		out, res := r.Payload([]byte("x"), in, truncated)
		if out[0] != 'x' {
			t.Fatalf("Payload overwrote dst")
		}
		out = out[1:]
		switch {
		case res.Blanked:
			if string(out) != Blank || res.Fields+res.Tokens != 0 || res.Reason == ReasonNone {
				t.Fatalf("Payload(%q) = %q %+v: a blank must be Blank alone", in, out, res)
			}
			return
		case res.Fields+res.Tokens == 0:
			if !bytes.Equal(out, in) {
				t.Fatalf("Payload(%q) = %q with nothing counted", in, out)
			}
		}
		if _, _, ok := nextToken(out, 0, inText); ok {
			t.Fatalf("Payload(%q) = %q: a token shape is left", in, out)
		}
		valid := json.Valid(in)
		if !valid || truncated {
			want, _ := appendTokens(nil, in, inText)
			if truncated || want == nil {
				want = in
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("Payload(%q, %v) = %q: not JSON, so it is blank or keeps all but its tokens", in, truncated, out)
			}
			if mentions(in) {
				t.Fatalf("Payload(%q, %v) = %q: mentions a name but was not blanked", in, truncated, out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Payload(%q) = %q: not valid JSON", in, out)
		}
		if err := checkRedacted(out); err != nil {
			t.Fatalf("Payload(%q) = %q: %v", in, out, err)
		}
		if again, _ := r.Payload(nil, out, false); !bytes.Equal(again, out) {
			t.Fatalf("Payload is not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}

// TestPayloadProperty plants random secrets under configured keys, spelled
// in random cases and escapes, in random documents, and checks that none
// comes out, that the output is valid JSON, and that a document without a
// configured key comes out byte for byte.
func TestPayloadProperty(t *testing.T) {
	r := fuzzRedactor(t)
	rng := rand.New(rand.NewPCG(7, 11))
	planted := 0
	n := 3000
	if testing.Short() {
		n = 300
	}

	for i := range n {
		g := &docGen{rng: rng, plant: i%4 != 0}
		doc := g.value(0, nil)
		if rng.IntN(2) == 0 {
			doc = " " + doc + "\n"
		}
		out, res := r.Payload(nil, []byte(doc), false)
		if !json.Valid([]byte(doc)) {
			t.Fatalf("generator made invalid JSON: %s", doc)
		}
		if !json.Valid(out) || res.Blanked {
			t.Fatalf("Payload(%s) = %s %+v: want valid JSON", doc, out, res)
		}
		for _, s := range g.secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Fatalf("Payload(%s) = %s: leaks %q", doc, out, s)
			}
		}
		if err := checkRedacted(out); err != nil {
			t.Fatalf("Payload(%s) = %s: %v", doc, out, err)
		}
		if len(g.secrets) == 0 && g.keys == 0 && string(out) != doc {
			t.Fatalf("Payload(%s) = %s: changed a document without configured keys", doc, out)
		}
		planted += len(g.secrets)
	}
	if planted < n/4 {
		t.Fatalf("only %d secrets planted in %d documents", planted, n)
	}
	t.Logf("%d secrets planted in %d documents", planted, n)
}

type docGen struct {
	rng     *rand.Rand
	plant   bool
	secrets []string
	keys    int // configured keys planted
}

var plainWords = []string{"type", "id", "op", "params", "data", "name", "value",
	"tokens", "page_token", "auth", "a", "b", "x", "s\u00e9ssion", "名前", "list",
	"userJwt", "x-api-key", "csrfToken", "token_type", "pageToken", "author", "tokenize", "keyboard"}

func (g *docGen) value(depth int, anc []string) string {
	switch k := g.rng.IntN(10); {
	case k < 3 && depth < 6:
		var b strings.Builder
		b.WriteByte('{')
		for i, n := 0, g.rng.IntN(5); i < n; i++ {
			if i > 0 {
				b.WriteString(g.ws() + "," + g.ws())
			}
			key, raw := g.key(anc)
			b.WriteString(raw + g.ws() + ":" + g.ws())
			if oracle(anc, key) {
				g.keys++
				b.WriteString(g.secret(depth))
			} else {
				b.WriteString(g.value(depth+1, append(anc[:len(anc):len(anc)], key)))
			}
		}
		b.WriteByte('}')
		return b.String()
	case k < 5 && depth < 6:
		var b strings.Builder
		b.WriteByte('[')
		for i, n := 0, g.rng.IntN(4); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(g.value(depth+1, anc))
		}
		b.WriteByte(']')
		return b.String()
	case k < 7:
		return quoteJSON(plainWords[g.rng.IntN(len(plainWords))])
	case k < 8:
		return fmt.Sprint(g.rng.IntN(1000) - 500)
	case k < 9:
		return []string{"true", "false", "null", "1.5e3", "-0.25"}[g.rng.IntN(5)]
	}
	return `"tok\"en \\ \u00e9 \n"`
}

// key returns a key, configured or not, and its JSON spelling.
func (g *docGen) key(anc []string) (string, string) {
	var k string
	if g.plant && g.rng.IntN(3) == 0 {
		names := append([]string{"pin", "auth", "session", "a", "b", "card"}, defaultJSONKeys...)
		k = names[g.rng.IntN(len(names))]
	} else {
		k = plainWords[g.rng.IntN(len(plainWords))]
	}
	// Random case, the odd Kelvin sign for k, and random escapes.
	var dec, raw strings.Builder
	raw.WriteByte('"')
	for _, c := range k {
		if c < utf8.RuneSelf && g.rng.IntN(3) == 0 {
			c = []rune(strings.ToUpper(string(c)))[0]
		}
		if c == 'k' && g.rng.IntN(5) == 0 {
			c = kelvin
		}
		dec.WriteRune(c)
		if g.rng.IntN(6) == 0 {
			fmt.Fprintf(&raw, `\u%04x`, c)
		} else {
			raw.WriteRune(c)
		}
	}
	raw.WriteByte('"')
	return dec.String(), raw.String()
}

func (g *docGen) secret(depth int) string {
	s := fmt.Sprintf("S3CR3T-%d-%x", len(g.secrets), g.rng.Uint64())
	g.secrets = append(g.secrets, s)
	switch g.rng.IntN(4) {
	case 0:
		return `{"v":"` + s + `","n":[1,{"token":"` + s + `x"}]}`
	case 1:
		return `["` + s + `", 42, null]`
	case 2:
		return `"` + s + ` with \"quotes\""`
	}
	return quoteJSON(s)
}

func (g *docGen) ws() string {
	return []string{"", "", "", " ", "\n\t", "\r\n "}[g.rng.IntN(6)]
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestMatcher checks the pre-check against a plain search: wherever a name
// occurs in any ASCII case, it must say maybe.
func TestMatcher(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	sets := [][]string{
		defaultJSONKeys,
		{"jwt", "pass", "otp"},
		{"x"},
		{"ab", "token"},
		{"id", "abc", "abcdef", "zz_top"},
		{strings.Repeat("q", MaxNameLen), "secret"},
	}
	alphabet := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-\"{}:,0123456789 \\"
	for _, names := range sets {
		var as []anchor
		for _, n := range names {
			as = append(as, anchor{lit: []byte(n), kind: kindSub})
		}
		m := newMatcher(as)
		for range 5000 {
			b := make([]byte, rng.IntN(200))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if rng.IntN(2) == 0 && len(b) > 0 {
				name := []byte(names[rng.IntN(len(names))])
				for i := range name {
					if rng.IntN(2) == 0 {
						name[i] = bytes.ToUpper(name[i : i+1])[0]
					}
				}
				at := rng.IntN(len(b))
				b = append(b[:at], append(name, b[at:]...)...)
			}
			want := false
			for _, n := range names {
				if bytes.Contains(bytes.ToLower(b), []byte(n)) {
					want = true
				}
			}
			if want && m.raw(b, 0, nil) == 0 {
				t.Fatalf("names %q: raw(%q) = false, want true", names, b)
			}
		}
	}
}
