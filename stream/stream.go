// Package stream moves encoded event batches through a partitioned,
// append-only log and reads them back.
//
// It owns the contract between the parts that write captured sessions (the
// tap) and the parts that read them (the replay cache, inspect, load tests):
// a Producer that puts records keyed by session id, and a Consumer that reads
// every partition from a position or a time and reports where it is. It does
// not know what a record holds; package session encodes and decodes batches.
//
// Two backends implement the contract: package stream/kinesis (Amazon
// Kinesis Data Streams, the distributed engine) and package stream/dirlog (a
// local directory log, the embedded default for one machine). Each backend's
// constructor returns its concrete type; code that works with either takes
// these interfaces.
package stream

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Record is one user record read from a stream: one encoded event batch.
type Record struct {
	// Partition names the shard or partition the record was read from,
	// such as "shardId-000000000001" or "3".
	Partition string
	// Position is where the record sits in its partition. A consumer started
	// with Start.After set to it resumes with the next record. It is opaque
	// and meaningful only to the backend that produced it.
	Position string
	// Key is the partition key the producer was given: the session id.
	Key string
	// Data is the record's payload, an encoded event batch. The receiver
	// owns it.
	Data []byte
	// Time is when the stream accepted the record (Kinesis's approximate
	// arrival timestamp; the directory log's append time).
	Time time.Time
}

// Producer puts records into a stream. Implementations buffer and send
// asynchronously; they are safe for concurrent use.
type Producer interface {
	// Put queues data under key (the session id). Records with the same key
	// keep their order. Put blocks while the producer's bounded buffer is
	// full, until ctx is done; it never blocks on the network otherwise.
	// Once Put returns nil the producer owns delivery: a record it cannot
	// deliver in time is counted and logged, never dropped silently. Put
	// does not retain data after it returns.
	Put(ctx context.Context, key string, data []byte) error
	// Flush returns once every record put before the call was delivered or
	// given up on, or when ctx is done.
	Flush(ctx context.Context) error
	// Close flushes until ctx is done, then stops the producer's goroutines
	// and waits for them. Records still buffered when ctx ends are counted
	// as dropped. Close is safe to call more than once.
	Close(ctx context.Context) error
}

// Consumer reads records from every partition of a stream. Implementations
// are not safe for concurrent calls to Next.
type Consumer interface {
	// Next returns the next record from any partition. Records of one
	// partition come in the order the stream holds them; partitions are
	// interleaved. With Start.StopAtEnd, Next returns io.EOF once every
	// partition has been read to its end.
	Next(ctx context.Context) (Record, error)
	// Positions returns, per partition, the position of the last record Next
	// returned from it: a checkpoint to pass back as Start.After.
	Positions() map[string]string
	// Close stops the consumer's goroutines and waits for them. It is safe
	// to call more than once.
	Close() error
}

// Start says where a consumer begins and whether it stops at the end.
type Start struct {
	// After maps a partition to the position of the last record already
	// seen there; reading resumes with the record after it. Partitions not
	// listed start as Time and Latest say.
	After map[string]string
	// Time starts each partition at its first record accepted at or after
	// Time. The zero Time means the oldest record the stream retains.
	Time time.Time
	// Latest starts each partition not listed in After at its end, so only
	// records put from now on are read. It overrides Time.
	Latest bool
	// StopAtEnd makes Next return io.EOF once every partition has been read
	// up to the end it had when the consumer reached it, instead of
	// following new records.
	StopAtEnd bool
}

// Fate says what became of a record a producer accepted.
type Fate uint8

const (
	// Delivered: the stream acknowledged the record.
	Delivered Fate = iota
	// Lost: the record is not in the stream. Every attempt to send it was
	// refused, or it was given up before it was sent.
	Lost
	// Unknown: the record was given up after an attempt whose outcome the
	// producer never learned (the request timed out or its connection
	// broke), so it may be in the stream.
	Unknown
)

func (f Fate) String() string {
	switch f {
	case Delivered:
		return "delivered"
	case Lost:
		return "lost"
	case Unknown:
		return "unknown"
	}
	return "Fate(" + strconv.Itoa(int(f)) + ")"
}

// Outcome is the fate of one record a producer accepted, reported once by
// producers that report fates (the Kinesis producer's PutTracked).
type Outcome struct {
	Fate Fate
	// Reason names, as a metric label, why a record was not delivered:
	// for example "shed" (given up to make room), "closed" (the producer
	// closed first), "key_lost" (an earlier record of the same key was
	// given up) or the class of the last error ("timeout", "throttled",
	// "network"). It is empty for Delivered.
	Reason string
}

// ErrClosed is returned by calls on a producer or consumer after Close.
var ErrClosed = errors.New("stream: closed")

// MaxRecordBytes is the largest Data a record may carry: the Kinesis limit
// of 1 MiB per record, less room for the partition key and the aggregation
// envelope. Both backends enforce it so that a stream can move between them.
const MaxRecordBytes = 1<<20 - 4096

// ErrTooLarge is returned by Put for data longer than MaxRecordBytes.
var ErrTooLarge = errors.New("stream: record larger than MaxRecordBytes")
