package kinesis

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// hashKey is a 128-bit Kinesis hash key.
type hashKey struct{ hi, lo uint64 }

func (h hashKey) less(o hashKey) bool {
	return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo)
}

// partitionHash returns the hash key Kinesis derives from a partition key:
// its MD5 digest read as a big-endian 128-bit integer.
func partitionHash(key string) hashKey {
	sum := md5.Sum([]byte(key))
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

func parseHashKey(s string) (hashKey, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.Cmp(maxHashKey) > 0 {
		return hashKey{}, fmt.Errorf("bad hash key %q", s)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return hashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// shardInfo is what the producer and the consumer keep of a listed shard.
type shardInfo struct {
	id       string
	parents  []string // parent and adjacent parent, if listed by Kinesis
	start    hashKey
	end      hashKey
	startKey string // decimal starting hash key, used as ExplicitHashKey
	closed   bool   // has an ending sequence number
}

// shardMap maps hash keys to the open shards that own them.
type shardMap struct {
	open []shardInfo // sorted by start
}

// lookup returns the open shard whose range holds h, or nil.
func (m *shardMap) lookup(h hashKey) *shardInfo {
	i, found := slices.BinarySearchFunc(m.open, h, func(s shardInfo, h hashKey) int {
		switch {
		case h.less(s.start):
			return 1
		case s.start == h:
			return 0
		default:
			return -1
		}
	})
	if !found {
		i--
	}
	if i < 0 || i >= len(m.open) {
		return nil
	}
	s := &m.open[i]
	if s.end.less(h) {
		return nil
	}
	return s
}

func newShardMap(shards []shardInfo) *shardMap {
	m := &shardMap{}
	for _, s := range shards {
		if !s.closed {
			m.open = append(m.open, s)
		}
	}
	slices.SortFunc(m.open, func(a, b shardInfo) int {
		switch {
		case a.start.less(b.start):
			return -1
		case b.start.less(a.start):
			return 1
		}
		return 0
	})
	return m
}

// listShards lists every shard of the stream, following NextToken.
func listShards(ctx context.Context, client *awskinesis.Client, stream string) ([]shardInfo, error) {
	var out []shardInfo
	in := &awskinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		resp, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %q: %w", stream, err)
		}
		for _, s := range resp.Shards {
			info, err := toShardInfo(s)
			if err != nil {
				return nil, fmt.Errorf("list shards of %q: %w", stream, err)
			}
			out = append(out, info)
		}
		if resp.NextToken == nil || *resp.NextToken == "" {
			return out, nil
		}
		// With NextToken, Kinesis rejects a StreamName.
		in = &awskinesis.ListShardsInput{NextToken: resp.NextToken}
	}
}

func toShardInfo(s types.Shard) (shardInfo, error) {
	if s.ShardId == nil || s.HashKeyRange == nil || s.HashKeyRange.StartingHashKey == nil ||
		s.HashKeyRange.EndingHashKey == nil {
		return shardInfo{}, errors.New("shard without id or hash key range")
	}
	start, err := parseHashKey(*s.HashKeyRange.StartingHashKey)
	if err != nil {
		return shardInfo{}, fmt.Errorf("shard %s: %w", *s.ShardId, err)
	}
	end, err := parseHashKey(*s.HashKeyRange.EndingHashKey)
	if err != nil {
		return shardInfo{}, fmt.Errorf("shard %s: %w", *s.ShardId, err)
	}
	info := shardInfo{
		id:       *s.ShardId,
		start:    start,
		end:      end,
		startKey: *s.HashKeyRange.StartingHashKey,
		closed:   s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil,
	}
	for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
		if p != nil && *p != "" {
			info.parents = append(info.parents, *p)
		}
	}
	return info, nil
}
