package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Opcode is a websocket frame opcode (RFC 6455 section 5.2).
type Opcode uint8

// The opcodes RFC 6455 defines; the others are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xa
)

// IsControl reports whether o is a control opcode (close, ping, pong or a
// reserved control opcode).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode(%#x)", uint8(o))
}

// Message is a complete data message or a single control frame.
type Message struct {
	// Opcode is OpText or OpBinary for a data message (never OpContinuation),
	// or OpClose, OpPing or OpPong for a control frame.
	Opcode Opcode
	// Payload is the unmasked and, when Compressed, inflated application
	// data, at most MaxMessageBytes long for a data message and 125 bytes for
	// a control frame. It is valid only during the call to
	// emit; copy it to keep it.
	Payload []byte
	// Truncated is set when the message was longer than MaxMessageBytes and
	// Payload holds only its first MaxMessageBytes bytes.
	Truncated bool
	// Compressed is set when the message was sent with permessage-deflate.
	Compressed bool
	// NonMinimalLength is set when a frame of the message used a longer
	// length encoding than needed (say 16 bits for 100 bytes). RFC 6455 forbids
	// it but peers tolerate it, so the parser accepts it and reports it here.
	NonMinimalLength bool
	// WireBytes counts the bytes of the message's frames on the wire, headers
	// included, control frames interleaved between its fragments excluded.
	WireBytes int
	// CloseCode is the status code of a close frame, or 0 when the close
	// frame had no payload (RFC 6455 reports that as 1005).
	CloseCode uint16
	// CloseReason is the reason text of a close frame, as sent (its UTF-8 is
	// not checked).
	CloseReason string
}

// Reasons an [Error] carries. Each is a short label fit for a metric.
const (
	ReasonUnmaskedClientFrame    = "unmasked_client_frame"
	ReasonMaskedServerFrame      = "masked_server_frame"
	ReasonReservedOpcode         = "reserved_opcode"
	ReasonReservedBits           = "reserved_bits"
	ReasonControlTooLong         = "control_too_long"
	ReasonFragmentedControl      = "fragmented_control"
	ReasonUnexpectedContinuation = "unexpected_continuation"
	ReasonMissingContinuation    = "missing_continuation"
	ReasonBadLength              = "bad_length"
	ReasonBadClosePayload        = "bad_close_payload"
	ReasonInflate                = "inflate"
	ReasonInflateLimit           = "inflate_limit"
	ReasonReleased               = "released"
)

// Error is a stream the parser cannot follow.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Err describes the problem.
	Err error
}

func (e *Error) Error() string { return "parse websocket frame: " + e.Reason + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func newError(reason string, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

var errReleased = &Error{Reason: ReasonReleased, Err: errors.New("parser was released")}

const (
	maxHeaderLen      = 14
	maxControlPayload = 125

	defaultMaxMessageBytes = 1 << 20
	defaultMaxInflateBytes = 64 << 20
)

// Options configure a [Parser]. A nil *Options means all defaults.
type Options struct {
	// Client is true for the client-to-server direction, whose frames must
	// be masked; false for server-to-client, whose frames must not be.
	Client bool
	// Deflate holds the negotiated permessage-deflate parameters (see
	// [ParseDeflate]); nil when permessage-deflate was not negotiated, in
	// which case any RSV bit is an error.
	Deflate *DeflateParams
	// MaxMessageBytes caps the payload kept per data message, in bytes
	// (control frames, at most 125 bytes, are always delivered whole). Longer
	// messages are still parsed to their end (and inflated to their end when
	// context takeover needs their window; without it inflation stops at the
	// cap) but delivered truncated with Truncated set. Default 1 MiB.
	MaxMessageBytes int
	// MaxInflateBytes caps, in bytes, how much one compressed message may
	// inflate to, and how long its compressed form may be, before the parser
	// fails with reason inflate_limit (a decompression bomb). Default 64 MiB.
	MaxInflateBytes int
}

func (o *Options) cloneWithDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = defaultMaxMessageBytes
	}
	if c.MaxInflateBytes <= 0 {
		c.MaxInflateBytes = defaultMaxInflateBytes
	}
	return c
}

