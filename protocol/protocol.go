package protocol

// A Verdict says whether replaying a client message can change the
// target's state. Its zero value, Unknown, is the one that is not sent by
// default: a message is replayed only when something shows it is a read.
type Verdict uint8

const (
	// Unknown: nothing shows whether the message reads or writes.
	Unknown Verdict = iota
	// Read: the message only reads (a query, a subscription, a list).
	Read
	// Mutating: the message can change state (a mutation, a write verb).
	Mutating
)

// String returns "unknown", "read" or "mutating".
func (v Verdict) String() string {
	switch v {
	case Read:
		return "read"
	case Mutating:
		return "mutating"
	}
	return "unknown"
}

// Worse returns the more dangerous of v and w: Mutating over Unknown over
// Read.
func (v Verdict) Worse(w Verdict) Verdict {
	rank := func(x Verdict) int {
		switch x {
		case Read:
			return 0
		case Unknown:
			return 1
		}
		return 2
	}
	if rank(w) > rank(v) {
		return w
	}
	return v
}

// A Role says what part a client message plays in its protocol.
type Role uint8

const (
	// Operation is an application request; its Verdict decides whether a
	// replay sends it.
	Operation Role = iota
	// Control is protocol machinery that changes no application state:
	// graphql-ws connection_init and complete, a Socket.IO CONNECT, a
	// client's own ping. A replay sends it in its recorded place.
	Control
	// Reply is the client's answer to a server message (a pong, a
	// Socket.IO acknowledgement). A replay never sends the recorded one:
	// it answers the live server itself (see ServerMessage.Answer).
	Reply
)

// String returns "operation", "control" or "reply".
func (r Role) String() string {
	switch r {
	case Control:
		return "control"
	case Reply:
		return "reply"
	}
	return "operation"
}

// A Judgement is what a profile says of one client message.
type Judgement struct {
	// Role is the message's part in the protocol.
	Role Role
	// Verdict is whether the message can change state. Control messages
	// are Read; Reply messages are Unknown (they are never replayed).
	Verdict Verdict
	// Kind names the operation for reports and coverage: a GraphQL
	// operation's name (else its root fields), a Socket.IO event, a
	// JSON-RPC method, a plain JSON message's operation name. Empty when
	// the message names none. It may alias the judged message: copy it to
	// keep it beyond the message's life.
	Kind []byte
	// Reason says in a few words why the verdict is what it is, for a dry
	// run and for logs, such as "write verb" or "graphql mutation". It is
	// a constant string: judging never formats.
	Reason string
	// ID is the protocol's id of the operation (a graphql-ws subscribe's
	// id, a JSON-RPC request id, a Socket.IO ack id), as it appears in the
	// message; empty when it has none. Server messages that carry the same
	// id belong to this operation (see ServerMessage.ID). It may alias the
	// judged message.
	ID []byte
}

// A ServerMessage is what a profile says of one message from the server.
type ServerMessage struct {
	// Heartbeat is set for protocol keep-alives (a ping, graphql-ws "ka",
	// an Engine.IO ping): they are not part of the conversation's order, so
	// a replay does not count them when it keeps the recorded order.
	Heartbeat bool
	// ID is the id of the operation the message belongs to (a response, a
	// subscription's next or complete), as Judgement.ID reports it for the
	// client's message; empty when none. It may alias the message.
	ID []byte
	// Answer is the message the client must send back now (a pong), nil
	// when none. AnswerBinary says it is a binary message.
	Answer       []byte
	AnswerBinary bool
}

// A Profile knows one websocket application protocol.
type Profile interface {
	// Name is the profile's name, as --protocol takes it: "graphql-transport-ws",
	// "graphql-ws", "socket.io", "json-rpc" or "json".
	Name() string
	// NewConversation returns a judge of one session's messages, fed in the
	// order they were sent: some protocols tie a message to an earlier one
	// (a Socket.IO binary attachment to its event, a graphql-ws complete
	// to its subscribe).
	NewConversation() Conversation
}

// A Conversation judges one session's messages in order. It is not safe for
// concurrent use; a session's client and server sides may be fed to
// separate conversations.
type Conversation interface {
	// Client judges the next client message. binary is set for a binary
	// websocket message.
	Client(msg []byte, binary bool) Judgement
	// Server classifies the next server message.
	Server(msg []byte, binary bool) ServerMessage
}
