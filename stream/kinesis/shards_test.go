package kinesis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
)

// TestShardPrediction checks the shard map against the server: the shard
// predicted for a partition key is the one Kinesis puts it in.
func TestShardPrediction(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 7)
	cl := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shards, err := listShards(ctx, cl, name)
	if err != nil {
		t.Fatal(err)
	}
	m := newShardMap(shards)
	if len(m.open) != 7 {
		t.Fatalf("%d open shards, want 7", len(m.open))
	}
	for i := range 100 {
		key := fmt.Sprintf("session-%d", i)
		out, err := cl.PutRecord(ctx, &awskinesis.PutRecordInput{
			StreamName: aws.String(name), PartitionKey: aws.String(key), Data: []byte("x"),
		})
		if err != nil {
			t.Fatal(err)
		}
		got := m.lookup(partitionHash(key))
		if got == nil || got.id != *out.ShardId {
			t.Fatalf("key %q: predicted %v, Kinesis chose %s", key, got, *out.ShardId)
		}
		// The shard's starting hash key as ExplicitHashKey routes to it.
		out, err = cl.PutRecord(ctx, &awskinesis.PutRecordInput{
			StreamName: aws.String(name), PartitionKey: aws.String(key), Data: []byte("x"),
			ExplicitHashKey: aws.String(got.startKey),
		})
		if err != nil {
			t.Fatal(err)
		}
		if *out.ShardId != got.id {
			t.Fatalf("ExplicitHashKey %s went to %s, not %s", got.startKey, *out.ShardId, got.id)
		}
	}
}

func TestShardMapLookup(t *testing.T) {
	info := func(id, start, end string) shardInfo {
		s, err := parseHashKey(start)
		if err != nil {
			t.Fatal(err)
		}
		e, err := parseHashKey(end)
		if err != nil {
			t.Fatal(err)
		}
		return shardInfo{id: id, start: s, end: e, startKey: start}
	}
	const max128 = "340282366920938463463374607431768211455"
	m := newShardMap([]shardInfo{
		info("b", "18446744073709551616", max128), // 2^64 ..
		info("a", "0", "18446744073709551615"),    // .. 2^64-1
		{id: "closed", closed: true},
	})
	f := func(h hashKey, want string) {
		t.Helper()
		got := m.lookup(h)
		if got == nil || got.id != want {
			t.Errorf("lookup(%v) = %v, want %s", h, got, want)
		}
	}
	f(hashKey{0, 0}, "a")
	f(hashKey{0, ^uint64(0)}, "a")
	f(hashKey{1, 0}, "b")
	f(hashKey{^uint64(0), ^uint64(0)}, "b")

	gap := newShardMap([]shardInfo{info("x", "10", "20")})
	if s := gap.lookup(hashKey{0, 5}); s != nil {
		t.Errorf("lookup below every shard = %v", s)
	}
	if s := gap.lookup(hashKey{0, 21}); s != nil {
		t.Errorf("lookup above every shard = %v", s)
	}
	for _, bad := range []string{"", "-1", "x", "340282366920938463463374607431768211456"} {
		if _, err := parseHashKey(bad); err == nil {
			t.Errorf("parseHashKey(%q) succeeded", bad)
		}
	}
}

func TestParsePosition(t *testing.T) {
	f := func(s string, want position, ok bool) {
		t.Helper()
		got, err := parsePosition(s)
		if (err == nil) != ok || got != want {
			t.Errorf("parsePosition(%q) = %+v, %v", s, got, err)
		}
	}
	f("49590338271490256608559692538361571095921575989136588898", position{"49590338271490256608559692538361571095921575989136588898", -1}, true)
	f("123:0", position{"123", 0}, true)
	f("123:17", position{"123", 17}, true)
	f("", position{}, false)
	f(":1", position{}, false)
	f("12a", position{}, false)
	f("123:", position{}, false)
	f("123:-1", position{}, false)
	f("123:x", position{}, false)
	if formatPosition("5", 3, true) != "5:3" || formatPosition("5", 0, false) != "5" {
		t.Error("formatPosition")
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := 1; n < 100; n++ {
		d := backoff(100*time.Millisecond, 5*time.Second, n)
		ceil := 5 * time.Second
		if n < 7 {
			ceil = 100 * time.Millisecond << (n - 1)
		}
		if got := backoffCeiling(100*time.Millisecond, 5*time.Second, n); got != ceil {
			t.Fatalf("backoffCeiling(n=%d) = %v, want %v", n, got, ceil)
		}
		if d < 0 || d > ceil {
			t.Fatalf("backoff(n=%d) = %v, ceiling %v", n, d, ceil)
		}
	}
	if backoff(time.Second, time.Minute, 0) != 0 {
		t.Error("backoff before any failure")
	}
}

// TestListShardsPaginates serves ListShards in pages of two, as Kinesis
// does for large streams (kinesalite ignores MaxResults and NextToken), and
// checks that every shard is listed and that follow-up calls carry only the
// NextToken, which Kinesis requires.
func TestListShardsPaginates(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 5)
	var all []types.Shard
	pages := 0
	pager := withInitialize("pager", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		ls, ok := in.Parameters.(*awskinesis.ListShardsInput)
		if !ok {
			return next.HandleInitialize(ctx, in)
		}
		pages++
		from := 0
		if ls.NextToken != nil {
			if ls.StreamName != nil {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName cannot be provided together")}
			}
			fmt.Sscanf(*ls.NextToken, "page-%d", &from)
		} else {
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				return out, md, err
			}
			all = out.Result.(*awskinesis.ListShardsOutput).Shards
		}
		to := min(from+2, len(all))
		res := &awskinesis.ListShardsOutput{Shards: all[from:to]}
		if to < len(all) {
			res.NextToken = aws.String(fmt.Sprintf("page-%d", to))
		}
		return middleware.InitializeOutput{Result: res}, middleware.Metadata{}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shards, err := listShards(ctx, srv.Client(t, pager), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 5 || pages != 3 {
		t.Fatalf("listed %d shards in %d pages, want 5 in 3", len(shards), pages)
	}
}
