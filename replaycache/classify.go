package replaycache

import (
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// convSize estimates the memory of a session's conversation: a profile's
// judge keeps a few counters and flags, never the messages. A Socket.IO
// one keeps a copy of the last binary packet's kind for the attachments
// still due, which entry.convKind accounts for. A conversation is held only
// while its session is live.
const convSize = 256

// classify finds the kind of e's client message ev, which is e's next event
// in sequence order, and counts it. Each client message is judged once, in
// order: a conversation may tie a message to an earlier one. Control
// messages and replies have no kind.
func (c *Cache) classify(e *entry, ev *session.Event) {
	if c.opts.KindByRoute {
		k, r := c.kinds.internString(routePath(e.route), e.newKinds < c.opts.MaxNewKindsPerSession)
		c.counted(e, r)
		c.addKind(e, k)
		return
	}
	if e.conv == nil {
		p := c.profile
		if p == nil {
			p = c.protocols.Detect(e.subprotocol, e.route, ev.Payload)
		}
		e.conv, e.subprotocol = p.NewConversation(), ""
	}
	j := e.conv.Client(ev.Payload, ev.Opcode == session.Binary)
	e.convKind = len(j.Kind)
	if j.Role != protocol.Operation || len(j.Kind) == 0 {
		return
	}
	c.addKind(e, c.internKind(e, j.Kind))
}

// internKind interns name as the kind of a message of e, counting what
// the table cannot tell apart: e may add only MaxNewKindsPerSession kinds.
func (c *Cache) internKind(e *entry, name []byte) uint16 {
	k, r := c.kinds.intern(name, e.newKinds < c.opts.MaxNewKindsPerSession)
	c.counted(e, r)
	return k
}

func (c *Cache) counted(e *entry, r internResult) {
	switch r {
	case kindAdded:
		e.newKinds++
	case kindReused:
		e.newKinds++
		c.m.kindsForgotten.Inc()
	case kindFull:
		c.m.otherFull.Inc()
	case kindLimited:
		c.m.otherLimited.Inc()
	case kindTooLong:
		c.m.otherLong.Inc()
	}
}

// addKind counts one client message of kind k in e.
func (c *Cache) addKind(e *entry, k uint16) {
	c.kinds.counts[k]++
	i, found := searchKinds(e.kinds, k)
	if found {
		e.kindCounts[i]++
		return
	}
	c.kinds.hold(k)
	// Copy on write: Select reads kinds without the lock.
	kinds := make([]uint16, len(e.kinds)+1)
	copy(kinds, e.kinds[:i])
	kinds[i] = k
	copy(kinds[i+1:], e.kinds[i:])
	e.kinds = kinds
	e.kindCounts = append(e.kindCounts, 0)
	copy(e.kindCounts[i+1:], e.kindCounts[i:])
	e.kindCounts[i] = 1
}

func searchKinds(s []uint16, k uint16) (int, bool) {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s) && s[lo] == k
}

// releaseKinds takes an evicted e's kinds out of the table's counts; kinds
// no cached session holds any more may then be forgotten.
func (c *Cache) releaseKinds(e *entry) {
	for i, k := range e.kinds {
		c.kinds.release(k, int64(e.kindCounts[i]))
	}
}
