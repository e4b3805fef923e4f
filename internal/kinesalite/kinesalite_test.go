package kinesalite

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

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
