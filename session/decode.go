package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file reads batches in the format batch.go defines, within the
// bounds batch.go sets; encode.go writes them.

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
