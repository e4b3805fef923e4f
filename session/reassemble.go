package session

import (
	"cmp"
	"slices"
)

// Reassembler puts sessions back together from batches read off a stream,
// in whatever order and with whatever duplicates the stream delivered them:
// each session's events by sequence number, an event delivered more than
// once (a retried batch) kept once, as last delivered. It keeps every event
// it is given, so it suits reading a stream back whole, in a test or an
// experiment, not a long-running reader (package replaycache is that). The
// zero Reassembler is ready to use; it is not safe for concurrent use.
type Reassembler struct {
	bySeq map[ID]map[uint64]Event
}

// AddBatch decodes one encoded batch (see DecodeBatch) and adds its events.
// A batch that does not decode adds nothing; the error wraps ErrCorrupt.
func (r *Reassembler) AddBatch(data []byte) error {
	evs, err := DecodeBatch(data, nil)
	if err != nil {
		return err
	}
	r.Add(evs...)
	return nil
}

// Add adds events, of any sessions.
func (r *Reassembler) Add(evs ...Event) {
	if r.bySeq == nil {
		r.bySeq = make(map[ID]map[uint64]Event)
	}
	for _, e := range evs {
		s := r.bySeq[e.Session]
		if s == nil {
			s = make(map[uint64]Event)
			r.bySeq[e.Session] = s
		}
		s[e.Seq] = e
	}
}

// Sessions returns each session's events, in sequence order. A session with
// events missing has gaps in its sequence numbers: see Complete.
func (r *Reassembler) Sessions() map[ID][]Event {
	out := make(map[ID][]Event, len(r.bySeq))
	for id, bySeq := range r.bySeq {
		evs := make([]Event, 0, len(bySeq))
		for _, e := range bySeq {
			evs = append(evs, e)
		}
		slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
		out[id] = evs
	}
	return out
}

// Complete reports whether evs, one session's events in sequence order
// without duplicates (as Reassembler.Sessions returns them), are the whole
// session: its open event first, every sequence number from 0 without a
// gap, and a close event last.
func Complete(evs []Event) bool {
	for i, e := range evs {
		if e.Seq != uint64(i) {
			return false
		}
	}
	return len(evs) >= 2 && evs[0].Kind == KindOpen && evs[len(evs)-1].Kind == KindClose
}
