package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"
)

// The batch envelope: a marker byte, the format version, a flags byte, the
// body length before compression as a uvarint, the CRC-32C of the body
// before compression (4 bytes, little endian), then the body. The layout is
// documented in docs/format.md; keep the two in step.
const (
	batchMarker  = 0xB7
	batchVersion = 1

	flagZstd   = 1 << 0
	flagsKnown = flagZstd
)

const binaryMaxVarintLen32 = 5

// The bounds below make the promise of DecodeBatch true: a corrupt or
// hostile record cannot make a reader allocate more than MaxDecodeBytes.
// Writers refuse what readers would refuse. docs/format.md lists them.

// MaxBatchBytes bounds the body of one batch before compression. Decoding
// refuses larger declared sizes. The tap's batches stay within one stream
// record (1 MiB) unless a single message is larger and compresses well.
const MaxBatchBytes = 16 << 20

// MaxBatchEvents bounds the events of one batch. The tap cuts a batch before
// its body outgrows one stream record (about 1 MiB), and the smallest event
// it writes, a frame with an empty payload, takes 10 bytes: its batches hold
// at most about 105,000 events, the replay cache's far fewer. Without this
// bound a 10 KB record of empty events, which compress to almost nothing,
// decoded to 8 million events and 4.7 GB of allocations.
const MaxBatchEvents = 1 << 17

// MaxHeaderFields bounds the handshake header fields of an open event: each
// value of a header counts once, and a header without values counts once.
// Browsers send about 20; Node.js refuses requests with more than 2,000.
const MaxHeaderFields = 4096

// MaxDecodeBytes bounds what DecodeBatch allocates for one batch, whatever
// its bytes: the body (at most MaxBatchBytes), the strings copied out of it
// (at most as much again), at most MaxBatchEvents events of 112 bytes
// (14 MiB) and one open event's headers (MaxHeaderFields, under 1 MiB), with
// room for the zstd decoder's buffers. Growing a dst that already holds
// events copies them on top of this. A batch the tap writes with its
// default options takes a few hundred kilobytes.
const MaxDecodeBytes = 2*MaxBatchBytes + 16<<20

// compressMinBytes is the body size below which compression is not tried:
// the zstd frame header would cost more than it saves.
const compressMinBytes = 64

// ErrCorrupt is wrapped by every error DecodeBatch returns for bytes that are
// not a valid batch.
var ErrCorrupt = errors.New("corrupt event batch")

// Field numbers of the body, in protobuf wire format. Numbers are never
// reused; a decoder skips numbers it does not know.
const (
	batchSession = 1 // bytes, 16
	batchEvent   = 2 // repeated Event message

	eventSeq       = 1  // varint
	eventKind      = 2  // varint
	eventDirection = 3  // varint
	eventOpcode    = 4  // varint
	eventOffset    = 5  // varint, microseconds
	eventPayload   = 6  // bytes
	eventTruncated = 7  // varint, 1 when set
	eventCode      = 8  // varint
	eventReason    = 9  // bytes, UTF-8
	eventClosedBy  = 10 // varint
	eventOpen      = 11 // Info message

	infoRoute       = 1 // bytes
	infoHeader      = 2 // repeated Header message
	infoSubprotocol = 3 // bytes
	infoExtensions  = 4 // bytes
	infoTapID       = 5 // bytes
	infoStart       = 6 // varint, Unix microseconds

	headerName  = 1 // bytes
	headerValue = 2 // repeated bytes
)

var (
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), // the envelope carries a CRC-32C of the body
			zstd.WithLowerEncoderMem(true),
		)
		if err != nil {
			panic(fmt.Sprintf("session: zstd encoder: %v", err)) // options are constant
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxBatchBytes),
			zstd.WithDecoderConcurrency(0),
		)
		if err != nil {
			panic(fmt.Sprintf("session: zstd decoder: %v", err)) // options are constant
		}
		return d
	})
	bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
)

