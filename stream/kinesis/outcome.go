package kinesis

import (
	"errors"
	"slices"
	"time"

	"github.com/aws/smithy-go"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// This file holds what the producer gives up, and how it reports the fate
// of each record: delivered, lost or unknown.

// report is one fate to tell a PutTracked caller.
type report struct {
	done func(stream.Outcome)
	out  stream.Outcome
}

// fileReportsLocked queues the reports of recs for flushReports, which
// runs them once mu is released: a done function may take its caller's
// locks, and a caller may hold those around Put.
func (p *Producer) fileReportsLocked(recs []userRecord, out stream.Outcome) {
	for _, r := range recs {
		if r.done != nil {
			p.reports = append(p.reports, report{r.done, out})
		}
	}
}

// giveUpKeysLocked gives up every record of keys the producer holds and is
// not sending (see dropKeysLocked), and notes the keys for flushReports,
// which does so again once their reports have run: a caller learns of a
// loss through a report and stops putting the key, so after the reports
// no later record of the key can arrive, but some may have meanwhile.
func (p *Producer) giveUpKeysLocked(keys map[string]bool) int64 {
	if len(keys) == 0 {
		return 0
	}
	if p.lostKeys == nil {
		p.lostKeys = make(map[string]bool)
	}
	for k := range keys {
		p.lostKeys[k] = true
	}
	return p.dropKeysLocked(keys)
}

// report runs the reports filed by the goroutines that send and seal, so
// that a done function that waits never holds up sending. It runs until
// Close.
func (p *Producer) report() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.reportc:
		}
		p.flushReports()
	}
}

// reportsDueLocked reports whether flushReports has work.
func (p *Producer) reportsDueLocked() bool { return len(p.reports) > 0 || len(p.lostKeys) > 0 }

func (p *Producer) wakeReporter() {
	select {
	case p.reportc <- struct{}{}:
	default:
	}
}

// flushReports calls the done functions filed so far, in the order filed,
// and then gives up the records of the keys given up that were put while
// they ran, and reports those, until nothing is left to report.
func (p *Producer) flushReports() {
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	for {
		p.mu.Lock()
		rs, keys := p.reports, p.lostKeys
		p.reports, p.lostKeys = nil, nil
		p.mu.Unlock()
		if len(rs) == 0 && len(keys) == 0 {
			return
		}
		for _, r := range rs {
			r.done(r.out)
		}
		if len(keys) > 0 {
			p.mu.Lock()
			p.dropKeysLocked(keys)
			p.mu.Unlock()
		}
	}
}

// givenUp is the outcome of giving a up for reason: unknown when one of
// its attempts may have reached Kinesis, lost otherwise.
func (a *aggregate) givenUp(reason string) stream.Outcome {
	if a.unknown {
		return stream.Outcome{Fate: stream.Unknown, Reason: reason}
	}
	return stream.Outcome{Fate: stream.Lost, Reason: reason}
}

// addKeys adds the keys of a's user records to set, making it if nil.
func (a *aggregate) addKeys(set map[string]bool) map[string]bool {
	if set == nil {
		set = make(map[string]bool)
	}
	for _, r := range a.recs {
		set[r.key] = true
	}
	return set
}

// dropKeysLocked gives up every record of the given keys that the producer
// holds and is not sending (a lane's head in flight keeps its records: they
// are older than the ones given up), reporting each with reason "key_lost":
// lost, or unknown when an earlier attempt to send it may have stored it.
// It returns the buffer bytes freed.
func (p *Producer) dropKeysLocked(keys map[string]bool) int64 {
	for id, b := range p.buckets {
		for _, r := range b.recs {
			if keys[r.key] {
				p.sealLocked(id, b)
				break
			}
		}
	}
	var freed int64
	for _, l := range p.lanes {
		first := 0
		if l.inFlight {
			first = 1
		}
		kept := l.queue[:first]
		for _, a := range l.queue[first:] {
			freed += p.dropFromLocked(a, keys)
			if len(a.recs) > 0 {
				kept = append(kept, a)
			}
		}
		clear(l.queue[len(kept):])
		l.queue = kept
	}
	return freed
}

