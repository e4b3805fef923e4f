package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// handVector returns an aggregated record written byte by byte from the
// proto definition, independently of Aggregator: partition key table
// ["a", "bb"], explicit hash key table ["123"], and records
//
//	{partition_key_index: 0, data: "hi"}
//	{partition_key_index: 1, explicit_hash_key_index: 0, data: "x"}
func handVector(withTag bool) []byte {
	msg := []byte{
		0x0A, 0x01, 'a', // partition_key_table[0] = "a"
		0x0A, 0x02, 'b', 'b', // partition_key_table[1] = "bb"
		0x12, 0x03, '1', '2', '3', // explicit_hash_key_table[0] = "123"
		0x1A, 0x06, // records[0], 6 bytes
		0x08, 0x00, // partition_key_index = 0
		0x1A, 0x02, 'h', 'i', // data = "hi"
	}
	if withTag {
		msg = append(msg,
			0x1A, 0x0C, // records[1], 12 bytes
			0x08, 0x01, // partition_key_index = 1
			0x10, 0x00, // explicit_hash_key_index = 0
			0x1A, 0x01, 'x', // data = "x"
			0x22, 0x03, 0x0A, 0x01, 'k', // tags[0] = {key: "k"}
		)
	} else {
		msg = append(msg,
			0x1A, 0x07, // records[1], 7 bytes
			0x08, 0x01, // partition_key_index = 1
			0x10, 0x00, // explicit_hash_key_index = 0
			0x1A, 0x01, 'x', // data = "x"
		)
	}
	sum := md5.Sum(msg)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, msg...)
	return append(out, sum[:]...)
}

func TestEncodeMatchesHandVector(t *testing.T) {
	var a Aggregator
	a.Add("a", "", []byte("hi"))
	a.Add("bb", "123", []byte("x"))
	got := a.Encode(nil)
	want := handVector(false)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got % x\nwant % x", got, want)
	}
	if a.Size() != len(got) {
		t.Fatalf("Size = %d, encoded %d bytes", a.Size(), len(got))
	}
}

