package protocol

import (
	"github.com/preheatdev/preheat/internal/jsonscan"
)

// ServerSkeleton appends to dst the skeleton of the server message msg,
// text or binary: what the built-in profiles' Conversation.Server read of
// it and nothing more, so that every profile returns for the skeleton what
// it returns for msg (Heartbeat, ID, Answer) and keeps the same state for
// the messages after it. A recording that is only to be planned, such as a
// load test's corpus, can keep its server messages' skeletons: a result of
// kilobytes becomes a few dozen bytes. A skeleton is never longer than its
// message, and is its own skeleton.
//
// Of a JSON object, the skeleton keeps the members whose key is, plainly
// written, "type", "op" or "id" (their values are read; a type or op that
// is not a string is written 0) or "method", "result" or "error" (only
// whether they are there is read; their values are written 0), in order,
// duplicates included, without whitespace. Of any other message it keeps
// what Socket.IO reads: an Engine.IO ping whole (its pong repeats it), the
// type of a pong or a noop, the header of a message packet up to its
// payload; nothing of the rest.
func ServerSkeleton(dst, msg []byte) []byte {
	if i := jsonscan.SkipSpace(msg, 0); i < len(msg) && msg[i] == '{' {
		return objectSkeleton(dst, msg, i)
	}
	if len(msg) == 0 {
		return dst
	}
	switch msg[0] {
	case eioPing:
		return append(dst, msg...)
	case eioPong, eioNoop:
		return append(dst, msg[0])
	case eioMessage:
		if pk, ok := parseSocketIO(msg[1:]); ok {
			return append(dst, msg[:len(msg)-len(pk.payload)]...)
		}
	}
	return dst
}

// objectSkeleton appends the skeleton of the JSON object that opens at
// msg[i], validating it as it goes (json.Valid's verdict on msg); when it
// is not valid, it appends nothing, which is then msg's skeleton too (a
// message that is not a JSON object and starts with whitespace or '{').
func objectSkeleton(dst, msg []byte, i int) []byte {
	n := len(dst)
	dst = append(dst, '{')
	first := true
	i = jsonscan.SkipSpace(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		return objectEnd(dst, msg, i, n)
	}
	for i < len(msg) && msg[i] == '"' {
		end := jsonscan.ValidEnd(msg, i, 1)
		if end < 0 {
			break
		}
		key := msg[i+1 : end-1]
		if i = jsonscan.SkipSpace(msg, end); i >= len(msg) || msg[i] != ':' {
			break
		}
		i = jsonscan.SkipSpace(msg, i+1)
		vEnd := jsonscan.ValidEnd(msg, i, 1)
		if vEnd < 0 {
			break
		}
		v := msg[i:vEnd]
		keep := true
		switch string(key) {
		case "type", "op":
			if _, isString := jsonscan.StringBody(v); !isString {
				v = zero
			}
		case "id":
		case "method", "result", "error":
			v = zero
		default:
			keep = false // escaped keys too: they match only loosely
		}
		if keep {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, '"')
			dst = append(dst, key...)
			dst = append(dst, '"', ':')
			dst = append(dst, v...)
		}
		switch i = jsonscan.SkipSpace(msg, vEnd); {
		case i < len(msg) && msg[i] == ',':
			i = jsonscan.SkipSpace(msg, i+1)
			continue
		case i < len(msg) && msg[i] == '}':
			return objectEnd(dst, msg, i, n)
		}
		break
	}
	return dst[:n]
}

// objectEnd closes a skeleton at the brace msg[i] that closes its
// object, or takes it back (to dst[:n]) when more than whitespace follows.
func objectEnd(dst, msg []byte, i, n int) []byte {
	if jsonscan.SkipSpace(msg, i+1) != len(msg) {
		return dst[:n]
	}
	return append(dst, '}')
}

// zero stands for a value only the presence of which is read.
var zero = []byte("0")
