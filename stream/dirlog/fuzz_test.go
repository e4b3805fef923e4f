package dirlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/preheatdev/preheat/stream"
)

func segmentBytes(base int64, recs ...[]byte) []byte {
	b := segHeader{partition: 0, base: base, created: 1}.encode()
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

// FuzzSegment reads arbitrary bytes as a sealed segment followed by an
// active one. Reading must not panic, must end, and every record returned
// must be one whose encoding, checksum included, is in the input.
func FuzzSegment(f *testing.F) {
	r1 := appendRecord(nil, 1, "key", []byte("hello"))
	r2 := appendRecord(nil, 2, "", nil)
	r3 := appendRecord(nil, 3, "session-42", bytes.Repeat([]byte{0xab}, 300))
	good := segmentBytes(0, r1, r2, r3)
	f.Add(good, segmentBytes(1<<20, r3, r1))
	f.Add(good[:len(good)-3], segmentBytes(1<<20, r2))
	flipped := bytes.Clone(good)
	flipped[segHeaderLen+20] ^= 1
	f.Add(flipped, segmentBytes(1<<20, r1, r2[:5]))
	f.Add([]byte{}, []byte("PHDL"))
	f.Add(good[:segHeaderLen], segmentBytes(1<<20, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}))
	f.Fuzz(func(t *testing.T, sealed, active []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, metaName), []byte(`{"format":1,"partitions":1}`), 0o644); err != nil {
			t.Fatal(err)
		}
		pdir := partitionDir(dir, 0)
		if err := os.Mkdir(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			base int64
			b    []byte
		}{{0, sealed}, {1 << 20, active}} {
			if err := os.WriteFile(filepath.Join(pdir, segName(s.base)), s.b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := NewConsumer(dir, stream.Start{StopAtEnd: true}, &ConsumerOptions{Logger: quiet, PollInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for n := 0; ; n++ {
			r, err := c.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			enc := appendRecord(nil, r.Time.UnixNano(), r.Key, r.Data)
			if !bytes.Contains(sealed, enc) && !bytes.Contains(active, enc) {
				t.Fatalf("record %d (key %q, %d bytes) is not in the input", n, r.Key, len(r.Data))
			}
		}

		f, err := os.Open(filepath.Join(pdir, segName(0)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		end, _, _, err := scanSegment(f)
		if err != nil {
			t.Fatal(err)
		}
		if end < segHeaderLen || (end > int64(len(sealed)) && end != segHeaderLen) {
			t.Fatalf("scan end %d of %d bytes", end, len(sealed))
		}
	})
}

// FuzzDecodeRecord decodes arbitrary bytes as a record: no panic, and a
// record accepted is exactly the encoding of what it decoded to.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, "key", []byte("hello")))
	f.Add(appendRecord(nil, -1, "", nil))
	f.Add([]byte{0, 0, 0, 0, 18, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, st, need := decodeRecord(b)
		switch st {
		case recOK:
			enc := appendRecord(nil, rec.time, string(rec.key), rec.data)
			if !bytes.Equal(enc, b[:rec.n]) {
				t.Fatalf("accepted %x, which encodes as %x", b[:rec.n], enc)
			}
		case recShort:
			if need <= len(b) || need > maxRecordLen {
				t.Fatalf("short with need %d of %d bytes", need, len(b))
			}
		}
	})
}