func TestDeaggregateHandVector(t *testing.T) {
	for _, withTag := range []bool{false, true} {
		recs, err := Deaggregate(handVector(withTag))
		if err != nil {
			t.Fatalf("withTag=%v: %v", withTag, err)
		}
		want := []UserRecord{
			{PartitionKey: "a", Data: []byte("hi")},
			{PartitionKey: "bb", ExplicitHashKey: "123", Data: []byte("x")},
		}
		if fmt.Sprint(recs) != fmt.Sprint(want) {
			t.Fatalf("withTag=%v: got %+v, want %+v", withTag, recs, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		var a Aggregator
		var want []UserRecord
		n := rng.IntN(50)
		for range n {
			pk := fmt.Sprintf("%032x", rng.IntN(5))
			ehk := ""
			if rng.IntN(3) == 0 {
				ehk = fmt.Sprint(rng.Uint64())
			}
			data := make([]byte, rng.IntN(300))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if iter%2 == 1 {
				data = data[:0]
			}
			predicted := a.SizeWith(pk, ehk, len(data))
			a.Add(pk, ehk, data)
			if a.Size() != predicted {
				t.Fatalf("SizeWith predicted %d, Size after Add %d", predicted, a.Size())
			}
			want = append(want, UserRecord{PartitionKey: pk, ExplicitHashKey: ehk, Data: data})
		}
		enc := a.Encode([]byte("prefix"))[len("prefix"):]
		if len(enc) != a.Size() {
			t.Fatalf("encoded %d bytes, Size %d", len(enc), a.Size())
		}
		got, err := Deaggregate(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || a.Len() != n {
			t.Fatalf("got %d records, want %d (Len %d)", len(got), len(want), a.Len())
		}
		for i := range want {
			if got[i].PartitionKey != want[i].PartitionKey || got[i].ExplicitHashKey != want[i].ExplicitHashKey ||
				!bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
			}
			if cap(got[i].Data) != len(got[i].Data) {
				t.Fatalf("record %d: Data not capped", i)
			}
		}
		a.Reset()
		if a.Len() != 0 || a.Size() != Overhead {
			t.Fatalf("after Reset: Len %d Size %d", a.Len(), a.Size())
		}
	}
}

// TestSizeLargeVarints checks exact size tracking where varint lengths
// change: data lengths around 127/128 and 16383/16384 bytes and more than
// 127 distinct partition keys.
func TestSizeLargeVarints(t *testing.T) {
	var a Aggregator
	for i := range 150 {
		for _, n := range []int{0, 127, 128, 16383, 16384} {
			pk := fmt.Sprint(i)
			predicted := a.SizeWith(pk, "", n)
			a.Add(pk, "", make([]byte, n))
			if a.Size() != predicted {
				t.Fatalf("i=%d n=%d: predicted %d, got %d", i, n, predicted, a.Size())
			}
		}
	}
	if got := len(a.Encode(nil)); got != a.Size() {
		t.Fatalf("encoded %d, Size %d", got, a.Size())
	}
}

func TestDeaggregatePlain(t *testing.T) {
	for _, data := range [][]byte{nil, {}, []byte("hello"), {0xF3, 0x89, 0x9A}} {
		recs, err := Deaggregate(data)
		if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Data, data) || recs[0].PartitionKey != "" {
			t.Fatalf("Deaggregate(%q) = %+v, %v", data, recs, err)
		}
	}
}

func TestDeaggregateCorrupt(t *testing.T) {
	withSum := func(msg []byte) []byte {
		sum := md5.Sum(msg)
		return append(append(append([]byte{}, Magic[:]...), msg...), sum[:]...)
	}
	f := func(name string, data []byte) {
		t.Helper()
		recs, err := Deaggregate(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Deaggregate = %+v, %v; want ErrCorrupt", name, recs, err)
		}
	}
	good := handVector(true)
	bad := bytes.Clone(good)
	bad[10] ^= 1
	f("bad md5", bad)
	f("short", append(Magic[:], 1, 2, 3))
	f("truncated varint", withSum([]byte{0x0A, 0x80}))
	f("truncated bytes", withSum([]byte{0x0A, 0x05, 'a'}))
	f("wrong wire type", withSum([]byte{0x08, 0x01}))
	f("pk index out of range", withSum([]byte{0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00}))
	f("missing data", withSum([]byte{0x0A, 0x00, 0x1A, 0x02, 0x08, 0x00}))
	f("missing pk index", withSum([]byte{0x0A, 0x00, 0x1A, 0x02, 0x1A, 0x00}))
	f("ehk index out of range", withSum([]byte{0x0A, 0x00, 0x1A, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x00}))
	f("tag without key", withSum([]byte{0x0A, 0x00, 0x1A, 0x08, 0x08, 0x00, 0x1A, 0x00, 0x22, 0x02, 0x12, 0x00}))
}

func TestDeaggregateSkipsUnknownFields(t *testing.T) {
	msg := []byte{
		0x0A, 0x01, 'a',
		0x28, 0x96, 0x01, // field 5 varint 150: unknown
		0x1A, 0x0B,
		0x08, 0x00,
		0x35, 1, 2, 3, 4, // field 6 fixed32: unknown, inside Record
		0x1A, 0x02, 'h', 'i',
		0x39, 1, 2, 3, 4, 5, 6, 7, 8, // field 7 fixed64: unknown, after the records
	}
	// Fix the record length: 2 + 5 + 4 = 11 = 0x0B.
	sum := md5.Sum(msg)
	data := append(append(Magic[:], msg...), sum[:]...)
	recs, err := Deaggregate(data)
	if err != nil || len(recs) != 1 || string(recs[0].Data) != "hi" || recs[0].PartitionKey != "a" {
		t.Fatalf("Deaggregate = %+v, %v", recs, err)
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(handVector(false))
	f.Add(handVector(true))
	f.Add([]byte("plain"))
	var a Aggregator
	a.Add("k", "", []byte("v"))
	f.Add(a.Encode(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Deaggregate(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if !IsAggregated(data) {
			if len(recs) != 1 {
				t.Fatalf("plain record gave %d records", len(recs))
			}
			return
		}
		if len(recs) > len(data)/2 {
			t.Fatalf("%d records from %d bytes", len(recs), len(data))
		}
		// Re-encoding what was decoded must decode to the same records.
		var b Aggregator
		for _, r := range recs {
			b.Add(r.PartitionKey, r.ExplicitHashKey, r.Data)
		}
		again, err := Deaggregate(b.Encode(nil))
		if err != nil {
			t.Fatalf("re-encoded aggregate does not decode: %v", err)
		}
		if len(again) != len(recs) {
			t.Fatalf("re-encoded: %d records, want %d", len(again), len(recs))
		}
		for i := range recs {
			if again[i].PartitionKey != recs[i].PartitionKey || again[i].ExplicitHashKey != recs[i].ExplicitHashKey ||
				!bytes.Equal(again[i].Data, recs[i].Data) {
				t.Fatalf("re-encoded record %d differs", i)
			}
		}
	})
}

func benchRecords() ([]string, [][]byte) {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	}
	datas := make([][]byte, 1000)
	for i := range datas {
		datas[i] = make([]byte, 200+rng.IntN(800))
	}
	return keys, datas
}

// BenchmarkAggregate measures building and encoding aggregates of 1,000
// user records of 200 to 1,000 bytes over 64 partition keys.
func BenchmarkAggregate(b *testing.B) {
	keys, datas := benchRecords()
	total := 0
	for _, d := range datas {
		total += len(d)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	var a Aggregator
	var buf []byte
	for b.Loop() {
		a.Reset()
		for i, d := range datas {
			a.Add(keys[i%len(keys)], "", d)
		}
		buf = a.Encode(buf[:0])
	}
}

// BenchmarkDeaggregate measures decoding the aggregate BenchmarkAggregate
// builds.
func BenchmarkDeaggregate(b *testing.B) {
	keys, datas := benchRecords()
	var a Aggregator
	for i, d := range datas {
		a.Add(keys[i%len(keys)], "", d)
	}
	enc := a.Encode(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Deaggregate(enc); err != nil {
			b.Fatal(err)
		}
	}
}