// AppendBatch appends the encoding of events to dst and returns the extended
// slice. All events must belong to one session. The body is compressed with
// zstd when that makes it smaller.
func AppendBatch(dst []byte, events []Event) ([]byte, error) {
	if len(events) == 0 {
		return dst, errors.New("encode batch: no events")
	}
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	w := BatchWriter{body: (*bp)[:0]}
	for i := range events {
		if err := w.Append(&events[i]); err != nil {
			return dst, err
		}
	}
	*bp = w.body
	return w.AppendTo(dst)
}

// BatchWriter builds one batch an event at a time, copying each event's
// payload once into the batch body. The zero BatchWriter is ready to use;
// it is not safe for concurrent use.
type BatchWriter struct {
	id     ID
	body   []byte
	events int
	open   bool // an open event was appended
}

// Append adds e to the batch. Every event of a batch must have the same
// session id.
func (w *BatchWriter) Append(e *Event) error {
	if w.events == 0 {
		if e.Session.IsZero() {
			return errors.New("encode batch: zero session id")
		}
		w.id = e.Session
		w.body = protowire.AppendTag(w.body[:0], batchSession, protowire.BytesType)
		w.body = protowire.AppendBytes(w.body, e.Session[:])
	} else if e.Session != w.id {
		return fmt.Errorf("encode batch: event of session %s in a batch of %s", e.Session, w.id)
	}
	if w.events >= MaxBatchEvents {
		return fmt.Errorf("encode batch: more than %d events", MaxBatchEvents)
	}
	if e.Kind == KindOpen && w.open {
		return errors.New("encode batch: a second open event")
	}
	mark := len(w.body)
	body, err := appendEvent(w.body, e)
	if err != nil {
		w.body = body[:mark]
		return fmt.Errorf("encode batch: event seq %d: %w", e.Seq, err)
	}
	if len(body) > MaxBatchBytes {
		w.body = body[:mark]
		return fmt.Errorf("encode batch: %d bytes before compression, more than %d", len(body), MaxBatchBytes)
	}
	w.body = body
	w.events++
	w.open = w.open || e.Kind == KindOpen
	return nil
}

// Len returns the size of the batch body so far, before compression.
func (w *BatchWriter) Len() int { return len(w.body) }

// Events returns the number of events appended since the last Reset.
func (w *BatchWriter) Events() int { return w.events }

// Reset empties the batch, keeping its buffer.
func (w *BatchWriter) Reset() {
	w.body = w.body[:0]
	w.events = 0
	w.open = false
	w.id = ID{}
}

// AppendTo appends the encoded batch (envelope and body, compressed when
// that makes it smaller) to dst and returns the extended slice. The batch
// is left as it was.
func (w *BatchWriter) AppendTo(dst []byte) ([]byte, error) {
	if w.events == 0 {
		return dst, errors.New("encode batch: no events")
	}
	body := w.body
	start := len(dst)
	dst = append(dst, batchMarker, batchVersion, 0)
	dst = protowire.AppendVarint(dst, uint64(len(body)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(body, castagnoli))
	if len(body) >= compressMinBytes {
		mark := len(dst)
		dst = zstdEncoder().EncodeAll(body, dst)
		if len(dst)-mark < len(body) {
			dst[start+2] |= flagZstd
			return dst, nil
		}
		dst = dst[:mark]
	}
	return append(dst, body...), nil
}

// appendEvent appends e as a length-prefixed Event message.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	if e.Offset < 0 {
		return b, fmt.Errorf("negative offset %v", e.Offset)
	}
	b = protowire.AppendTag(b, batchEvent, protowire.BytesType)
	// Reserve a one-byte length and move the message if it turns out longer;
	// most events without an open record fit in 127 bytes or need one move.
	lenAt := len(b)
	b = append(b, 0)
	msgAt := len(b)

	b = appendUint(b, eventSeq, e.Seq)
	b = appendUint(b, eventKind, uint64(e.Kind))
	switch e.Kind {
	case KindOpen:
		if e.Open == nil {
			return b, errors.New("open event without Info")
		}
		var err error
		if b, err = appendInfo(b, e.Open); err != nil {
			return b, err
		}
	case KindFrame:
		b = appendUint(b, eventDirection, uint64(e.Direction))
		b = appendUint(b, eventOpcode, uint64(e.Opcode))
		b = appendUint(b, eventOffset, uint64(e.Offset/time.Microsecond))
		if len(e.Payload) > 0 {
			b = protowire.AppendTag(b, eventPayload, protowire.BytesType)
			b = protowire.AppendBytes(b, e.Payload)
		}
		if e.Truncated {
			b = appendUint(b, eventTruncated, 1)
		}
	case KindClose:
		b = appendUint(b, eventOffset, uint64(e.Offset/time.Microsecond))
		b = appendUint(b, eventCode, uint64(e.Code))
		b = appendString(b, eventReason, e.Reason)
		b = appendUint(b, eventClosedBy, uint64(e.ClosedBy))
	default:
		return b, fmt.Errorf("unknown kind %d", e.Kind)
	}

	n := len(b) - msgAt
	if n < 0x80 {
		b[lenAt] = byte(n)
		return b, nil
	}
	// Widen the length prefix: shift the message right by the extra bytes.
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-1)...)
	copy(b[msgAt+size-1:], b[msgAt:msgAt+n])
	protowire.AppendVarint(b[lenAt:lenAt], uint64(n))
	return b, nil
}

