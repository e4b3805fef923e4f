package protocol

import (
	"bytes"

	"github.com/preheatdev/preheat/internal/jsonscan"
)

// socketIOProfile is Socket.IO v4 over Engine.IO v4 on the websocket
// transport. Each text message is an Engine.IO packet: a type digit, then
// data. A message packet ('4') carries a Socket.IO packet: a type digit,
// for binary packets the count of attachments and '-', an optional
// namespace ("/admin,"), an optional ack id, and a JSON payload. A binary
// packet is followed by its attachments, one binary message each.
//
// The ID of an event or ack is its ack id, prefixed with its namespace when
// that is not the default one ("/admin,7"), because ack ids count per
// namespace; it aliases the message, in which it is written that way.
type socketIOProfile struct{ keys *opKeys }

func (p *socketIOProfile) Name() string { return "socket.io" }

func (p *socketIOProfile) NewConversation() Conversation {
	return &socketIOConversation{keys: p.keys}
}

// socketIOConversation remembers the binary attachments still to come in
// each direction, which belong to the packet before them.
type socketIOConversation struct {
	keys *opKeys
	// attach is the judgement the client's pending attachments take, and
	// attachLeft how many are still to come.
	attach     Judgement
	attachLeft int
	// serverID is the ID of the server's pending attachments, and
	// serverLeft how many are still to come.
	serverID   []byte
	serverLeft int
}

// Engine.IO packet types.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// Socket.IO packet types.
const (
	sioConnect      = 0
	sioDisconnect   = 1
	sioEvent        = 2
	sioAck          = 3
	sioConnectError = 4
	sioBinaryEvent  = 5
	sioBinaryAck    = 6
)

// maxAttachments bounds the attachments of one binary packet; a packet that
// claims more is malformed.
const maxAttachments = 1 << 16

// sioPacket is a parsed Socket.IO packet.
type sioPacket struct {
	typ         int
	attachments int
	id          []byte // see socketIOProfile
	payload     []byte
}

// parseSocketIO parses the Socket.IO packet p (an Engine.IO message's data)
// as socket.io-parser does; ok is false when it is malformed.
func parseSocketIO(p []byte) (pk sioPacket, ok bool) {
	if len(p) == 0 || p[0] < '0' || p[0] > '6' {
		return pk, false
	}
	pk.typ = int(p[0] - '0')
	i := 1
	if pk.typ == sioBinaryEvent || pk.typ == sioBinaryAck {
		start := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			pk.attachments = pk.attachments*10 + int(p[i]-'0')
			i++
			if pk.attachments > maxAttachments {
				return pk, false
			}
		}
		if i == start || i >= len(p) || p[i] != '-' {
			return pk, false
		}
		i++
	}
	idStart := i
	if i < len(p) && p[i] == '/' {
		for i < len(p) && p[i] != ',' {
			i++
		}
		if i < len(p) {
			i++ // the comma
		}
	}
	nspEnd := i
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i > nspEnd {
		pk.id = p[idStart:i]
	}
	pk.payload = p[i:]
	return pk, true
}

