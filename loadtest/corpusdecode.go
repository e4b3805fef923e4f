package loadtest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/preheatdev/preheat/internal/jsonscan"
	"github.com/preheatdev/preheat/session"
)

// This file holds the decoder of a corpus file's lines. Almost every line
// is a frame event, and almost all of a corpus is their payloads: a line
// of the one form session.JSON's encoder writes for a frame is decoded in
// one pass, with no reflection and no allocation; any other line (an open
// or a close event, a member it does not know, an escape it would have to
// think about, anything invalid) goes to encoding/json, which decodes it
// as before, or says why it cannot. So the fast path is only ever a
// shortcut to what encoding/json would have returned.

// lineDecoder decodes corpus lines. Its buffer holds the payload of the
// last line decoded; it is reused from line to line.
type lineDecoder struct {
	buf []byte
}

// decode decodes one line, trimmed and not empty. The event's Payload
// may alias d's buffer: it is valid until the next call.
func (d *lineDecoder) decode(line []byte) (session.Event, error) {
	if cap(d.buf) > 1<<20 {
		d.buf = nil // do not hold on to a long payload's memory
	}
	if ev, ok := d.frame(line); ok {
		return ev, nil
	}
	return decodeLineJSON(line)
}

// decodeLineJSON decodes a line with encoding/json, and says what a cache
// reported in the error object it ends a failed stream with.
func decodeLineJSON(line []byte) (session.Event, error) {
	var j session.JSON
	if err := json.Unmarshal(line, &j); err != nil {
		return session.Event{}, err
	}
	if j.Kind == "" {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &e) == nil && e.Error != "" {
			return session.Event{}, fmt.Errorf("the cache reported an error: %s", e.Error)
		}
	}
	return j.Event()
}

// The members of a frame line, as bits of a set.
const (
	mSession = 1 << iota
	mSeq
	mKind
	mOffset
	mDirection
	mOpcode
	mPayload
	mPayloadHex
	mTruncated
)

// frame decodes a frame event's line; ok is false for any line it does
// not decode exactly as json.Unmarshal into session.JSON and JSON.Event
// would (the caller then asks encoding/json). Each member may come once,
// its key written plainly in its case; the strings other than the
// payload, without escapes.
func (d *lineDecoder) frame(b []byte) (ev session.Event, ok bool) {
	var (
		seen                 int
		kind, dir, op, pHex  []byte
		offset               int64
		hasPayload, truncate bool
	)
	d.buf = d.buf[:0]
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return ev, false
	}
	i = jsonscan.SkipSpace(b, i+1)
	// str returns the plain string at b[i] without its quotes, and the
	// index just past it; -1 when it is not one.
	str := func(i int) ([]byte, int) {
		end := plainStringEnd(b, i)
		if end < 0 {
			return nil, -1
		}
		return b[i+1 : end-1], end
	}
	for i < len(b) && b[i] == '"' {
		end := plainStringEnd(b, i)
		if end < 0 {
			return ev, false
		}
		key := b[i+1 : end-1]
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return ev, false
		}
		i = jsonscan.SkipSpace(b, i+1)
		var bit int
		switch string(key) {
		case "session":
			bit = mSession
			var id []byte
			if id, end = str(i); end < 0 || len(id) != 2*len(ev.Session) {
				return ev, false
			}
			if _, err := hex.Decode(ev.Session[:], id); err != nil {
				return ev, false
			}
		case "seq":
			bit = mSeq
			var n uint64
			if n, end = uintAt(b, i, 1<<64-1); end < 0 {
				return ev, false
			}
			ev.Seq = n
		case "kind":
			bit = mKind
			kind, end = str(i)
		case "offset_us":
			bit = mOffset
			neg := i < len(b) && b[i] == '-'
			limit := uint64(1<<63 - 1)
			if neg {
				i++
				limit++
			}
			var n uint64
			if n, end = uintAt(b, i, limit); end < 0 {
				return ev, false
			}
			offset = int64(n)
			if neg {
				offset = -offset
			}
		case "direction":
			bit = mDirection
			dir, end = str(i)
		case "opcode":
			bit = mOpcode
			op, end = str(i)
		case "payload":
			bit = mPayload
			hasPayload = true
			d.buf, end = appendString(d.buf, b, i)
		case "payload_hex":
			bit = mPayloadHex
			pHex, end = str(i)
		case "truncated":
			bit = mTruncated
			switch {
			case len(b)-i >= 4 && string(b[i:i+4]) == "true":
				truncate, end = true, i+4
			case len(b)-i >= 5 && string(b[i:i+5]) == "false":
				end = i + 5
			default:
				return ev, false
			}
		default:
			return ev, false
		}
		if end < 0 || seen&bit != 0 {
			return ev, false
		}
		seen |= bit
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ',' {
			break
		}
		if i = jsonscan.SkipSpace(b, i+1); i >= len(b) || b[i] != '"' {
			return ev, false
		}
	}
	if i >= len(b) || b[i] != '}' || jsonscan.SkipSpace(b, i+1) != len(b) {
		return ev, false
	}
	if string(kind) != "frame" {
		return ev, false
	}
	ev.Kind = session.KindFrame
	ev.Offset = time.Duration(offset) * time.Microsecond
	switch string(dir) {
	case "client":
		ev.Direction = session.ClientToServer
	case "server":
		ev.Direction = session.ServerToClient
	default:
		return ev, false
	}
	switch string(op) {
	case "text":
		ev.Opcode = session.Text
	case "binary":
		ev.Opcode = session.Binary
	default:
		return ev, false
	}
	switch {
	case hasPayload:
		ev.Payload = d.buf
		if ev.Payload == nil {
			ev.Payload = []byte{}
		}
	case len(pHex) > 0:
		n := len(pHex) / 2
		d.buf = append(d.buf, make([]byte, n)...)
		if _, err := hex.Decode(d.buf[:n], pHex); err != nil || len(pHex)%2 != 0 {
			return ev, false
		}
		ev.Payload = d.buf[:n]
	}
	ev.Truncated = truncate
	return ev, true
}