func appendInfo(b []byte, in *Info) ([]byte, error) {
	var start uint64
	if !in.Start.IsZero() {
		us := in.Start.UnixMicro()
		if us < 0 {
			return b, fmt.Errorf("start time %v before 1970", in.Start)
		}
		start = uint64(us)
	}
	if n := headerFields(in.Header); n > MaxHeaderFields {
		return b, fmt.Errorf("%d header fields, more than %d", n, MaxHeaderFields)
	}
	var msg []byte
	msg = appendString(msg, infoRoute, in.Route)
	for _, name := range slices.Sorted(maps.Keys(in.Header)) {
		values := in.Header[name]
		var h []byte
		h = appendString(h, headerName, name)
		for _, v := range values {
			h = protowire.AppendTag(h, headerValue, protowire.BytesType)
			h = protowire.AppendString(h, v)
		}
		msg = protowire.AppendTag(msg, infoHeader, protowire.BytesType)
		msg = protowire.AppendBytes(msg, h)
	}
	msg = appendString(msg, infoSubprotocol, in.Subprotocol)
	msg = appendString(msg, infoExtensions, in.Extensions)
	msg = appendString(msg, infoTapID, in.TapID)
	msg = appendUint(msg, infoStart, start)
	b = protowire.AppendTag(b, eventOpen, protowire.BytesType)
	return protowire.AppendBytes(b, msg), nil
}

// headerFields counts h's fields as MaxHeaderFields does.
func headerFields(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += max(1, len(vs))
	}
	return n
}

// appendUint appends a varint field, omitted when zero as in proto3.
func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendString appends a bytes field, omitted when empty as in proto3.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// DecodeBatch decodes one batch, appends its events to dst and returns the
// extended slice. Payloads of the returned events share one freshly
// allocated buffer and do not alias data. Fields and event kinds this
// version does not know are kept as far as they can be (an unknown Kind is
// returned as is, so that sequence numbers stay gap-free) or skipped.
// Every error wraps ErrCorrupt.
//
// Decoding allocates at most MaxDecodeBytes whatever data holds (besides
// copying dst's events when it must grow): a batch of more than
// MaxBatchEvents events is refused before any event is built, one with a
// second open event or more than MaxHeaderFields header fields as soon as
// they are seen.
func DecodeBatch(data []byte, dst []Event) ([]Event, error) {
	body, err := batchBody(data)
	if err != nil {
		return dst, err
	}
	out, err := decodeBody(body, dst)
	if err != nil {
		return dst, fmt.Errorf("decode batch: %w: %v", ErrCorrupt, err)
	}
	return out, nil
}

