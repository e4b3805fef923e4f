package kinesis

import (
	"context"
	"fmt"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/preheatdev/preheat/stream"
)

// This file holds the Producer's sending: the loop that seals lingering
// buckets and picks what may be sent within the Kinesis limits, and the
// PutRecords calls with their outcomes and retries. producer.go queues and
// aggregates the records.

// run seals lingering buckets and starts PutRecords calls until Close.
func (p *Producer) run() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		next := now.Add(time.Hour)
		for id, b := range p.buckets {
			if deadline := b.first.Add(p.opts.Linger); !deadline.After(now) {
				p.sealLocked(id, b)
			} else if deadline.Before(next) {
				next = deadline
			}
		}
		next = minTime(next, p.expireLocked(now))
		var batches [][]*aggregate
		for p.inFlight < p.opts.MaxInFlight {
			batch, ready := p.collectLocked(now)
			if ready.Before(next) {
				next = ready
			}
			if len(batch) == 0 {
				break
			}
			p.inFlight++
			p.inFlightBytes += batchBytes(batch)
			batches = append(batches, batch)
		}
		report := p.reportsDueLocked()
		p.mu.Unlock()
		if report {
			p.wakeReporter()
		}
		for _, b := range batches {
			p.wg.Add(1)
			go p.send(b)
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// collectLocked picks the head aggregate of each lane that may send now,
// up to the PutRecords limits, and returns when the next lane that could not
// will be ready.
func (p *Producer) collectLocked(now time.Time) ([]*aggregate, time.Time) {
	var batch []*aggregate
	size := 0
	next := now.Add(time.Hour)
	// Shard lanes wait until the lanes used before the first shard listing
	// are drained, so that a key's early records land first.
	keyLanesBusy := false
	for id, l := range p.lanes {
		if isKeyLane(id) && (l.inFlight || len(l.queue) > 0) {
			keyLanesBusy = true
			break
		}
	}
	for id, l := range p.lanes {
		if len(batch) == maxPutRecords {
			break
		}
		if l.inFlight {
			continue
		}
		if l.holdUntil.After(now) {
			next = minTime(next, l.holdUntil)
			continue
		}
		if len(l.queue) == 0 {
			if isKeyLane(id) || p.shards != nil && p.shards.byID(id) == nil {
				delete(p.lanes, id) // not an open shard: its limiter state is moot
			}
			continue
		}
		if (keyLanesBusy && !isKeyLane(id)) || p.blockedByParentLocked(id) {
			continue
		}
		a := l.queue[0]
		if a.notBefore.After(now) {
			next = minTime(next, a.notBefore)
			continue
		}
		n := len(a.data) + len(a.key)
		if size+n > maxPutBytes {
			continue
		}
		if p.inFlightBytes+int64(size+n) > p.opts.MaxInFlightBytes && (len(batch) > 0 || p.inFlight > 0) {
			continue
		}
		rr := l.records.ReserveN(now, 1)
		br := l.bytes.ReserveN(now, n)
		if d := max(rr.DelayFrom(now), br.DelayFrom(now)); d > 0 {
			rr.CancelAt(now)
			br.CancelAt(now)
			next = minTime(next, now.Add(d))
			continue
		}
		l.inFlight = true
		size += n
		batch = append(batch, a)
	}
	return batch, next
}

// blockedByParentLocked reports whether a lane must wait because a parent
// shard's lane still has records to send, which must land first.
func (p *Producer) blockedByParentLocked(id string) bool {
	for _, parent := range p.parents[id] {
		if l := p.lanes[parent]; l != nil && (l.inFlight || len(l.queue) > 0) {
			return true
		}
		if p.buckets[parent] != nil {
			return true
		}
	}
	return false
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// send makes one PutRecords call and files each aggregate's outcome.
func (p *Producer) send(batch []*aggregate) {
	defer p.wg.Done()
	in := &awskinesis.PutRecordsInput{
		StreamName: aws.String(p.stream),
		Records:    make([]types.PutRecordsRequestEntry, len(batch)),
	}
	for i, a := range batch {
		in.Records[i] = types.PutRecordsRequestEntry{
			Data:            a.data,
			PartitionKey:    aws.String(a.key),
			ExplicitHashKey: a.ehk,
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.RequestTimeout)
	// A request written whole may have been carried out, whatever error
	// follows; one that was not, was not.
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { written.Store(i.Err == nil) },
	})
	start := time.Now()
	out, err := p.client.PutRecords(ctx, in, withoutSDKRetries)
	cancel()
	p.m.putLatency.UpdateDuration(start)
	p.m.putCalls.Inc()
	if err == nil && len(out.Records) != len(batch) {
		err = fmt.Errorf("put records: %d results for %d records", len(out.Records), len(batch))
	} else if err != nil {
		err = fmt.Errorf("put records: %w", err)
	}

	now := time.Now()
	relist := false
	var lost map[string]bool // keys of the records given up
	p.mu.Lock()
	p.inFlight--
	p.inFlightBytes -= batchBytes(batch)
	closing := p.ctx.Err() != nil
	for i, a := range batch {
		l := p.lanes[a.lane]
		l.inFlight = false
		reason, detail := "", ""
		if err != nil {
			reason, detail = errorReason(err), err.Error()
			a.unknown = a.unknown || mayHaveLanded(err, written.Load())
		} else if e := out.Records[i]; e.ErrorCode != nil {
			reason, detail = codeReason(*e.ErrorCode), *e.ErrorCode+": "+aws.ToString(e.ErrorMessage)
		} else if e.ShardId != nil && p.shards != nil && a.ehk != nil && *e.ShardId != a.lane {
			// Landed in another shard than predicted: resharded. Hold the
			// lane until the shards are listed again, so that its other
			// records are regrouped instead of landing in the wrong shard.
			relist = true
			l.holdUntil = now.Add(holdForListing)
		}
		if reason == "" {
			l.queue = l.queue[1:]
			p.m.recordsPut.Inc()
			p.m.userRecordsPut.Add(len(a.recs))
			p.m.userPerRecord.Update(float64(len(a.recs)))
			p.finishLocked(a, stream.Outcome{Fate: stream.Delivered})
			continue
		}
		if closing {
			continue // Close gives up what is left
		}
		a.attempts++
		backoff := p.backoffLocked(a.attempts)
		if now.Add(backoff).After(a.sealed.Add(p.opts.DeliveryTimeout)) {
			l.queue = l.queue[1:]
			p.finishLocked(a, a.givenUp(reason))
			lost = a.addKeys(lost)
			p.log.Warn("kinesis producer gave up records after its delivery timeout",
				"lane", a.lane, "user_records", len(a.recs), "attempts", a.attempts,
				"timeout", p.opts.DeliveryTimeout, "reason", reason, "maybe_stored", a.unknown, "error", detail)
			continue
		}
		p.m.retries(reason, 1)
		a.reason = reason
		a.notBefore = now.Add(backoff)
	}
	p.giveUpKeysLocked(lost)
	report := p.reportsDueLocked()
	p.mu.Unlock()
	if report {
		p.wakeReporter()
	}
	if relist {
		select {
		case p.relist <- struct{}{}:
		default:
		}
	}
	p.signal()
}

func batchBytes(batch []*aggregate) int64 {
	n := 0
	for _, a := range batch {
		n += len(a.data) + len(a.key)
	}
	return int64(n)
}

// backoffLocked returns the full-jitter backoff before the n-th retry.
func (p *Producer) backoffLocked(n int) time.Duration {
	ceil := backoffCeiling(p.opts.BackoffBase, p.opts.BackoffMax, n)
	return time.Duration(p.rng.Int64N(int64(ceil) + 1))
}
