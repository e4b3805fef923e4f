package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/http"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes batches in the format batch.go defines; decode.go
// reads them.

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