// BatchSession returns the session id of an encoded batch without decoding
// its events.
func BatchSession(data []byte) (ID, error) {
	body, err := batchBody(data)
	if err != nil {
		return ID{}, err
	}
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			break
		}
		body = body[n:]
		if num == batchSession && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(body)
			if n < 0 || len(v) != len(ID{}) {
				break
			}
			return ID(v), nil
		}
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			break
		}
		body = body[n:]
	}
	return ID{}, fmt.Errorf("decode batch: %w: no session id", ErrCorrupt)
}

// batchBody checks the envelope and returns the body, decompressed.
func batchBody(data []byte) ([]byte, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("decode batch: %w: %d bytes is too short", ErrCorrupt, len(data))
	}
	if data[0] != batchMarker {
		return nil, fmt.Errorf("decode batch: %w: marker %#02x, want %#02x", ErrCorrupt, data[0], batchMarker)
	}
	if data[1] != batchVersion {
		return nil, fmt.Errorf("decode batch: %w: format version %d, this build reads %d", ErrCorrupt, data[1], batchVersion)
	}
	flags := data[2]
	if flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("decode batch: %w: unknown flags %#02x", ErrCorrupt, flags)
	}
	size, n := protowire.ConsumeVarint(data[3:])
	if n < 0 || n > binaryMaxVarintLen32 {
		return nil, fmt.Errorf("decode batch: %w: bad length", ErrCorrupt)
	}
	if size > MaxBatchBytes {
		return nil, fmt.Errorf("decode batch: %w: declared size %d exceeds %d", ErrCorrupt, size, MaxBatchBytes)
	}
	rest := data[3+n:]
	if len(rest) < 4 {
		return nil, fmt.Errorf("decode batch: %w: no checksum", ErrCorrupt)
	}
	sum := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	if flags&flagZstd == 0 {
		if uint64(len(rest)) != size {
			return nil, fmt.Errorf("decode batch: %w: body is %d bytes, header says %d", ErrCorrupt, len(rest), size)
		}
		if crc32.Checksum(rest, castagnoli) != sum {
			return nil, fmt.Errorf("decode batch: %w: checksum mismatch", ErrCorrupt)
		}
		return append([]byte(nil), rest...), nil
	}
	// A zstd frame cannot expand beyond what its block sizes allow, but a
	// declared size lets us allocate once and refuse a frame that grows past it.
	if uint64(len(rest))*maxZstdRatio < size {
		return nil, fmt.Errorf("decode batch: %w: declared size %d for %d compressed bytes", ErrCorrupt, size, len(rest))
	}
	body, err := zstdDecoder().DecodeAll(rest, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("decode batch: %w: zstd: %v", ErrCorrupt, err)
	}
	if uint64(len(body)) != size {
		return nil, fmt.Errorf("decode batch: %w: body decompressed to %d bytes, header says %d", ErrCorrupt, len(body), size)
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("decode batch: %w: checksum mismatch", ErrCorrupt)
	}
	return body, nil
}

// maxZstdRatio bounds how far a declared size may exceed the compressed
// bytes before the allocation for it is refused. zstd reaches ratios near
// 1000 only on degenerate input; captured payloads stay far below.
const maxZstdRatio = 4096

// countEvents counts the events of a body without decoding them.
func countEvents(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		b = b[m:]
		if num == batchEvent && typ == protowire.BytesType {
			n++
		}
		m = protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return n, nil
}

