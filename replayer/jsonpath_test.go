package replayer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/preheatdev/preheat/internal/corpus"
)

// spanDecoder is the first implementation of span, on encoding/json's
// Decoder: the oracle the scanner is checked against.
// It finds the value at p in the JSON object msg and returns its byte
// range [start, end). found is false when the path is absent (a key missing,
// or an intermediate value that is not an object). err is set when msg is
// not a well-formed JSON object up to the point the search reached; the
// search stops at the first match, so bytes after it are not checked.
func spanDecoder(msg []byte, p path) (start, end int, found bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	if err := oracleExpectDelim(dec, '{'); err != nil {
		return 0, 0, false, err
	}
	for depth := 0; ; {
		t, err := dec.Token()
		if err != nil {
			return 0, 0, false, oracleMalformed(err)
		}
		if d, ok := t.(json.Delim); ok && d == '}' {
			return 0, 0, false, nil // the key is absent at this level
		}
		key, ok := t.(string)
		if !ok {
			return 0, 0, false, errNotObject
		}
		if key != p[depth] {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0, 0, false, oracleMalformed(err)
			}
			continue
		}
		if depth == len(p)-1 {
			start := oracleValueStart(msg, int(dec.InputOffset()))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return 0, 0, false, oracleMalformed(err)
			}
			return start, int(dec.InputOffset()), true, nil
		}
		t, err = dec.Token()
		if err != nil {
			return 0, 0, false, oracleMalformed(err)
		}
		if d, ok := t.(json.Delim); !ok || d != '{' {
			return 0, 0, false, nil // an intermediate value that is not an object
		}
		depth++
	}
}

func oracleExpectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return oracleMalformed(err)
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return errNotObject
	}
	return nil
}

func oracleMalformed(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("truncated JSON")
	}
	return err
}

// valueStart skips the whitespace and colon after a key that ends at off.
func oracleValueStart(msg []byte, off int) int {
	for off < len(msg) {
		switch msg[off] {
		case ' ', '\t', '\r', '\n', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// FuzzSpanMatchesDecoder checks the scanner against encoding/json's
// Decoder: on a well-formed message both find the same span or both find
// none; on a malformed one the scanner always reports an error.
func FuzzSpanMatchesDecoder(f *testing.F) {
	for _, s := range []string{`{"type":"query","id":7}`, `{"a":{"b":{"c":1}}}`, `{"a":[1,{"b":2}],"b":3}`,
		`{"a\u0062":1,"ab":2}`, `{"a":{"b":1},"a":{"b":2}}`, ` { "a" : "x\"}" , "b" : [ "}" ] } `, `{"a":1,,"b":2}`} {
		f.Add([]byte(s))
	}
	paths := []path{{"id"}, {"a"}, {"b"}, {"ab"}, {"a", "b"}, {"a", "b", "c"}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		valid := json.Valid(msg)
		for _, p := range paths {
			s, e, ok, err := span(msg, p)
			if !valid {
				if err == nil {
					t.Fatalf("span(%q, %v): no error on malformed JSON", msg, p)
				}
				continue
			}
			os, oe, ook, oerr := spanDecoder(msg, p)
			if (err == nil) != (oerr == nil) || ok != ook || (ok && (s != os || e != oe)) {
				t.Fatalf("span(%q, %v) = [%d,%d) %v %v; decoder [%d,%d) %v %v", msg, p, s, e, ok, err, os, oe, ook, oerr)
			}
		}
	})
}

// BenchmarkSpan compares the scanner with the Decoder it replaced, on a
// corpus query and the lookups a replay makes of it.
func BenchmarkSpan(b *testing.B) {
	g := corpus.New(1)
	msg := g.Query("tasks.list")
	paths := []path{{"type"}, {"op"}, {"method"}, {"action"}, {"id"}}
	for _, impl := range []struct {
		name string
		fn   func([]byte, path) (int, int, bool, error)
	}{{"decoder", spanDecoder}, {"scanner", span}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg) * len(paths)))
			for b.Loop() {
				for _, p := range paths {
					impl.fn(msg, p)
				}
			}
		})
	}
}
