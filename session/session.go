// Package session is the data model every part of preheat shares: a captured
// websocket session and the events that make it up, and the versioned wire
// encoding of an event batch.
//
// A session is what one client did over one websocket connection, from the
// handshake onward: an open event carrying the handshake (after redaction),
// the frames each side sent, and a close. Every event carries its session id
// and a per-session sequence number, so that readers can put events back in
// order and drop duplicates whatever the stream did to them.
//
// Events leave the tap in batches of one session's events (AppendBatch) and
// come back from the stream the same way (DecodeBatch). The byte layout is in
// docs/format.md. This package does no I/O.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
)

// ID identifies a session: 128 random bits.
type ID [16]byte

// NewID returns a random session id.
func NewID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+).
	return id
}

// String returns the id as 32 lowercase hexadecimal digits, the form used as
// a stream partition key and on the command line.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero id, which no session has.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the 32-digit hexadecimal form of an id.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("parse session id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("parse session id %q: %w", s, err)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Kind says what an event records.
type Kind uint8

// The kinds of event.
const (
	// KindOpen is the first event of every session: the handshake.
	KindOpen Kind = 1
	// KindFrame is one application message sent by either side.
	KindFrame Kind = 2
	// KindClose ends a session.
	KindClose Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindOpen:
		return "open"
	case KindFrame:
		return "frame"
	case KindClose:
		return "close"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Direction says which side sent a frame.
type Direction uint8

// The directions of a frame.
const (
	// ClientToServer is a message the client sent.
	ClientToServer Direction = 1
	// ServerToClient is a message the server sent.
	ServerToClient Direction = 2
)

func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client"
	case ServerToClient:
		return "server"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Opcode is the websocket opcode of a message, with RFC 6455's values.
type Opcode uint8

// The data opcodes a captured message can have.
const (
	// Text is a UTF-8 text message.
	Text Opcode = 1
	// Binary is a binary message.
	Binary Opcode = 2
)

func (o Opcode) String() string {
	switch o {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("opcode(%d)", uint8(o))
}

// Side says who ended a session.
type Side uint8

// The sides that can close a session.
const (
	// SideUnknown means the close was not observed from either peer, such
	// as a connection that simply went away.
	SideUnknown Side = 0
	// SideClient means the client sent the first close frame or hung up.
	SideClient Side = 1
	// SideServer means the server sent the first close frame or hung up.
	SideServer Side = 2
	// SideTap means the tap stopped recording the session (a cap was hit or
	// the tap shut down) while the connection may have gone on.
	SideTap Side = 3
)

func (s Side) String() string {
	switch s {
	case SideUnknown:
		return "unknown"
	case SideClient:
		return "client"
	case SideServer:
		return "server"
	case SideTap:
		return "tap"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// Info describes a session as its open event records it.
type Info struct {
	// Route is the request path and query of the handshake, after redaction.
	Route string
	// Header holds the handshake request headers after redaction.
	Header http.Header
	// Subprotocol is the subprotocol the server accepted, if any.
	Subprotocol string
	// Extensions is the Sec-WebSocket-Extensions value the server accepted,
	// such as "permessage-deflate; client_no_context_takeover".
	Extensions string
	// TapID names the tap that captured the session.
	TapID string
	// Start is when the handshake completed. Frame offsets count from it.
	Start time.Time
}

// Event is one thing that happened in a session. Which fields mean something
// depends on Kind.
type Event struct {
	// Session is the id of the session the event belongs to.
	Session ID
	// Seq numbers the session's events from 0, the open event, upward by
	// one with no gaps.
	Seq uint64
	// Kind says what the event records.
	Kind Kind

	// Open is the handshake, for KindOpen.
	Open *Info

	// Direction is who sent the frame, for KindFrame.
	Direction Direction
	// Opcode is the message type, for KindFrame.
	Opcode Opcode
	// Offset is the time from the session's start to the frame, for
	// KindFrame and KindClose, with microsecond precision.
	Offset time.Duration
	// Payload is the message as the application sees it (after
	// decompression and redaction), for KindFrame.
	Payload []byte
	// Truncated is set when Payload holds only the start of a longer
	// message, for KindFrame.
	Truncated bool

	// Code is the close status code, for KindClose; 0 when none was sent.
	Code uint16
	// Reason is the close reason, for KindClose.
	Reason string
	// ClosedBy says who ended the session, for KindClose.
	ClosedBy Side
}