func decodeBody(b []byte, dst []Event) ([]Event, error) {
	n, err := countEvents(b)
	if err != nil {
		return nil, err
	}
	if n > MaxBatchEvents {
		return nil, fmt.Errorf("%d events, more than %d", n, MaxBatchEvents)
	}
	if cap(dst)-len(dst) < n {
		// One allocation of exactly what is needed (slices.Grow may make two).
		grown := make([]Event, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	var d decoder
	var id ID
	haveID := false
	first := len(dst)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == batchSession && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			if len(v) != len(id) {
				return nil, fmt.Errorf("session id of %d bytes", len(v))
			}
			id, haveID = ID(v), true
			b = b[n:]
		case num == batchEvent && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			e, err := d.event(v)
			if err != nil {
				return nil, err
			}
			dst = append(dst, e)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !haveID || id.IsZero() {
		return nil, errors.New("no session id")
	}
	if len(dst) == first {
		return nil, errors.New("no events")
	}
	for i := first; i < len(dst); i++ {
		dst[i].Session = id
	}
	return dst, nil
}

// decoder holds what bounds a batch's decoding across its events.
type decoder struct {
	opened bool // an open record was decoded: a batch holds at most one
}

func (d *decoder) event(b []byte) (Event, error) {
	var e Event
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return e, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return e, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case eventSeq:
				e.Seq = v
			case eventKind:
				if v > math.MaxUint8 {
					return e, fmt.Errorf("kind %d", v)
				}
				e.Kind = Kind(v)
			case eventDirection:
				if v != uint64(ClientToServer) && v != uint64(ServerToClient) {
					return e, fmt.Errorf("direction %d", v)
				}
				e.Direction = Direction(v)
			case eventOpcode:
				if v != uint64(Text) && v != uint64(Binary) {
					return e, fmt.Errorf("opcode %d", v)
				}
				e.Opcode = Opcode(v)
			case eventOffset:
				if v > math.MaxInt64/uint64(time.Microsecond) {
					return e, fmt.Errorf("offset %dµs", v)
				}
				e.Offset = time.Duration(v) * time.Microsecond
			case eventTruncated:
				e.Truncated = v != 0
			case eventCode:
				if v > math.MaxUint16 {
					return e, fmt.Errorf("close code %d", v)
				}
				e.Code = uint16(v)
			case eventClosedBy:
				if v > math.MaxUint8 {
					return e, fmt.Errorf("closed by %d", v)
				}
				e.ClosedBy = Side(v)
			}
			continue
		}
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case eventPayload:
				e.Payload = v
			case eventReason:
				e.Reason = string(v)
			case eventOpen:
				if d.opened {
					return e, errors.New("more than one open event")
				}
				d.opened = true
				in, err := decodeInfo(v)
				if err != nil {
					return e, fmt.Errorf("open: %w", err)
				}
				e.Open = in
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return e, protowire.ParseError(n)
		}
		b = b[n:]
	}
	switch {
	case e.Kind == 0:
		return e, fmt.Errorf("event seq %d without a kind", e.Seq)
	case e.Kind == KindOpen && e.Open == nil:
		return e, fmt.Errorf("open event seq %d without Info", e.Seq)
	case e.Kind == KindFrame && (e.Direction == 0 || e.Opcode == 0):
		return e, fmt.Errorf("frame seq %d without direction or opcode", e.Seq)
	}
	return e, nil
}

func decodeInfo(b []byte) (*Info, error) {
	in := &Info{}
	fields := 0 // header fields so far, counted as MaxHeaderFields says
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case infoRoute:
				in.Route = string(v)
			case infoHeader:
				name, values, err := decodeHeader(v, MaxHeaderFields-fields)
				if err != nil {
					return nil, err
				}
				fields += max(1, len(values))
				if in.Header == nil {
					in.Header = make(http.Header)
				}
				in.Header[name] = append(in.Header[name], values...)
			case infoSubprotocol:
				in.Subprotocol = string(v)
			case infoExtensions:
				in.Extensions = string(v)
			case infoTapID:
				in.TapID = string(v)
			}
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			if num != infoStart {
				continue
			}
			if v > math.MaxInt64 {
				return nil, fmt.Errorf("start %d", v)
			}
			if v != 0 {
				in.Start = time.UnixMicro(int64(v)).UTC()
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return in, nil
}

// decodeHeader decodes one header of at most room fields.
func decodeHeader(b []byte, room int) (string, []string, error) {
	var name string
	var values []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == headerName || num == headerValue) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, protowire.ParseError(n)
			}
			b = b[n:]
			if num == headerName {
				name = string(v)
				continue
			}
			if len(values) >= room {
				return "", nil, fmt.Errorf("more than %d header fields", MaxHeaderFields)
			}
			values = append(values, string(v))
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if name == "" {
		return "", nil, errors.New("header without a name")
	}
	if room < 1 {
		return "", nil, fmt.Errorf("more than %d header fields", MaxHeaderFields)
	}
	return name, values, nil
}
