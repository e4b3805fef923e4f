// Package kpl encodes and decodes the Kinesis Producer Library (KPL)
// aggregation format, so that many small user records travel in one Kinesis
// record and any standard KPL deaggregator can read them back.
//
// An aggregated record is the 4-byte magic F3 89 9A C2, then a protobuf
// AggregatedRecord message, then the 16-byte MD5 digest of the protobuf
// bytes:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag {
//	  required string key   = 1;
//	  optional string value = 2;
//	}
//
// The package does not talk to Kinesis and does not decide which records go
// together; package stream/kinesis does. Aggregator builds one aggregate and
// knows its exact encoded size at every step; Deaggregate splits a Kinesis
// record's data back into user records.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic starts every aggregated record.
var Magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// Overhead is the number of bytes an aggregated record adds around its
// protobuf message: the magic and the MD5 trailer.
const Overhead = len(Magic) + md5.Size

// Protobuf field numbers of the aggregation format.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldRecordPartitionKeyIndex    protowire.Number = 1
	fieldRecordExplicitHashKeyIndex protowire.Number = 2
	fieldRecordData                 protowire.Number = 3
	fieldRecordTags                 protowire.Number = 4

	fieldTagKey   protowire.Number = 1
	fieldTagValue protowire.Number = 2
)

// ErrCorrupt is wrapped by every error Deaggregate returns for data that
// starts with Magic but is not a well-formed aggregated record.
var ErrCorrupt = errors.New("kpl: corrupt aggregated record")

// UserRecord is one record inside an aggregated record.
type UserRecord struct {
	// PartitionKey is the user record's partition key. It is empty for a
	// plain (not aggregated) record: the Kinesis record's key applies.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, a decimal
	// 128-bit integer, or empty if it has none.
	ExplicitHashKey string
	// Data is the user record's payload. Deaggregate returns slices of its
	// input, each capped so that appending to one never overwrites another.
	Data []byte
}

// IsAggregated reports whether data starts with Magic, that is whether
// Deaggregate treats it as an aggregated record rather than a plain one.
func IsAggregated(data []byte) bool {
	return len(data) >= len(Magic) && bytes.Equal(data[:len(Magic)], Magic[:])
}

// Aggregator builds one aggregated record. It copies the data it is given,
// so the caller may reuse its buffers. The zero value is an empty
// aggregator ready to use. An Aggregator is not safe for concurrent use.
type Aggregator struct {
	pkIndex  map[string]uint64
	pkTable  []byte // encoded field 1 entries
	ehkIndex map[string]uint64
	ehkTable []byte // encoded field 2 entries
	records  []byte // encoded field 3 entries
	n        int
}

// Len returns the number of user records added since the last Reset.
func (a *Aggregator) Len() int { return a.n }

// Size returns the exact length of the aggregated record Encode would
// produce now, magic and MD5 trailer included.
func (a *Aggregator) Size() int {
	return Overhead + len(a.pkTable) + len(a.ehkTable) + len(a.records)
}

// SizeWith returns the exact length Size would return after adding a
// user record with the given partition key, explicit hash key (empty for
// none) and data length.
func (a *Aggregator) SizeWith(partitionKey, explicitHashKey string, dataLen int) int {
	size := a.Size()
	pkIdx, ok := a.pkIndex[partitionKey]
	if !ok {
		pkIdx = uint64(len(a.pkIndex))
		size += tableEntrySize(fieldPartitionKeyTable, len(partitionKey))
	}
	ehkIdx := uint64(0)
	if explicitHashKey != "" {
		var ok bool
		ehkIdx, ok = a.ehkIndex[explicitHashKey]
		if !ok {
			ehkIdx = uint64(len(a.ehkIndex))
			size += tableEntrySize(fieldExplicitHashKeyTable, len(explicitHashKey))
		}
	}
	m := recordMessageSize(pkIdx, ehkIdx, explicitHashKey != "", dataLen)
	return size + protowire.SizeTag(fieldRecords) + protowire.SizeBytes(m)
}

// Add appends a user record. explicitHashKey may be empty. Add copies data.
func (a *Aggregator) Add(partitionKey, explicitHashKey string, data []byte) {
	if a.pkIndex == nil {
		a.pkIndex = make(map[string]uint64)
	}
	pkIdx, ok := a.pkIndex[partitionKey]
	if !ok {
		pkIdx = uint64(len(a.pkIndex))
		a.pkIndex[partitionKey] = pkIdx
		a.pkTable = protowire.AppendTag(a.pkTable, fieldPartitionKeyTable, protowire.BytesType)
		a.pkTable = protowire.AppendString(a.pkTable, partitionKey)
	}
	hasEHK := explicitHashKey != ""
	ehkIdx := uint64(0)
	if hasEHK {
		if a.ehkIndex == nil {
			a.ehkIndex = make(map[string]uint64)
		}
		ehkIdx, ok = a.ehkIndex[explicitHashKey]
		if !ok {
			ehkIdx = uint64(len(a.ehkIndex))
			a.ehkIndex[explicitHashKey] = ehkIdx
			a.ehkTable = protowire.AppendTag(a.ehkTable, fieldExplicitHashKeyTable, protowire.BytesType)
			a.ehkTable = protowire.AppendString(a.ehkTable, explicitHashKey)
		}
	}
	m := recordMessageSize(pkIdx, ehkIdx, hasEHK, len(data))
	b := protowire.AppendTag(a.records, fieldRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(m))
	b = protowire.AppendTag(b, fieldRecordPartitionKeyIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, pkIdx)
	if hasEHK {
		b = protowire.AppendTag(b, fieldRecordExplicitHashKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, ehkIdx)
	}
	b = protowire.AppendTag(b, fieldRecordData, protowire.BytesType)
	b = protowire.AppendBytes(b, data)
	a.records = b
	a.n++
}