// Parser parses one direction of a websocket connection. It is not safe for
// concurrent use.
type Parser struct {
	client     bool
	deflate    bool
	takeover   bool
	windowBits int
	maxMsg     int
	maxInflate int

	err *Error

	// Header bytes of a frame split across Feed calls.
	hdr  [maxHeaderLen]byte
	hdrN int

	// The current frame.
	inPayload  bool
	fin        bool
	op         Opcode
	masked     bool
	key        [4]byte
	keyPos     int
	frameLen   uint64
	remain     uint64
	nonMinimal bool

	// The open data message.
	msgOpen       bool
	msgOp         Opcode
	msgFrames     int
	msgCompressed bool
	msgTruncated  bool
	msgNonMinimal bool
	msgWire       int
	msgLen        int
	buf           *[]byte // pooled; payload, or compressed bytes

	ctl     [maxControlPayload]byte
	ctlN    int
	ctlWire int

	// permessage-deflate state; see deflate.go.
	window []byte  // context takeover window, pooled
	out    *[]byte // pooled; inflated payload
	src    tailReader

	msg Message
}

// NewParser returns a parser for one direction of a connection.
func NewParser(opts *Options) *Parser {
	p := new(Parser)
	p.init(opts)
	return p
}

// Reset makes p the parser NewParser(opts) returns, after releasing its
// buffers and window as Release does. It lets a caller reuse parsers (see
// Idle).
func (p *Parser) Reset(opts *Options) {
	p.releaseBuffers()
	p.releaseWindow()
	*p = Parser{}
	p.init(opts)
}

// Idle reports whether the parser is between messages and keeps nothing
// that a later Feed needs but its options: no part of a frame, no open
// message, no buffer and no context takeover window. A parser that failed
// is not idle. The parser of an idle connection can be given up (say to a
// pool, for Reset) and a new one made with the same options when bytes
// arrive again; it parses them the same.
func (p *Parser) Idle() bool {
	return p.err == nil && p.hdrN == 0 && !p.inPayload && !p.msgOpen &&
		p.buf == nil && p.out == nil && p.window == nil
}

func (p *Parser) init(opts *Options) {
	o := opts.cloneWithDefaults()
	p.client = o.Client
	p.maxMsg = o.MaxMessageBytes
	p.maxInflate = o.MaxInflateBytes
	if d := o.Deflate; d != nil {
		p.deflate = true
		p.takeover, p.windowBits = !d.ServerNoContextTakeover, d.ServerMaxWindowBits
		if o.Client {
			p.takeover, p.windowBits = !d.ClientNoContextTakeover, d.ClientMaxWindowBits
		}
		if p.windowBits < minWindowBits || p.windowBits > maxWindowBits {
			p.windowBits = maxWindowBits
		}
	}
}

// Err returns the error that stopped the parser, or nil.
func (p *Parser) Err() error {
	if p.err == nil {
		return nil
	}
	return p.err
}

// Release returns the parser's buffers, the context takeover window
// included, to shared pools. Every later Feed fails with reason released
// (or the error that stopped the parser before). Release is safe to call
// more than once.
func (p *Parser) Release() {
	p.releaseBuffers()
	p.releaseWindow()
	if p.err == nil {
		p.err = errReleased
	}
}

// Feed parses b, the next bytes of the stream, and calls emit for each
// complete data message and each control frame it completes, in stream
// order. b may be split anywhere; Feed keeps only what it must (a partial
// header, the open message). Feed may modify b (it unmasks in place) but does
// not retain it. emit must not be nil and must not call Feed. After an error
// the parser stays failed and Feed returns the same *Error.
func (p *Parser) Feed(b []byte, emit func(*Message)) error {
	if p.err != nil {
		return p.err
	}
	for len(b) > 0 {
		if !p.inPayload {
			n, ok, err := p.readHeader(b)
			b = b[n:]
			if err != nil {
				return p.fail(err)
			}
			if !ok {
				return nil
			}
			if p.remain == 0 {
				if err := p.endFrame(nil, emit); err != nil {
					return p.fail(err)
				}
				continue
			}
			p.inPayload = true
		}
		n := len(b)
		if uint64(n) > p.remain {
			n = int(p.remain)
		}
		chunk := b[:n]
		b = b[n:]
		if p.masked {
			p.keyPos = mask(chunk, p.key, p.keyPos)
		}
		whole := uint64(n) == p.frameLen
		p.remain -= uint64(n)
		var direct []byte
		switch {
		case p.op.IsControl():
			p.ctlN += copy(p.ctl[p.ctlN:], chunk)
		case whole && p.fin && p.msgFrames == 1:
			// A single-frame message in one chunk: no copy.
			direct = chunk
		default:
			if err := p.dataChunk(chunk); err != nil {
				return p.fail(err)
			}
		}
		if p.remain == 0 {
			p.inPayload = false
			if err := p.endFrame(direct, emit); err != nil {
				return p.fail(err)
			}
		}
	}
	return nil
}

