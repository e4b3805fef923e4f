package kinesis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/time/rate"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// This file holds the reading of one shard: where a reader starts, its
// GetRecords loop and the delivery of its records to Next. consumer.go
// coordinates the readers.

// iteratorSpec says where a shard reader starts.
type iteratorSpec struct {
	typ       types.ShardIteratorType
	seq       string
	timestamp time.Time
	skipIndex int // with AT_SEQUENCE_NUMBER: skip user records 0..skipIndex of seq
}

func (c *Consumer) startSpec(shard string, fromParent bool) iteratorSpec {
	if p, ok := c.after[shard]; ok {
		if p.index < 0 {
			return iteratorSpec{typ: types.ShardIteratorTypeAfterSequenceNumber, seq: p.seq, skipIndex: -1}
		}
		return iteratorSpec{typ: types.ShardIteratorTypeAtSequenceNumber, seq: p.seq, skipIndex: p.index}
	}
	switch {
	case fromParent && (c.start.Latest || c.start.Time.IsZero()):
		return iteratorSpec{typ: types.ShardIteratorTypeTrimHorizon, skipIndex: -1}
	case c.start.Latest:
		return iteratorSpec{typ: types.ShardIteratorTypeLatest, skipIndex: -1}
	case !c.start.Time.IsZero():
		// Children of a parent read from Time also start at Time: if the
		// split came before Time, their first records are older than it.
		return iteratorSpec{typ: types.ShardIteratorTypeAtTimestamp, timestamp: c.start.Time, skipIndex: -1}
	}
	return iteratorSpec{typ: types.ShardIteratorTypeTrimHorizon, skipIndex: -1}
}

// shardReader reads one shard.
type shardReader struct {
	c           *Consumer
	shard       string
	spec        iteratorSpec
	knownClosed bool   // the listing said the shard is closed
	lastSeq     string // sequence number of the last record fully queued
	fails       int
}

// run reads the shard until its close (closed true), its end under
// StopAtEnd (closed false), a permanent error, or the consumer's end.
func (r *shardReader) run() (closed bool, err error) {
	c := r.c
	limiter := rate.NewLimiter(rate.Limit(c.opts.GetRecordsPerSecond), 1)
	iter, err := r.iterator()
	if errors.Is(err, errShardGone) {
		c.log.Warn("kinesis consumer: shard no longer exists", "shard", r.shard)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for {
		if err := limiter.Wait(c.ctx); err != nil {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
		out, err := c.client.GetRecords(ctx, &awskinesis.GetRecordsInput{
			ShardIterator: iter,
			Limit:         aws.Int32(c.opts.MaxRecordsPerCall),
		}, withoutSDKRetries)
		cancel()
		c.m.getRecords.Inc()
		if err != nil {
			if c.ctx.Err() != nil {
				return false, nil
			}
			reason := errorReason(err)
			c.m.errors("GetRecords", reason)
			switch {
			case reason == "expired_iterator":
				c.m.expired.Inc()
				if iter, err = r.iterator(); errors.Is(err, errShardGone) {
					return true, nil
				} else if err != nil {
					return false, err
				}
				continue
			case reason == "throttled":
				c.m.throttles.Inc()
			case reason == "not_found":
				// The shard expired (past retention) since it was listed.
				c.log.Warn("kinesis consumer: shard no longer exists", "shard", r.shard, "error", err)
				return true, nil
			case permanent(err):
				return false, fmt.Errorf("get records: %w", err)
			default:
				c.log.Warn("kinesis consumer: get records failed", "shard", r.shard, "error", err)
			}
			r.fails++
			if !sleep(c.ctx, backoff(c.opts.BackoffBase, c.opts.BackoffMax, r.fails)) {
				return false, nil
			}
			continue
		}
		r.fails = 0
		if out.MillisBehindLatest != nil {
			c.m.behind(r.shard, *out.MillisBehindLatest)
		}
		for _, rec := range out.Records {
			if !r.deliver(rec) {
				return false, nil
			}
		}
		if out.NextShardIterator == nil {
			return true, nil
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 {
			if c.start.StopAtEnd && !r.knownClosed && aws.ToInt64(out.MillisBehindLatest) == 0 {
				return false, nil
			}
			if !sleep(c.ctx, c.opts.IdleInterval) {
				return false, nil
			}
		}
	}
}

// deliver deaggregates one Kinesis record and queues its user records. It
// returns false if the consumer is closing.
func (r *shardReader) deliver(rec types.Record) bool {
	c := r.c
	seq := aws.ToString(rec.SequenceNumber)
	c.m.recordsRead.Inc()
	skip := -1
	if r.spec.skipIndex >= 0 && r.lastSeq == "" && seq == r.spec.seq {
		skip = r.spec.skipIndex
	}
	users, err := kpl.Deaggregate(rec.Data)
	if err != nil {
		c.m.corrupt.Inc()
		c.log.Warn("kinesis consumer skipped a corrupt aggregated record",
			"shard", r.shard, "sequence_number", seq, "bytes", len(rec.Data), "error", err)
		r.lastSeq = seq
		return true
	}
	aggregated := kpl.IsAggregated(rec.Data)
	var t time.Time
	if rec.ApproximateArrivalTimestamp != nil {
		t = *rec.ApproximateArrivalTimestamp
	}
	for i, u := range users {
		if i <= skip {
			continue
		}
		key := u.PartitionKey
		if !aggregated {
			key = aws.ToString(rec.PartitionKey)
		}
		out := stream.Record{
			Partition: r.shard,
			Position:  formatPosition(seq, i, aggregated),
			Key:       key,
			Data:      u.Data,
			Time:      t,
		}
		select {
		case c.out <- out:
			c.m.userRecordsRead.Inc()
		case <-c.ctx.Done():
			return false
		}
	}
	r.lastSeq = seq
	return true
}

// iterator gets a shard iterator: after the last record read, or where the
// reader was told to start. Throttled or failing calls are retried with
// backoff until the consumer closes; permanent errors are returned.
func (r *shardReader) iterator() (*string, error) {
	c := r.c
	in := &awskinesis.GetShardIteratorInput{
		StreamName: aws.String(c.stream),
		ShardId:    aws.String(r.shard),
	}
	if r.lastSeq != "" {
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(r.lastSeq)
	} else {
		in.ShardIteratorType = r.spec.typ
		switch r.spec.typ {
		case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
			in.StartingSequenceNumber = aws.String(r.spec.seq)
		case types.ShardIteratorTypeAtTimestamp:
			in.Timestamp = aws.Time(r.spec.timestamp)
		}
	}
	for fails := 1; ; fails++ {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
		out, err := c.client.GetShardIterator(ctx, in, withoutSDKRetries)
		cancel()
		if err == nil {
			return out.ShardIterator, nil
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		reason := errorReason(err)
		c.m.errors("GetShardIterator", reason)
		if reason == "not_found" {
			return nil, errShardGone
		}
		if permanent(err) {
			return nil, fmt.Errorf("get shard iterator %s: %w", in.ShardIteratorType, err)
		}
		if reason == "throttled" {
			c.m.set.GetOrCreateCounter(`preheat_kinesis_throttles_total{op="GetShardIterator"}`).Inc()
		} else {
			c.log.Warn("kinesis consumer: get shard iterator failed", "shard", r.shard, "error", err)
		}
		if !sleep(c.ctx, backoff(c.opts.BackoffBase, c.opts.BackoffMax, fails)) {
			return nil, nil
		}
	}
}
