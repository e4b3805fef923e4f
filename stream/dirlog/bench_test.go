package dirlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/preheatdev/preheat/stream"
)

// BenchmarkProducerPut puts 1 KiB records under 256 keys. Size retention
// keeps the log at 128 MiB, so deletions are part of the cost.
func BenchmarkProducerPut(b *testing.B) {
	p := openProducer(b, b.TempDir(), &ProducerOptions{SegmentBytes: 4 << 20, MaxBytes: 128 << 20})
	data := make([]byte, 1024)
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%d", i)
	}
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConsumerNext reads a 32 MiB log of 1 KiB records over and over,
// reopening the consumer at its end.
func BenchmarkConsumerNext(b *testing.B) {
	dir := b.TempDir()
	p := openProducer(b, dir, &ProducerOptions{SegmentBytes: 4 << 20})
	data := make([]byte, 1024)
	ctx := context.Background()
	const records = 32 << 10
	for i := range records {
		if err := p.Put(ctx, fmt.Sprintf("session-%d", i%256), data); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	c := openConsumer(b, dir, stream.Start{StopAtEnd: true}, nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	read := 0
	for b.Loop() {
		_, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			if read != records {
				b.Fatalf("read %d records of %d", read, records)
			}
			b.StopTimer()
			c.Close()
			c = openConsumer(b, dir, stream.Start{StopAtEnd: true}, nil)
			read = 0
			b.StartTimer()
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		read++
	}
}
