package kinesalite

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestStart(t *testing.T) {
	s := Start(t)
	s.CreateStream(t, "s", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := s.Client(t).ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(out.Shards))
	}
}

// TestRestartPersistent: a persistent server killed and started again still
// has its stream and records, on the same endpoint.
func TestRestartPersistent(t *testing.T) {
	s := StartPersistent(t)
	s.CreateStream(t, "s", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := s.Client(t)
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Restart(t)
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 1 || string(out.Records[0].Data) != "kept" {
		t.Fatalf("after a restart the shard holds %d records", len(out.Records))
	}
}

// TestPause: a paused server answers nothing until it is resumed.
func TestPause(t *testing.T) {
	s := Start(t)
	s.CreateStream(t, "s", 1)
	c := s.Client(t)
	s.Pause(t)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.ListShards(short, &kinesis.ListShardsInput{StreamName: aws.String("s")}); err == nil {
		t.Fatal("a paused server answered")
	}
	s.Resume(t)
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}