// Encode appends the aggregated record to dst and returns the extended
// slice. It adds exactly Size bytes. The Aggregator is left unchanged.
func (a *Aggregator) Encode(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, Magic[:]...)
	dst = append(dst, a.pkTable...)
	dst = append(dst, a.ehkTable...)
	dst = append(dst, a.records...)
	sum := md5.Sum(dst[start+len(Magic):])
	return append(dst, sum[:]...)
}

// Reset empties the aggregator, keeping its buffers for reuse.
func (a *Aggregator) Reset() {
	clear(a.pkIndex)
	clear(a.ehkIndex)
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	a.records = a.records[:0]
	a.n = 0
}

func tableEntrySize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func recordMessageSize(pkIdx, ehkIdx uint64, hasEHK bool, dataLen int) int {
	m := protowire.SizeTag(fieldRecordPartitionKeyIndex) + protowire.SizeVarint(pkIdx)
	if hasEHK {
		m += protowire.SizeTag(fieldRecordExplicitHashKeyIndex) + protowire.SizeVarint(ehkIdx)
	}
	return m + protowire.SizeTag(fieldRecordData) + protowire.SizeBytes(dataLen)
}

// Deaggregate splits the data of one Kinesis record into user records.
//
// Data that does not start with Magic is a plain record: Deaggregate
// returns it as the only user record, with empty keys. Data that starts
// with Magic must be a well-formed aggregated record with a matching MD5
// trailer; otherwise the error wraps ErrCorrupt. Unknown protobuf fields
// are skipped. The returned Data fields alias data.
func Deaggregate(data []byte) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return []UserRecord{{Data: data}}, nil
	}
	if len(data) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than magic and digest", ErrCorrupt, len(data))
	}
	msg := data[len(Magic) : len(data)-md5.Size]
	sum := md5.Sum(msg)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, fmt.Errorf("%w: md5 mismatch", ErrCorrupt)
	}

	// Fields may come in any order, so the tables are collected first and
	// the records resolved against them afterwards. Every slice grows by at
	// most one element per field parsed, and each field takes at least two
	// bytes, so allocations stay proportional to the input.
	var pkTable, ehkTable []string
	var recs [][]byte
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldPartitionKeyTable, fieldExplicitHashKeyTable, fieldRecords:
			if typ != protowire.BytesType {
				return nil, fmt.Errorf("%w: field %d has wire type %d", ErrCorrupt, num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrCorrupt, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fieldPartitionKeyTable:
				pkTable = append(pkTable, string(v))
			case fieldExplicitHashKeyTable:
				ehkTable = append(ehkTable, string(v))
			default:
				recs = append(recs, v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrCorrupt, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}

	out := make([]UserRecord, 0, len(recs))
	for i, rb := range recs {
		r, err := parseRecord(rb, pkTable, ehkTable)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRecord(b []byte, pkTable, ehkTable []string) (UserRecord, error) {
	var (
		r                    UserRecord
		pkIdx, ehkIdx        uint64
		hasPK, hasEHK, hasDa bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == fieldRecordPartitionKeyIndex || num == fieldRecordExplicitHashKeyIndex) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
			if num == fieldRecordPartitionKeyIndex {
				pkIdx, hasPK = v, true
			} else {
				ehkIdx, hasEHK = v, true
			}
		case num == fieldRecordData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
			r.Data, hasDa = v[:len(v):len(v)], true
		case num == fieldRecordTags && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
			if err := checkTag(v); err != nil {
				return r, fmt.Errorf("tag: %w", err)
			}
		case num == fieldRecordPartitionKeyIndex || num == fieldRecordExplicitHashKeyIndex ||
			num == fieldRecordData || num == fieldRecordTags:
			return r, fmt.Errorf("field %d has wire type %d", num, typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !hasPK {
		return r, errors.New("missing partition_key_index")
	}
	if !hasDa {
		return r, errors.New("missing data")
	}
	if pkIdx >= uint64(len(pkTable)) {
		return r, fmt.Errorf("partition_key_index %d out of range (table has %d)", pkIdx, len(pkTable))
	}
	r.PartitionKey = pkTable[pkIdx]
	if hasEHK {
		if ehkIdx >= uint64(len(ehkTable)) {
			return r, fmt.Errorf("explicit_hash_key_index %d out of range (table has %d)", ehkIdx, len(ehkTable))
		}
		r.ExplicitHashKey = ehkTable[ehkIdx]
	}
	return r, nil
}

// checkTag validates a Tag message: its key is required.
func checkTag(b []byte) error {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if (num == fieldTagKey || num == fieldTagValue) && typ != protowire.BytesType {
			return fmt.Errorf("field %d has wire type %d", num, typ)
		}
		if num == fieldTagKey {
			hasKey = true
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	if !hasKey {
		return errors.New("missing key")
	}
	return nil
}
