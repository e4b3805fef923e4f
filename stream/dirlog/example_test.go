package dirlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func Example() {
	dir, err := os.MkdirTemp("", "dirlog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Partitions: 4})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		if err := p.Put(ctx, "session-1", fmt.Appendf(nil, "batch %d", i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}

	c, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for {
		r, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s partition=%s position=%s\n", r.Key, r.Data, r.Partition, r.Position)
	}
	fmt.Println(c.Positions())
	// Output:
	// session-1 batch 0 partition=1 position=34
	// session-1 batch 1 partition=1 position=68
	// session-1 batch 2 partition=1 position=102
	// map[1:102]
}
