package replayer

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/preheatdev/preheat/internal/jsonscan"
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
	i, err := objectBody(msg)
	if err != nil {
		return 0, 0, false, err
	}
	start, end, found = scanSpan(msg, i, p)
	return start, end, found, nil
}

// objectBody validates msg as a JSON object and returns the index just after
// its opening brace.
func objectBody(msg []byte) (int, error) {
	if !jsonscan.Valid(msg) {
		if len(msg) == 0 {
			return 0, errors.New("empty message")
		}
		return 0, errMalformed
	}
	i := jsonscan.SkipSpace(msg, 0)
	if msg[i] != '{' {
		return 0, errNotObject
	}
	return i + 1, nil
}

// errMalformed reports a message that is not well-formed JSON.
var errMalformed = errors.New("malformed JSON")

// scanSpan finds p in the members of the object whose body starts at i in
// the valid JSON msg. With duplicate keys the first wins.
func scanSpan(msg []byte, i int, p path) (start, end int, found bool) {
	for depth := 0; ; {
		i = jsonscan.SkipSpace(msg, i)
		if msg[i] == '}' {
			return 0, 0, false // the key is absent at this level
		}
		keyEnd, _ := jsonscan.StringEnd(msg, i)
		match := keyEquals(msg[i:keyEnd], p[depth])
		i = jsonscan.SkipSpace(msg, keyEnd)
		i = jsonscan.SkipSpace(msg, i+1) // the colon
		vEnd := jsonscan.ValueEnd(msg, i)
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
		i = jsonscan.SkipSpace(msg, vEnd)
		if msg[i] == ',' {
			i++
		}
	}
}

// visit calls fn with the byte range of every value at p among the members
// of the object whose body starts at i in the valid JSON msg. Parsers differ
// on duplicate keys (most keep the last, this package's span the first) and
// some match keys regardless of case (Go's encoding/json into a struct) or
// read an escaped NUL as the key's end (C parsers), so visit takes every key
// equal to a path segment under Unicode case folding, whole or cut at a NUL,
// at every level. unsure reports that some segment matched more than one key
// of an object visited, or a key not spelled as the plain segment (escaped,
// or in another case), which a parser that compares raw key bytes (simdjson)
// would not find.
func visit(msg []byte, i int, p path, fn func(start, end int)) (unsure bool) {
	seen := 0
	for {
		i = jsonscan.SkipSpace(msg, i)
		if msg[i] == '}' {
			return unsure || seen > 1
		}
		keyEnd, _ := jsonscan.StringEnd(msg, i)
		key := msg[i:keyEnd]
		match := keyFolds(key, p[0])
		i = jsonscan.SkipSpace(msg, keyEnd)
		i = jsonscan.SkipSpace(msg, i+1) // the colon
		vEnd := jsonscan.ValueEnd(msg, i)
		if match {
			seen++
			if string(key[1:len(key)-1]) != p[0] {
				unsure = true
			}
			switch {
			case len(p) == 1:
				fn(i, vEnd)
			case msg[i] == '{':
				if visit(msg, i+1, p[1:], fn) {
					unsure = true
				}
			}
		}
		i = jsonscan.SkipSpace(msg, vEnd)
		if msg[i] == ',' {
			i++
		}
	}
}

// setPath returns a copy of the valid JSON object msg with the value at p
// set to the JSON value v: the first occurrence replaced, or the missing key
// (and any missing objects on the way to it) added as the first member of
// the deepest object on p that exists. ok is false when a value on the way
// is not an object.
func setPath(msg []byte, p path, v []byte) (out []byte, ok bool) {
	obj := jsonscan.SkipSpace(msg, 0) // the '{' of the object at depth d
	if obj >= len(msg) || msg[obj] != '{' {
		return nil, false
	}
	for d := range p {
		s, e, found := scanSpan(msg, obj+1, p[d:d+1])
		if !found {
			ins := make([]byte, 0, 32+len(v))
			for k, key := range p[d:] {
				if k > 0 {
					ins = append(ins, '{')
				}
				ins = append(ins, quote(key)...)
				ins = append(ins, ':')
			}
			ins = append(ins, v...)
			for range len(p) - d - 1 {
				ins = append(ins, '}')
			}
			if msg[jsonscan.SkipSpace(msg, obj+1)] != '}' {
				ins = append(ins, ',')
			}
			return replace(msg, obj+1, obj+1, ins), true
		}
		if d == len(p)-1 {
			return replace(msg, s, e, v), true
		}
		if msg[s] != '{' {
			return nil, false
		}
		obj = s
	}
	return nil, false // p is never empty
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

// keyFolds reports whether the JSON string lit (quotes included) equals key
// under Unicode case folding, whole or up to an escaped NUL in it.
func keyFolds(lit []byte, key string) bool {
	body := lit[1 : len(lit)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return bytes.EqualFold(body, []byte(key))
	}
	var s string
	if json.Unmarshal(lit, &s) != nil {
		return false
	}
	cut, _, _ := strings.Cut(s, "\x00")
	return strings.EqualFold(s, key) || strings.EqualFold(cut, key)
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