func (p *Parser) fail(err *Error) error {
	p.err = err
	p.releaseBuffers()
	p.releaseWindow()
	return err
}

// readHeader consumes the frame header at the start of b, or as much of it
// as b holds. It reports how many bytes it consumed and whether the header
// is complete.
func (p *Parser) readHeader(b []byte) (int, bool, *Error) {
	if p.hdrN == 0 && len(b) >= 2 {
		if need := headerLen(b[0], b[1]); len(b) >= need {
			return need, true, p.decodeHeader(b[:need])
		}
	}
	n := 0
	if p.hdrN < 2 {
		c := copy(p.hdr[p.hdrN:2], b)
		p.hdrN += c
		n += c
		if p.hdrN < 2 {
			return n, false, nil
		}
	}
	need := headerLen(p.hdr[0], p.hdr[1])
	c := copy(p.hdr[p.hdrN:need], b[n:])
	p.hdrN += c
	n += c
	if p.hdrN < need {
		return n, false, nil
	}
	p.hdrN = 0
	return n, true, p.decodeHeader(p.hdr[:need])
}

// headerLen returns the length of a frame header from its first two bytes.
func headerLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

func (p *Parser) decodeHeader(h []byte) *Error {
	fin := h[0]&0x80 != 0
	rsv := h[0] & 0x70
	op := Opcode(h[0] & 0x0f)
	masked := h[1]&0x80 != 0
	length := uint64(h[1] & 0x7f)
	nonMinimal := false
	i := 2
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:]))
		nonMinimal = length < 126
		i = 4
	case 127:
		length = binary.BigEndian.Uint64(h[2:])
		nonMinimal = length <= 0xffff
		i = 10
	}

	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return newError(ReasonReservedOpcode, "opcode %#x", uint8(op))
	}
	if masked != p.client {
		if p.client {
			return newError(ReasonUnmaskedClientFrame, "client frame is not masked")
		}
		return newError(ReasonMaskedServerFrame, "server frame is masked")
	}
	if rsv&0x30 != 0 {
		return newError(ReasonReservedBits, "rsv2/rsv3 set (%#x)", rsv)
	}
	compressed := rsv != 0
	if compressed {
		switch {
		case !p.deflate:
			return newError(ReasonReservedBits, "rsv1 set without permessage-deflate")
		case op == OpContinuation:
			return newError(ReasonReservedBits, "rsv1 set on a continuation frame")
		case op.IsControl():
			return newError(ReasonReservedBits, "rsv1 set on a %s frame", op)
		}
	}
	if length>>63 != 0 {
		return newError(ReasonBadLength, "64-bit length with the top bit set (%#x)", length)
	}
	if op.IsControl() {
		if !fin {
			return newError(ReasonFragmentedControl, "%s frame without FIN", op)
		}
		if length > maxControlPayload {
			return newError(ReasonControlTooLong, "%s frame of %d bytes", op, length)
		}
		if op == OpClose && length == 1 {
			return newError(ReasonBadClosePayload, "close frame of 1 byte")
		}
	} else {
		switch {
		case op == OpContinuation && !p.msgOpen:
			return newError(ReasonUnexpectedContinuation, "continuation frame without a message")
		case op != OpContinuation && p.msgOpen:
			return newError(ReasonMissingContinuation, "%s frame while a %s message is open", op, p.msgOp)
		}
	}

	p.fin, p.op, p.masked = fin, op, masked
	if masked {
		copy(p.key[:], h[i:i+4])
	}
	p.keyPos = 0
	p.frameLen, p.remain = length, length
	p.nonMinimal = nonMinimal
	wire := satAdd(len(h), length)
	if op.IsControl() {
		p.ctlN = 0
		p.ctlWire = wire
		return nil
	}
	if op != OpContinuation {
		p.msgOpen = true
		p.msgOp = op
		p.msgFrames = 0
		p.msgCompressed = compressed
		p.msgTruncated = false
		p.msgNonMinimal = false
		p.msgWire = 0
		p.msgLen = 0
	}
	p.msgFrames++
	p.msgNonMinimal = p.msgNonMinimal || nonMinimal
	p.msgWire = satAdd(p.msgWire, uint64(wire))
	return nil
}

