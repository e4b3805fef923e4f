package kinesis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// refreshLoop lists the shards at start, every ShardRefreshInterval, and
// when send detects resharding.
func (p *Producer) refreshLoop() {
	defer p.wg.Done()
	retry := p.opts.BackoffBase
	for {
		err := p.refresh()
		wait := p.opts.ShardRefreshInterval
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("kinesis producer could not list shards", "error", err)
			wait = min(retry, p.opts.ShardRefreshInterval)
			retry = min(2*retry, p.opts.BackoffMax)
		} else {
			retry = p.opts.BackoffBase
		}
		t := time.NewTimer(wait)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-p.relist:
			t.Stop()
			// Resharding can show up on many records at once; list at
			// most once a second (or ShardRefreshInterval) for it.
			gap := min(shardRefreshOnMiss, p.opts.ShardRefreshInterval)
			if !sleep(p.ctx, time.Until(p.lastListed().Add(gap))) {
				return
			}
		}
	}
}

func (p *Producer) lastListed() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastList
}

func (p *Producer) refresh() error {
	p.mu.Lock()
	p.lastList = time.Now()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.RequestTimeout)
	defer cancel()
	p.m.shardListings.Inc()
	shards, err := listShards(ctx, p.client, p.stream)
	if err != nil {
		p.m.shardListingErrors.Inc()
		return err
	}
	m := newShardMap(shards)
	if len(m.open) == 0 {
		p.m.shardListingErrors.Inc()
		return fmt.Errorf("list shards of %q: no open shards", p.stream)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shards = m
	p.parents = make(map[string][]string, len(shards))
	for _, s := range shards {
		p.parents[s.id] = s.parents
	}
	// Records waiting for shards that are no longer open (or grouped by key
	// before the first listing) are grouped again by the new map, ahead of
	// any record put from now on. Only an aggregate already in flight keeps
	// its lane; the new shards' lanes wait for it.
	for id, b := range p.buckets {
		if m.byID(id) == nil {
			p.sealLocked(id, b)
		}
	}
	var stale []string
	for id, l := range p.lanes {
		l.holdUntil = time.Time{}
		if m.byID(id) == nil {
			stale = append(stale, id)
		}
	}
	slices.SortFunc(stale, func(a, b string) int { // key lanes first: they are older
		return cmp.Compare(boolInt(!isKeyLane(a)), boolInt(!isKeyLane(b)))
	})
	for _, id := range stale {
		l := p.lanes[id]
		keep := 0
		if l.inFlight {
			keep = 1
		}
		old := l.queue[keep:]
		l.queue = l.queue[:keep:keep]
		for _, a := range old {
			p.regroupLocked(a)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// regroupLocked splits an aggregate that was built for a stale shard map
// into aggregates for the current one, keeping the order of its records at
// the end of each new lane.
func (p *Producer) regroupLocked(a *aggregate) {
	users, err := kpl.Deaggregate(a.data)
	if err != nil {
		// Cannot happen: the producer encoded it. Send it as it is.
		p.log.Error("kinesis producer could not regroup its own aggregate", "error", err)
		l := p.laneLocked(a.lane)
		l.queue = append(l.queue, a)
		return
	}
	if !kpl.IsAggregated(a.data) {
		users[0].PartitionKey = a.key
	}
	tmp := make(map[string]*bucket)
	var order []string
	seal := func(laneID string, b *bucket) {
		p.sealBucketLocked(laneID, b, a.sealed)
		l := p.lanes[laneID]
		l.queue[len(l.queue)-1].unknown = a.unknown
	}
	for i, u := range users {
		laneID, ehk := p.route(u.PartitionKey)
		b, seen := tmp[laneID]
		if b != nil && b.agg.SizeWith(u.PartitionKey, "", len(u.Data))+len(b.key) > maxRecordBytes {
			seal(laneID, b)
			b = nil
		}
		if b == nil {
			b = &bucket{key: u.PartitionKey, ehk: ehk, epoch: a.epoch}
			tmp[laneID] = b
			if !seen {
				order = append(order, laneID)
			}
		}
		b.agg.Add(u.PartitionKey, "", u.Data)
		b.recs = append(b.recs, a.recs[i])
		b.bytes += a.recs[i].weight
	}
	for _, id := range order {
		seal(id, tmp[id])
	}
}

// byID returns the open shard with the given id, or nil.
func (m *shardMap) byID(id string) *shardInfo {
	for i := range m.open {
		if m.open[i].id == id {
			return &m.open[i]
		}
	}
	return nil
}
