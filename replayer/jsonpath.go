package replayer

import (
	"bytes"
	"encoding/json"
	"errors"
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
// not a well-formed JSON object: the whole message is validated first
// (json.Valid does not allocate), so that a rule never judges a message by a
// field of one that a server's parser would reject or read differently.
func span(msg []byte, p path) (start, end int, found bool, err error) {
	if !json.Valid(msg) {
		if len(msg) == 0 {
			return 0, 0, false, errors.New("empty message")
		}
		return 0, 0, false, errMalformed
	}
	i := skipSpace(msg, 0)
	if msg[i] != '{' {
		return 0, 0, false, errNotObject
	}
	start, end, found = scanSpan(msg, i+1, p)
	return start, end, found, nil
}

// errMalformed reports a message that is not well-formed JSON.
var errMalformed = errors.New("malformed JSON")

// scanSpan finds p in the members of the object whose body starts at i in
// the valid JSON msg. With duplicate keys the first wins.
func scanSpan(msg []byte, i int, p path) (start, end int, found bool) {
	for depth := 0; ; {
		i = skipSpace(msg, i)
		if msg[i] == '}' {
			return 0, 0, false // the key is absent at this level
		}
		keyEnd := skipString(msg, i)
		match := keyEquals(msg[i:keyEnd], p[depth])
		i = skipSpace(msg, keyEnd)
		i = skipSpace(msg, i+1) // the colon
		vEnd := skipValue(msg, i)
		if match {
			if depth == len(p)-1 {
				return i, vEnd, true
			}
			if msg[i] != '{' {
				return 0, 0, false // an intermediate value that is not an object
			}
			depth++
			i++
			continue
		}
		i = skipSpace(msg, vEnd)
		if msg[i] == ',' {
			i++
		}
	}
}

// keyEquals reports whether the JSON string lit (quotes included) is key.
func keyEquals(lit []byte, key string) bool {
	body := lit[1 : len(lit)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body) == key
	}
	var s string
	return json.Unmarshal(lit, &s) == nil && s == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the valid JSON value that starts at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
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
