package session

import (
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/zstd"
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
