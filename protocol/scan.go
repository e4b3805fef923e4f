package protocol

import (
	"bytes"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// This file holds the JSON key matching the profiles share, over the
// byte-level scanning of package jsonscan. Every function here takes JSON
// that json.Valid has accepted, yet still checks its bounds: a bug must
// cost a wrong verdict, never a panic.

// maxEscaped bounds the strings with escapes that are decoded, in bytes of
// their JSON text. A decoded identifier of maxIdentLen bytes takes at most
// six times as many (each byte of "\u0064" is one decoded byte).
const maxEscaped = 6 * maxIdentLen

// decoded returns the text of the JSON string body s: s itself when it has
// no escapes, else its decoding in buf; ok is false when that does not fit.
func decoded(buf, s []byte, esc bool) ([]byte, bool) {
	if !esc {
		return s, true
	}
	n, ok := jsonscan.Unescape(buf, s)
	return buf[:n], ok
}

// keyMatch says how a member's key matches a wanted name.
type keyMatch uint8

const (
	keyNone keyMatch = iota
	// keyExact: the key is the name, spelled plainly.
	keyExact
	// keyLoose: the key is the name only to some parsers: spelled with
	// escapes, in another case (Go's encoding/json folds case when it
	// fills a struct), or cut at an escaped NUL (C parsers end strings
	// there).
	keyLoose
)

// matchKey compares the decoded key of a member with name; plain says the
// key was written without escapes.
func matchKey(key []byte, plain bool, name string) keyMatch {
	if plain && string(key) == name {
		return keyExact
	}
	if foldsTo(key, name) {
		return keyLoose
	}
	if i := bytes.IndexByte(key, 0); i >= 0 && foldsTo(key[:i], name) {
		return keyLoose
	}
	return keyNone
}

// foldsTo reports whether k equals name under Unicode case folding.
func foldsTo(k []byte, name string) bool {
	if len(k) == len(name) {
		same := true
		for i := 0; i < len(k) && same; i++ {
			a, b := k[i], name[i]
			same = a == b || (a|0x20 == b|0x20 && a|0x20 >= 'a' && a|0x20 <= 'z')
		}
		if same {
			return true
		}
	}
	if isASCII(k) && isASCII(name) {
		return false // folding ASCII is what the loop above did
	}
	var nb [64]byte
	if len(name) > len(nb) {
		return bytes.EqualFold(k, []byte(name))
	}
	return bytes.EqualFold(k, nb[:copy(nb[:], name)])
}

func isASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// fields finds the members of the JSON object b (valid JSON) named by
// names, and stores the text of each value in vals[k] (a string with its
// quotes). ok is false when b is not an object. ambiguous reports a name
// that more than one member gives, or that a member gives only loosely (see
// keyLoose): parsers differ on which such member they read (JSON.parse keeps
// the last duplicate, some keep the first; encoding/json folds case), so a
// judge must not rely on either.
func fields(b []byte, names []string, vals [][]byte) (ok, ambiguous bool) {
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false, false
	}
	var buf [maxEscaped]byte
	i = jsonscan.SkipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		end, esc := jsonscan.StringEnd(b, i)
		key, decodable := decoded(buf[:], b[i+1:max(i+1, end-1)], esc)
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return true, true
		}
		i = jsonscan.SkipSpace(b, i+1)
		vEnd := jsonscan.ValueEnd(b, i)
		for k, name := range names {
			if !decodable {
				break // longer than any name
			}
			switch matchKey(key, !esc, name) {
			case keyExact:
				if vals[k] != nil {
					ambiguous = true
				}
				vals[k] = b[i:vEnd]
			case keyLoose:
				ambiguous = true
			}
		}
		i = jsonscan.SkipSpace(b, vEnd)
		if i >= len(b) || b[i] != ',' {
			break
		}
		i = jsonscan.SkipSpace(b, i+1)
	}
	return true, ambiguous
}

// isNull reports whether the JSON value v is absent or null.
func isNull(v []byte) bool {
	return v == nil || string(v) == "null"
}