// strByte classes the bytes of a JSON string: 0 is a byte held as it is,
// quote and backslash end a run, ctl is a control character (invalid),
// high a byte of a multi-byte UTF-8 character.
var strByte = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = ctl
	}
	t['"'], t['\\'] = quote, backslash
	for c := 0x80; c < 256; c++ {
		t[c] = high
	}
	return t
}()

const (
	held = iota
	quote
	backslash
	ctl
	high
)

// plainStringEnd returns the index just past the string at b[i] when it
// holds no escape, no control character and only ASCII, or -1.
func plainStringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch strByte[b[j]] {
		case held:
		case quote:
			return j + 1
		default:
			return -1
		}
	}
	return -1
}

// appendString appends the text of the JSON string at b[i] to dst and
// returns the index just past it; -1 when it is not a string encoding/json
// decodes to the same bytes: not valid, not valid UTF-8 (encoding/json
// would replace bytes), or holding an escaped UTF-16 surrogate (it would
// pair or replace it).
func appendString(dst, b []byte, i int) ([]byte, int) {
	if i >= len(b) || b[i] != '"' {
		return dst, -1
	}
	i++
	for {
		j := i
		var cls uint8
		nonASCII := false
		for j < len(b) {
			if cls = strByte[b[j]]; cls != held {
				if cls != high {
					break
				}
				nonASCII = true
			}
			j++
		}
		if nonASCII && !utf8.Valid(b[i:j]) {
			return dst, -1
		}
		dst = append(dst, b[i:j]...)
		if j >= len(b) || cls == ctl {
			return dst, -1
		}
		if cls == quote {
			return dst, j + 1
		}
		// An escape.
		if j+1 >= len(b) {
			return dst, -1
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := jsonscan.Hex4(b, j+2)
			if !ok || utf16.IsSurrogate(r) {
				return dst, -1
			}
			dst = utf8.AppendRune(dst, r)
			j += 4
		default:
			return dst, -1
		}
		i = j + 2
	}
}

// uintAt decodes the unsigned integer at b[i] and returns it and the index
// just past it; -1 when it is not one JSON writes (a leading zero, a
// fraction or an exponent follows) or is over limit.
func uintAt(b []byte, i int, limit uint64) (uint64, int) {
	start := i
	var n uint64
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if n > (limit-d)/10 {
			return 0, -1
		}
		n = n*10 + d
		i++
	}
	switch {
	case i == start, b[start] == '0' && i > start+1:
		return 0, -1
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, -1
	}
	return n, i
}
