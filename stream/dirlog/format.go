package dirlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/preheatdev/preheat/stream"
)

// On-disk constants. docs/dirlog.md describes the layout byte by byte.
const (
	formatVersion = 1

	metaName = "dirlog.json"
	lockName = "writer.lock"

	segMagic     = "PHDL"
	segHeaderLen = 32
	segSuffix    = ".seg"
	segNameLen   = 20 // decimal digits of the base offset

	recHeaderLen = 18 // crc32c(4) length(4) time(8) keylen(2)

	// MaxKeyBytes is the longest partition key Put accepts, the Kinesis
	// limit, so that a stream can move between backends.
	MaxKeyBytes = 256

	maxRecordLen = recHeaderLen + MaxKeyBytes + stream.MaxRecordBytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// meta is the content of dirlog.json.
type meta struct {
	Format     int `json:"format"`
	Partitions int `json:"partitions"`
}

func readMeta(dir string) (meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return meta{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("parse %q: %w", metaName, err)
	}
	if m.Format != formatVersion {
		return meta{}, fmt.Errorf("%q: format %d, want %d", metaName, m.Format, formatVersion)
	}
	if m.Partitions < 1 || m.Partitions > maxPartitions {
		return meta{}, fmt.Errorf("%q: partitions %d out of range [1, %d]", metaName, m.Partitions, maxPartitions)
	}
	return m, nil
}

// writeMeta writes dirlog.json atomically: a temporary file, fsync, rename,
// fsync of the directory.
func writeMeta(dir string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dir, metaName+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, metaName)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// partitionOf maps a key to a partition: the 64-bit FNV-1a hash of the key's
// bytes modulo the partition count.
func partitionOf(key string, n int) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

func partitionDir(dir string, p int) string {
	return filepath.Join(dir, fmt.Sprintf("p%04d", p))
}

func segName(base int64) string {
	return fmt.Sprintf("%020d%s", base, segSuffix)
}

// parseSegName returns the base offset of a segment file name, or false for
// names that are not segments.
func parseSegName(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != segNameLen {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// listSegments returns the base offsets of a partition's segments in
// ascending order.
func listSegments(pdir string) ([]int64, error) {
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		if b, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// segHeader is the fixed header at the start of every segment file.
type segHeader struct {
	partition uint32
	base      int64
	created   int64 // unix nanoseconds
}

func (h segHeader) encode() []byte {
	b := make([]byte, segHeaderLen)
	copy(b, segMagic)
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	binary.LittleEndian.PutUint16(b[6:], segHeaderLen)
	binary.LittleEndian.PutUint32(b[8:], h.partition)
	binary.LittleEndian.PutUint64(b[12:], uint64(h.base))
	binary.LittleEndian.PutUint64(b[20:], uint64(h.created))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

var errBadHeader = errors.New("bad segment header")

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderLen {
		return segHeader{}, fmt.Errorf("%w: %d bytes", errBadHeader, len(b))
	}
	if string(b[:4]) != segMagic {
		return segHeader{}, fmt.Errorf("%w: magic %q", errBadHeader, b[:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("%w: version %d", errBadHeader, v)
	}
	if n := binary.LittleEndian.Uint16(b[6:]); n != segHeaderLen {
		return segHeader{}, fmt.Errorf("%w: header length %d", errBadHeader, n)
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return segHeader{}, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	return segHeader{
		partition: binary.LittleEndian.Uint32(b[8:]),
		base:      int64(binary.LittleEndian.Uint64(b[12:])),
		created:   int64(binary.LittleEndian.Uint64(b[20:])),
	}, nil
}

func readSegHeader(f *os.File) (segHeader, error) {
	b := make([]byte, segHeaderLen)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return segHeader{}, err
	}
	return decodeSegHeader(b[:n])
}

// appendRecord appends the encoding of one record to b:
//
//	crc32c  uint32  over bytes 4..length-1
//	length  uint32  of the whole record, header included
//	time    int64   append time, unix nanoseconds
//	keylen  uint16
//	key     [keylen]byte
//	data    [length-18-keylen]byte
//
// All integers are little endian.
func appendRecord(b []byte, t int64, key string, data []byte) []byte {
	n := recHeaderLen + len(key) + len(data)
	start := len(b)
	b = append(b, make([]byte, recHeaderLen)...)
	binary.LittleEndian.PutUint32(b[start+4:], uint32(n))
	binary.LittleEndian.PutUint64(b[start+8:], uint64(t))
	binary.LittleEndian.PutUint16(b[start+16:], uint16(len(key)))
	b = append(b, key...)
	b = append(b, data...)
	crc := crc32.Checksum(b[start+4:], castagnoli)
	binary.LittleEndian.PutUint32(b[start:], crc)
	return b
}

// decodeStatus says what decodeRecord found at the start of a buffer.
type decodeStatus int

const (
	recOK      decodeStatus = iota
	recShort                // the buffer ends before the record does
	recInvalid              // impossible length or checksum mismatch
)

// rawRecord is a decoded record whose key and data alias the buffer.
type rawRecord struct {
	time int64
	key  []byte
	data []byte
	n    int // encoded length
}

// decodeRecord decodes the record at the start of b. With recShort, need is
// how many bytes the buffer must hold to decide.
func decodeRecord(b []byte) (r rawRecord, st decodeStatus, need int) {
	if len(b) < recHeaderLen {
		return r, recShort, recHeaderLen
	}
	n := int(binary.LittleEndian.Uint32(b[4:]))
	klen := int(binary.LittleEndian.Uint16(b[16:]))
	if n < recHeaderLen || n > maxRecordLen || klen > MaxKeyBytes || recHeaderLen+klen > n {
		return r, recInvalid, 0
	}
	if len(b) < n {
		return r, recShort, n
	}
	if crc32.Checksum(b[4:n], castagnoli) != binary.LittleEndian.Uint32(b) {
		return r, recInvalid, 0
	}
	return rawRecord{
		time: int64(binary.LittleEndian.Uint64(b[8:])),
		key:  b[recHeaderLen : recHeaderLen+klen],
		data: b[recHeaderLen+klen : n],
		n:    n,
	}, recOK, 0
}

// scanSegment reads the records of an open segment from the end of its
// header and returns the file offset just past the last valid record, the
// append time of that record (0 if none), and the number of valid records.
// It stops at the first short or invalid record.
func scanSegment(f *os.File) (end int64, last int64, count int, err error) {
	r := newChunkReader(f, segHeaderLen)
	for {
		rec, st, _, err := r.next()
		if err != nil {
			return 0, 0, 0, err
		}
		if st != recOK {
			return r.off, last, count, nil
		}
		last = rec.time
		count++
	}
}

// chunkReader decodes records from a file that may be growing, reading it
// in chunks with ReadAt so that its view of the file is never stale.
type chunkReader struct {
	f     *os.File
	off   int64  // file offset of buf[0], the next record
	buf   []byte // bytes read from off on, a window of store
	store []byte
}

const readChunk = 64 << 10

func newChunkReader(f *os.File, off int64) *chunkReader {
	return &chunkReader{f: f, off: off}
}

// fill reads until buf holds at least need bytes or the file ends.
func (r *chunkReader) fill(need int) error {
	for len(r.buf) < need {
		want := max(need-len(r.buf), readChunk)
		if cap(r.buf)-len(r.buf) < want {
			// Records decoded earlier alias the store, but callers are
			// done with them once they call next again.
			if len(r.buf)+want > cap(r.store) {
				r.store = make([]byte, len(r.buf)+want)
			}
			n := copy(r.store[:cap(r.store)], r.buf)
			r.buf = r.store[:n]
		}
		n, err := r.f.ReadAt(r.buf[len(r.buf):len(r.buf)+want], r.off+int64(len(r.buf)))
		r.buf = r.buf[:len(r.buf)+n]
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// next decodes the record at off, reading more of the file as needed. With
// recOK the reader has advanced past the record, whose slices stay valid
// until the next call. Otherwise it stays where it was, tail is how many
// bytes the file held from off on (0: the file ends at off), and the bytes
// read are dropped so that the next call sees the file afresh: a writer may
// yet complete the record, or cut it and write another.
func (r *chunkReader) next() (rec rawRecord, st decodeStatus, tail int, err error) {
	defer func() {
		if st != recOK {
			tail = len(r.buf)
			r.buf = r.store[:0]
		}
	}()
	need := recHeaderLen
	for {
		if len(r.buf) < need {
			if err := r.fill(need); err != nil {
				return rawRecord{}, recShort, 0, err
			}
			if len(r.buf) < need {
				return rawRecord{}, recShort, 0, nil
			}
		}
		rec, st, n := decodeRecord(r.buf)
		switch st {
		case recOK:
			r.buf = r.buf[rec.n:]
			r.off += int64(rec.n)
			if len(r.buf) == 0 {
				r.buf = r.store[:0]
			}
			return rec, recOK, 0, nil
		case recShort:
			need = n
		default:
			return rawRecord{}, recInvalid, 0, nil
		}
	}
}

// reset drops buffered bytes and repositions the reader.
func (r *chunkReader) reset(f *os.File, off int64) {
	r.f, r.off, r.buf = f, off, r.store[:0]
	if cap(r.store) > 4*readChunk {
		r.store, r.buf = nil, nil // let a buffer grown for a large record go
	}
}