// satAdd returns a+b, capped at the largest int.
func satAdd(a int, b uint64) int {
	const maxInt = int(^uint(0) >> 1)
	if b > uint64(maxInt-a) {
		return maxInt
	}
	return a + int(b)
}

// dataChunk collects the next payload bytes of the open data message.
func (p *Parser) dataChunk(c []byte) *Error {
	if len(c) == 0 {
		return nil
	}
	if p.msgCompressed {
		if len(c) > p.maxInflate-p.msgLen {
			return newError(ReasonInflateLimit, "compressed message longer than %d bytes", p.maxInflate)
		}
		p.msgLen += len(c)
	} else if room := p.maxMsg - p.msgLen; len(c) > room {
		c = c[:room]
		p.msgTruncated = true
	}
	if len(c) == 0 {
		return nil
	}
	if !p.msgCompressed {
		p.msgLen += len(c)
	}
	if p.buf == nil {
		p.buf = getBuf()
	}
	*p.buf = append(*p.buf, c...)
	return nil
}

// endFrame finishes the current frame. direct, when not nil, is the whole
// payload of a single-frame message, unmasked in the caller's buffer.
func (p *Parser) endFrame(direct []byte, emit func(*Message)) *Error {
	if p.op.IsControl() {
		return p.emitControl(emit)
	}
	if !p.fin {
		return nil
	}
	src := direct
	if src == nil && p.buf != nil {
		src = *p.buf
	}
	p.msg = Message{
		Opcode:           p.msgOp,
		Payload:          src,
		Truncated:        p.msgTruncated,
		Compressed:       p.msgCompressed,
		NonMinimalLength: p.msgNonMinimal,
		WireBytes:        p.msgWire,
	}
	if p.msgCompressed {
		if len(src) > p.maxInflate {
			return newError(ReasonInflateLimit, "compressed message longer than %d bytes", p.maxInflate)
		}
		out, truncated, err := p.inflate(src)
		if err != nil {
			return err
		}
		p.msg.Payload, p.msg.Truncated = out, truncated
	} else if len(src) > p.maxMsg {
		p.msg.Payload, p.msg.Truncated = src[:p.maxMsg], true
	}
	p.msgOpen = false
	emit(&p.msg)
	p.msg = Message{}
	p.releaseBuffers()
	return nil
}

func (p *Parser) emitControl(emit func(*Message)) *Error {
	payload := p.ctl[:p.ctlN]
	p.msg = Message{
		Opcode:           p.op,
		Payload:          payload,
		NonMinimalLength: p.nonMinimal,
		WireBytes:        p.ctlWire,
	}
	if p.op == OpClose && len(payload) >= 2 {
		p.msg.CloseCode = binary.BigEndian.Uint16(payload)
		p.msg.CloseReason = string(payload[2:])
	}
	emit(&p.msg)
	p.msg = Message{}
	return nil
}

// Buffers for open messages and inflated payloads are shared between
// parsers. Buffers that grew past maxPooledBuf are left to the garbage
// collector so one huge message does not pin memory.
const maxPooledBuf = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte {
	b := bufPool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	bufPool.Put(b)
}

func (p *Parser) releaseBuffers() {
	if p.buf != nil {
		putBuf(p.buf)
		p.buf = nil
	}
	if p.out != nil {
		putBuf(p.out)
		p.out = nil
	}
}

// Held returns the bytes the parser holds between calls: the open message's
// buffer, an inflate buffer and the context takeover window. Callers that
// bound memory charge it.
func (p *Parser) Held() int {
	n := cap(p.window)
	if p.buf != nil {
		n += cap(*p.buf)
	}
	if p.out != nil {
		n += cap(*p.out)
	}
	return n
}