// Client judges a client message. Engine.IO control (ping probes, upgrade,
// noop, close) is Control and a pong is a Reply; of Socket.IO packets,
// CONNECT and DISCONNECT are Control, an ACK is a Reply, and an EVENT is
// judged by its event name (JudgeName) and, when that reads, by its
// arguments, in which a write verb under an op key or an identifier-shaped
// string holding one makes it Mutating. Binary attachments take their
// packet's judgement.
func (c *socketIOConversation) Client(msg []byte, binary bool) Judgement {
	if binary {
		if c.attachLeft > 0 {
			c.attachLeft--
			return c.attach
		}
		return Judgement{Reason: "binary message outside a packet"}
	}
	c.attachLeft = 0 // a text message ends any attachments, as in socket.io-parser
	if len(msg) == 0 {
		return Judgement{Reason: "empty message"}
	}
	switch msg[0] {
	case eioClose, eioPing, eioUpgrade, eioNoop:
		return Judgement{Role: Control, Verdict: Read, Reason: "engine.io control"}
	case eioPong:
		return Judgement{Role: Reply, Reason: "engine.io pong"}
	case eioMessage:
	case eioOpen:
		return Judgement{Reason: "engine.io open from the client"}
	default:
		return Judgement{Reason: "not an engine.io packet"}
	}
	pk, ok := parseSocketIO(msg[1:])
	if !ok {
		return Judgement{Reason: "malformed socket.io packet"}
	}
	var j Judgement
	switch pk.typ {
	case sioConnect, sioDisconnect:
		return Judgement{Role: Control, Verdict: Read, Reason: "socket.io control"}
	case sioAck, sioBinaryAck:
		j = Judgement{Role: Reply, Reason: "socket.io ack", ID: pk.id}
	case sioEvent, sioBinaryEvent:
		j = c.event(pk)
	default:
		j = Judgement{Reason: "unexpected socket.io packet"}
	}
	if pk.attachments > 0 {
		c.attach = Judgement{Role: j.Role, Verdict: j.Verdict, Kind: bytes.Clone(j.Kind), Reason: "binary attachment"}
		c.attachLeft = pk.attachments
	}
	return j
}

// event judges an EVENT or BINARY_EVENT packet.
func (c *socketIOConversation) event(pk sioPacket) Judgement {
	j := Judgement{Role: Operation, ID: pk.id}
	p := pk.payload
	i := jsonscan.SkipSpace(p, 0)
	if i >= len(p) || p[i] != '[' || !jsonscan.Valid(p) {
		j.Reason = "malformed event"
		return j
	}
	i = jsonscan.SkipSpace(p, i+1)
	end := jsonscan.ValueEnd(p, i)
	if i >= len(p) || end <= i || p[i] == ']' {
		j.Reason = "event without a name"
		return j
	}
	first := p[i:end]
	body, isString := jsonscan.StringBody(first)
	if !isString {
		// socket.io-parser takes a number as an event name too.
		j.Kind = first
		j.Reason = "unknown event name"
		return j
	}
	j.Kind = body
	var buf [maxEscaped]byte
	name, ok := decoded(buf[:], body, bytes.IndexByte(body, '\\') >= 0)
	if !ok {
		j.Reason = "escaped event name too long"
		return j
	}
	switch JudgeName(name) {
	case Mutating:
		j.Verdict, j.Reason = Mutating, "write verb"
	case Read:
		j.Verdict, j.Reason = argsVerdict(p, c.keys, "write verb in arguments", "arguments too big to judge")
	default:
		j.Reason = "unknown event name"
	}
	return j
}

// Server reads a server message: an Engine.IO ping is a heartbeat that
// wants its pong, a pong is a heartbeat, and a Socket.IO ACK belongs to the
// client's event of its ack id, as do its binary attachments.
func (c *socketIOConversation) Server(msg []byte, binary bool) ServerMessage {
	if binary {
		if c.serverLeft > 0 {
			c.serverLeft--
			return ServerMessage{ID: c.serverID}
		}
		return ServerMessage{}
	}
	c.serverLeft = 0
	if len(msg) == 0 {
		return ServerMessage{}
	}
	switch msg[0] {
	case eioPing:
		answer := append([]byte{eioPong}, msg[1:]...)
		return ServerMessage{Heartbeat: true, Answer: answer}
	case eioPong, eioNoop:
		return ServerMessage{Heartbeat: true}
	case eioMessage:
	default:
		return ServerMessage{}
	}
	pk, ok := parseSocketIO(msg[1:])
	if !ok {
		return ServerMessage{}
	}
	var sm ServerMessage
	if pk.typ == sioAck || pk.typ == sioBinaryAck {
		sm.ID = pk.id
	}
	if pk.attachments > 0 {
		c.serverID = bytes.Clone(sm.ID)
		c.serverLeft = pk.attachments
	}
	return sm
}
