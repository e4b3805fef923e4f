package protocol

import (
	"slices"
	"strings"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// KeyFieldsDefault are the JSON keys whose string values name a plain JSON
// message's operation, in the order they are preferred for its Kind. Keys
// match in any case, as Go's encoding/json matches a struct's fields.
// Options.KeyFields come before them.
var KeyFieldsDefault = []string{
	"op", "type", "method", "action", "event", "cmd", "command", "call",
	"fn", "func", "rpc", "operation", "operationName", "verb",
}

// Bounds of the walk over a plain JSON message. Past them a message is
// Unknown ("too deep"), unless a write was already seen.
const (
	maxDepth  = 32  // objects and arrays open at once
	maxValues = 256 // strings, objects and arrays visited; numbers and literals are free
)

// opKeys are a Set's op keys in priority order.
type opKeys struct {
	names []string
	// folded files the lower-case form of each short ASCII name with its
	// rank: an ASCII key is looked up there, which is what folding it to
	// each name in turn would give.
	folded wordTable
	// odd are the ranks of the other names, few if any.
	odd []int
}

func newOpKeys(extra []string) *opKeys {
	k := &opKeys{}
	for _, list := range [][]string{extra, KeyFieldsDefault} {
		for _, n := range list {
			if n == "" || slices.Contains(k.names, n) {
				continue
			}
			r := len(k.names)
			k.names = append(k.names, n)
			f := strings.ToLower(n)
			if !isASCII(n) || len(n) > maxWordLen || f[0] < 'a' || f[0] > 'z' {
				k.odd = append(k.odd, r)
				continue
			}
			if _, dup := k.folded.get([]byte(f)); !dup {
				k.folded.add(f, r)
			}
		}
	}
	return k
}

// rank returns the priority of the decoded key of a member, -1 when it is
// no op key. A key that some parser reads as an op key is one (see
// keyLoose): a name a server may act on must not go unjudged.
func (k *opKeys) rank(key []byte) int {
	if isASCII(key) && !hasNUL(key) {
		r := -1
		if v, ok := k.folded.get(key); ok {
			r = v
		}
		for _, o := range k.odd {
			if (r < 0 || o < r) && matchKey(key, false, k.names[o]) != keyNone {
				r = o
			}
		}
		return r
	}
	for r, n := range k.names {
		if matchKey(key, false, n) != keyNone {
			return r
		}
	}
	return -1
}

func hasNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// jsonProfile is plain JSON: see the package documentation.
type jsonProfile struct{ keys *opKeys }

func (p *jsonProfile) Name() string { return "json" }

func (p *jsonProfile) NewConversation() Conversation { return &jsonConversation{keys: p.keys} }

// jsonConversation judges plain JSON messages; they stand alone, so it
// keeps no state.
type jsonConversation struct{ keys *opKeys }

// Client judges a plain JSON message. A binary message is judged by its
// content like a text one: some clients send JSON in binary frames.
func (c *jsonConversation) Client(msg []byte, binary bool) Judgement {
	if !jsonscan.Valid(msg) {
		return Judgement{Reason: "not json"}
	}
	var w jsonWalk
	w.keys = c.keys
	w.walk(msg)
	return w.judgement()
}

// Server reads a plain JSON server message: a heartbeat when its top-level
// "type" or "op" is ping, pong, heartbeat, keepalive or ka, and the
// operation of its top-level "id" (its JSON text, quotes and all, as
// Judgement.ID gives it). Plain JSON has no answers: its dialect is unknown.
func (c *jsonConversation) Server(msg []byte, binary bool) ServerMessage {
	if !jsonscan.Valid(msg) {
		return ServerMessage{}
	}
	var v [3][]byte
	if ok, _ := fields(msg, serverKeys, v[:]); !ok {
		return ServerMessage{}
	}
	sm := ServerMessage{ID: v[2]}
	for _, t := range v[:2] {
		if body, ok := jsonscan.StringBody(t); ok && isHeartbeat(body) {
			sm.Heartbeat = true
		}
	}
	return sm
}

var serverKeys = []string{"type", "op", "id"}

func isHeartbeat(s []byte) bool {
	var buf [16]byte
	if len(s) > len(buf) {
		return false
	}
	switch string(buf[:lower(buf[:], s)]) {
	case "ping", "pong", "heartbeat", "keepalive", "ka":
		return true
	}
	return false
}

// isEnvelope reports whether a name only wraps an operation, so that it
// says nothing of the operation: {"type":"request","payload":{"op":...}}.
func isEnvelope(s []byte) bool {
	var buf [16]byte
	if len(s) > len(buf) {
		return false
	}
	switch string(buf[:lower(buf[:], s)]) {
	case "request", "message", "msg", "call", "rpc", "invoke", "command",
		"cmd", "event", "data", "payload", "envelope", "batch", "op":
		return true
	}
	return false
}

// isControl reports whether a name is protocol control: every word of it a
// control word (connect, hello, init, handshake, auth, authenticate, login,
// ping, pong, heartbeat, keepalive) or a filler beside one ("connection_init",
// "session.auth", "keep-alive").
func isControl(s []byte) bool {
	control := false
	it := wordIter{s: s}
	for {
		start, end, ok := it.next()
		if !ok {
			return control
		}
		var buf [16]byte
		w := s[start:end]
		if len(w) > len(buf) {
			return false
		}
		switch string(buf[:lower(buf[:], w)]) {
		case "connect", "hello", "init", "handshake", "auth", "authenticate",
			"login", "ping", "pong", "heartbeat", "keepalive":
			control = true
		case "connection", "session", "client", "keep", "alive":
		default:
			return false
		}
	}
}

// Flags of the names seen in a message or in one element of a batch.
const (
	nameSeen    uint8 = 1 << iota // a name that is not an envelope word
	nameRead                      // a Read name
	nameUnknown                   // a name neither Read nor control
	nameControl                   // a control name
)

// namesVerdict is the verdict of a group of names with no write among them:
// Read if one reads (or all are control), else Unknown.
func namesVerdict(f uint8) Verdict {
	if f&nameRead != 0 || f&nameUnknown == 0 {
		return Read
	}
	return Unknown
}

// frame is an object or array open during a walk.
type frame struct {
	array bool
	// group is set for an object that is an element of an array: a batch
	// element, whose names are judged apart from the rest of the message.
	group bool
	names uint8 // a group's names
	// nameRank is the op-key rank of the key that holds the object or
	// array, else -1. The strings of such an array, and the string values
	// of such an object's members, are names: {"op":["a","b"]},
	// {"event":{"name":"markRead"}}.
	nameRank  int16
	prevGroup int16 // the enclosing group, restored when a group closes
}

// jsonWalk is a walk over a plain JSON message and what it found.
type jsonWalk struct {
	keys *opKeys

	mutating  bool // a name, or an identifier-shaped value, holds a write verb
	nameWrite bool // a name did
	bounded   bool // the walk stopped at maxDepth or maxValues
	overflow  bool // a name's escapes were too long to decode

	root         uint8 // names outside any batch element
	batch        bool  // some batch element had names
	batchVerdict Verdict

	hasKind      bool
	kind         []byte
	kindRank     int
	kindEnvelope bool

	id []byte

	kbuf, vbuf [maxEscaped]byte
}

// walk visits the values of the valid JSON b, without recursion or
// allocation.
func (w *jsonWalk) walk(b []byte) {
	var stack [maxDepth]frame
	depth, grp, values := 0, -1, 0
	// rank is the op-key rank of the value about to be read, -1 if none;
	// inherited says it comes from an object that an op key holds, which
	// makes only a string a name.
	rank, inherited, isID := -1, false, false
	i := jsonscan.SkipSpace(b, 0)
	for i < len(b) {
		// A value starts at b[i]; rank is its key's op-key rank.
		opened := false
		switch c := b[i]; c {
		case '{', '[':
			values++
			if values > maxValues || depth >= maxDepth {
				w.bounded = true
				return
			}
			f := frame{array: c == '[', nameRank: -1, prevGroup: int16(grp)}
			if !inherited {
				f.nameRank = int16(rank)
			}
			if !f.array && depth > 0 && stack[depth-1].array {
				f.group = true
				grp = depth
			}
			stack[depth] = f
			depth++
			i++
			opened = true
		case '"':
			values++
			if values > maxValues {
				w.bounded = true
				return
			}
			end, esc := jsonscan.StringEnd(b, i)
			if end-i < 2 {
				return
			}
			g := &w.root
			if grp >= 0 {
				g = &stack[grp].names
			}
			w.str(b[i+1:end-1], esc, rank, g)
			if isID {
				w.id = b[i:end]
			}
			i = end
		default:
			end := jsonscan.LiteralEnd(b, i)
			if end == i {
				return // not a value: the JSON was not valid after all
			}
			if isID {
				w.id = b[i:end]
			}
			i = end
		}
		// Find the next value: close what ends here, then read the next
		// member's key or the next element.
		for {
			i = jsonscan.SkipSpace(b, i)
			if depth == 0 || i >= len(b) {
				return
			}
			f := &stack[depth-1]
			switch {
			case b[i] == '}' || b[i] == ']':
				i++
				depth--
				if f.group {
					grp = int(f.prevGroup)
					if f.names&nameSeen != 0 {
						w.addBatch(f.names)
					}
				}
				opened = false
				continue
			case b[i] == ',' && !opened:
				i = jsonscan.SkipSpace(b, i+1)
			case opened:
			default:
				return
			}
			break
		}
		if stack[depth-1].array {
			rank, inherited, isID = int(stack[depth-1].nameRank), false, false
			continue
		}
		if i >= len(b) || b[i] != '"' {
			return
		}
		end, esc := jsonscan.StringEnd(b, i)
		if end-i < 2 {
			return
		}
		rank, inherited = -1, false
		key, ok := decoded(w.kbuf[:], b[i+1:end-1], esc)
		if ok {
			rank = w.keys.rank(key)
		}
		if rank < 0 && stack[depth-1].nameRank >= 0 && !(ok && string(key) == "id") {
			rank, inherited = int(stack[depth-1].nameRank), true // an id is never a name
		}
		isID = depth == 1 && !esc && string(b[i+1:end-1]) == "id"
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = jsonscan.SkipSpace(b, i+1)
	}
}

// str takes a string value: body is its JSON text between the quotes, rank
// the op-key rank of its key (or of the array or object holding it), g the
// flags of the names of its group.
func (w *jsonWalk) str(body []byte, esc bool, rank int, g *uint8) {
	s, ok := decoded(w.vbuf[:], body, esc)
	if rank < 0 {
		if ok && identWrite(s) {
			w.mutating = true
		}
		return
	}
	if !ok {
		w.overflow = true
		return
	}
	if len(s) == 0 {
		return
	}
	env := isEnvelope(s)
	if !w.hasKind || (w.kindEnvelope && !env) || (w.kindEnvelope == env && rank < w.kindRank) {
		w.hasKind, w.kind, w.kindRank, w.kindEnvelope = true, body, rank, env
	}
	if env {
		return
	}
	*g |= nameSeen
	switch v := JudgeName(s); {
	case v == Mutating:
		w.mutating, w.nameWrite = true, true
	case isControl(s):
		*g |= nameControl
	case v == Read:
		*g |= nameRead
	default:
		*g |= nameUnknown
	}
}

// addBatch folds the names of a batch element into the batch's verdict.
func (w *jsonWalk) addBatch(names uint8) {
	v := namesVerdict(names)
	if !w.batch {
		w.batch, w.batchVerdict = true, v
		return
	}
	w.batchVerdict = w.batchVerdict.Worse(v)
}

// judgement turns what the walk found into the message's judgement.
func (w *jsonWalk) judgement() Judgement {
	j := Judgement{Role: Operation, ID: w.id}
	if w.hasKind {
		j.Kind = w.kind
	}
	rootNamed := w.root&nameSeen != 0
	switch {
	case w.nameWrite:
		j.Verdict, j.Reason = Mutating, "write verb"
	case w.mutating:
		j.Verdict, j.Reason = Mutating, "write verb in a value"
	case w.bounded:
		j.Reason = "too deep"
	case w.overflow:
		j.Reason = "escaped name too long"
	case !rootNamed && !w.batch:
		j.Reason = "no operation name"
	case !w.batch && w.root&(nameRead|nameUnknown) == 0:
		j.Role, j.Verdict, j.Reason = Control, Read, "control message"
	default:
		v := w.batchVerdict
		if rootNamed {
			v = namesVerdict(w.root)
			if w.batch {
				v = v.Worse(w.batchVerdict)
			}
		}
		j.Verdict = v
		switch {
		case v == Read:
			j.Reason = "read verb"
		case w.batch && w.batchVerdict == Unknown:
			j.Reason = "batch holds an unknown operation"
		default:
			j.Reason = "unknown operation name"
		}
	}
	return j
}

// argsVerdict judges the arguments of an operation whose name reads (a
// Socket.IO event's, a JSON-RPC method's): the valid JSON b makes it
// Mutating when it holds a write verb under an op key or in an
// identifier-shaped string, Unknown when it is too big to tell, else Read.
// The reasons are the caller's, so that they stay constant.
func argsVerdict(b []byte, keys *opKeys, writes, tooBig string) (Verdict, string) {
	var w jsonWalk
	w.keys = keys
	w.walk(b)
	switch {
	case w.mutating:
		return Mutating, writes
	case w.bounded || w.overflow:
		return Unknown, tooBig
	}
	return Read, "read verb"
}
