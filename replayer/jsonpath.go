package replayer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// path is a dotted path to a value inside nested JSON objects, such as
// "client.token": each segment is an object key. Arrays are not descended.
type path []string

func parsePath(s string) (path, error) {
	if s == "" {
		return nil, errors.New("empty field path")
	}
	p := path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, errors.New("empty segment in field path " + strconv.Quote(s))
		}
	}
	return p, nil
}

func (p path) String() string { return strings.Join(p, ".") }

// errNotObject reports a message that is not a JSON object.
var errNotObject = errors.New("not a JSON object")

// span finds the value at p in the JSON object msg and returns its byte
// range [start, end). found is false when the path is absent (a key missing,
// or an intermediate value that is not an object). err is set when msg is
// not a well-formed JSON object up to the point the search reached; the
// search stops at the first match, so bytes after it are not checked.
func span(msg []byte, p path) (start, end int, found bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return 0, 0, false, err
	}
	for depth := 0; ; {
		t, err := dec.Token()
		if err != nil {
			return 0, 0, false, malformed(err)
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
				return 0, 0, false, malformed(err)
			}
			continue
		}
		if depth == len(p)-1 {
			start := valueStart(msg, int(dec.InputOffset()))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return 0, 0, false, malformed(err)
			}
			return start, int(dec.InputOffset()), true, nil
		}
		t, err = dec.Token()
		if err != nil {
			return 0, 0, false, malformed(err)
		}
		if d, ok := t.(json.Delim); !ok || d != '{' {
			return 0, 0, false, nil // an intermediate value that is not an object
		}
		depth++
	}
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return malformed(err)
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return errNotObject
	}
	return nil
}

func malformed(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("truncated JSON")
	}
	return err
}

// valueStart skips the whitespace and colon after a key that ends at off.
func valueStart(msg []byte, off int) int {
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

// lookup returns the raw JSON value at p in msg.
func lookup(msg []byte, p path) (json.RawMessage, bool, error) {
	s, e, ok, err := span(msg, p)
	if !ok || err != nil {
		return nil, false, err
	}
	return json.RawMessage(msg[s:e]), true, nil
}

// scalar returns a JSON value as the text a rule compares: a string's
// unquoted contents, or a number, bool or null as written.
func scalar(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	case '{', '[':
		return "", false
	}
	return string(raw), true
}

// replace returns msg with the value at [start, end) replaced by v.
func replace(msg []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(msg)-(end-start)+len(v))
	out = append(out, msg[:start]...)
	out = append(out, v...)
	return append(out, msg[end:]...)
}