// dropFromLocked removes the user records of keys from a, re-encoding what
// is left, and finishes them as lost. It returns the buffer bytes freed.
func (p *Producer) dropFromLocked(a *aggregate, keys map[string]bool) int64 {
	n := 0
	for _, r := range a.recs {
		if keys[r.key] {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	// An earlier attempt to send a may have stored its records: so may
	// it have the ones removed.
	gone := &aggregate{epoch: a.epoch, recs: make([]userRecord, 0, n), unknown: a.unknown}
	if n == len(a.recs) {
		gone.recs, gone.bytes = a.recs, a.bytes
		a.recs, a.bytes, a.data = nil, 0, nil
		p.finishLocked(gone, gone.givenUp("key_lost"))
		return gone.bytes
	}
	users, err := kpl.Deaggregate(a.data)
	if err != nil || len(users) != len(a.recs) {
		// Cannot happen: the producer encoded it. Leave it whole.
		p.log.Error("kinesis producer could not split its own aggregate", "error", err)
		return 0
	}
	var agg kpl.Aggregator
	kept := a.recs[:0:0]
	for i, r := range a.recs {
		if keys[r.key] {
			gone.recs = append(gone.recs, r)
			gone.bytes += r.weight
			continue
		}
		agg.Add(r.key, "", users[i].Data)
		kept = append(kept, r)
	}
	a.data = encodeAggregate(&agg)
	a.recs = kept
	a.key = kept[0].key
	a.bytes -= gone.bytes
	p.finishLocked(gone, gone.givenUp("key_lost"))
	return gone.bytes
}

// expireLocked gives up, lane by lane in order, the records not in flight
// whose delivery timeout has passed, with the reason their last attempt
// failed ("expired" when they were never sent: their lane was held up),
// and the other records of their keys. It returns when the next one will
// expire. (A lane's records are in the order they were sealed, but for
// those regrouped after resharding, which expire once they reach the
// front.)
func (p *Producer) expireLocked(now time.Time) time.Time {
	next := now.Add(time.Hour)
	var lost map[string]bool
	for _, l := range p.lanes {
		first := 0
		if l.inFlight {
			first = 1
		}
		end := first
		for ; end < len(l.queue); end++ {
			a := l.queue[end]
			deadline := a.sealed.Add(p.opts.DeliveryTimeout)
			if deadline.After(now) {
				next = minTime(next, deadline)
				break
			}
			reason := a.reason
			if reason == "" {
				reason = "expired"
			}
			p.finishLocked(a, a.givenUp(reason))
			lost = a.addKeys(lost)
		}
		l.queue = slices.Delete(l.queue, first, end)
	}
	p.giveUpKeysLocked(lost)
	return next
}

// ShedOldest gives up the oldest records the producer holds and is not
// sending, whole Kinesis records at a time, until at least n bytes of its
// buffer are free again or nothing is left but records in flight. Each is
// reported with reason "shed" (lost, or unknown when an earlier attempt to
// send it may have stored it), and with them go the other records of their
// keys (reason "key_lost"). It returns the buffer bytes freed. A caller that
// bounds its memory calls it to make room for new records instead of
// waiting for old ones that cannot be delivered yet.
func (p *Producer) ShedOldest(n int64) int64 {
	p.mu.Lock()
	var freed int64
	var lost map[string]bool
	for freed < n {
		var oldest *lane
		first := 0
		for _, l := range p.lanes {
			i := 0
			if l.inFlight {
				i = 1
			}
			if len(l.queue) > i && (oldest == nil || l.queue[i].sealed.Before(oldest.queue[first].sealed)) {
				oldest, first = l, i
			}
		}
		if oldest == nil {
			if len(p.buckets) == 0 {
				break
			}
			for id, b := range p.buckets {
				p.sealLocked(id, b)
			}
			continue
		}
		a := oldest.queue[first]
		oldest.queue = append(oldest.queue[:first], oldest.queue[first+1:]...)
		freed += a.bytes
		lost = a.addKeys(lost)
		p.finishLocked(a, a.givenUp("shed"))
	}
	freed += p.giveUpKeysLocked(lost)
	p.mu.Unlock()
	p.flushReports()
	if freed > 0 {
		p.signal()
	}
	return freed
}

// mayHaveLanded reports whether a PutRecords call that failed with err may
// still have been carried out by Kinesis: its request was written whole
// (written), and Kinesis did not answer that it refused it. A timeout, or
// a connection broken after the request went out, may have; a refused
// connection, a request cut short, or an error Kinesis answered with
// (throttling, validation) may not. A server error (500) may have.
func mayHaveLanded(err error, written bool) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		return errorReason(err) == "internal"
	}
	return written
}
