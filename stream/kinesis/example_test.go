package kinesis_test

import (
	"context"
	"errors"
	"io"
	"log"
	"time"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis"
)

// This example puts a record and reads the stream back to its end. The
// client comes from the AWS default configuration: AWS_REGION, credentials,
// and AWS_ENDPOINT_URL_KINESIS for a local Kinesis-compatible server.
func Example() {
	ctx := context.Background()
	client, err := kinesis.NewClient(ctx)
	if err != nil {
		log.Fatal(err)
	}

	p, err := kinesis.NewProducer(client, "sessions", nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Put(ctx, "5f0c8a3e9d2b4c1a8e7f6d5c4b3a2918", []byte("event batch")); err != nil {
		log.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		log.Print(err) // undelivered records were counted and logged
	}

	c, err := kinesis.NewConsumer(client, "sessions", stream.Start{StopAtEnd: true}, nil)
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
		log.Printf("%s %s: %d bytes", r.Partition, r.Position, len(r.Data))
	}
	log.Printf("resume with Start.After = %v", c.Positions())
}
