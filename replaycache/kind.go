package replaycache

import "container/heap"

// otherKind names the kinds the table cannot tell apart: values too long to
// be a kind, new kinds when the table is full of held ones, and new kinds
// past a session's Options.MaxNewKindsPerSession.
const otherKind = "other"

// maxKindLen bounds the length of a kind's name, in bytes.
const maxKindLen = 64

// kindTable interns message kinds as small integers, so that a session's
// kinds are a short sorted []uint16 and coverage is cheap to compute. It
// holds at most max kinds, other included. When it is full, a new kind
// takes the slot of the least recently seen kind that no cached session
// holds, which is forgotten; a slot is reused only once nothing refers to
// it, so no session's kinds can name the old kind by mistake. Kind 0 is
// other and is never forgotten.
type kindTable struct {
	max     int
	names   []string
	index   map[string]uint16
	counts  []int64  // client messages of each kind in cached sessions
	holders []int32  // cached sessions holding each kind
	seen    []uint64 // when each kind was last seen, on clock
	clock   uint64   // counts the messages interned
	idle    idleKinds
}

// internResult says how intern found or made a kind.
type internResult uint8

const (
	kindKnown   internResult = iota // in the table already
	kindAdded                       // added in a free slot
	kindReused                      // added in a forgotten kind's slot
	kindFull                        // other: the table is full and every kind in it is held
	kindLimited                     // other: the caller may not add a new kind
	kindTooLong                     // other: longer than maxKindLen, or empty
)

func (t *kindTable) init(max int) {
	t.max = max
	t.index = make(map[string]uint16)
	t.add(otherKind)
}

func (t *kindTable) add(name string) uint16 {
	k := uint16(len(t.names))
	t.names = append(t.names, name)
	t.counts = append(t.counts, 0)
	t.holders = append(t.holders, 0)
	t.seen = append(t.seen, t.clock)
	t.idle.pos = append(t.idle.pos, -1)
	t.index[name] = k
	if k != 0 {
		heap.Push(&t.idle, idleKind{seen: t.clock, k: k})
	}
	return k
}

// intern returns the kind of name and how it was found, counting it as
// seen. A name not in the table is added if mayAdd is set and the table has
// a free slot or a forgotten one; else it is other. A kind intern returns
// is idle until hold is called for it.
func (t *kindTable) intern(name []byte, mayAdd bool) (uint16, internResult) {
	t.clock++
	if k, ok := t.index[string(name)]; ok {
		t.see(k)
		return k, kindKnown
	}
	switch {
	case len(name) == 0 || len(name) > maxKindLen:
		return t.other(kindTooLong)
	case !mayAdd:
		return t.other(kindLimited)
	case len(t.names) < t.max:
		return t.add(string(name)), kindAdded
	case t.idle.Len() == 0:
		return t.other(kindFull)
	}
	// Forget the least recently seen idle kind. Its slot is popped and
	// pushed back with the new name's time: it stays idle until held.
	k := heap.Pop(&t.idle).(idleKind).k
	delete(t.index, t.names[k])
	s := string(name)
	t.names[k] = s
	t.index[s] = k
	t.seen[k] = t.clock
	heap.Push(&t.idle, idleKind{seen: t.clock, k: k})
	return k, kindReused
}

func (t *kindTable) other(r internResult) (uint16, internResult) {
	t.see(0)
	return 0, r
}

func (t *kindTable) see(k uint16) {
	t.seen[k] = t.clock
	if i := t.idle.pos[k]; i >= 0 {
		t.idle.items[i].seen = t.clock
		heap.Fix(&t.idle, int(i))
	}
}

// hold counts one more cached session holding k.
func (t *kindTable) hold(k uint16) {
	t.holders[k]++
	if i := t.idle.pos[k]; i >= 0 {
		heap.Remove(&t.idle, int(i))
	}
}

// release counts one session fewer holding k, with n messages of it.
func (t *kindTable) release(k uint16, n int64) {
	t.counts[k] -= n
	t.holders[k]--
	if t.holders[k] == 0 && k != 0 {
		heap.Push(&t.idle, idleKind{seen: t.seen[k], k: k})
	}
}

// internString is intern for a string.
func (t *kindTable) internString(name string, mayAdd bool) (uint16, internResult) {
	if k, ok := t.index[name]; ok {
		t.clock++
		t.see(k)
		return k, kindKnown
	}
	return t.intern([]byte(name), mayAdd)
}

// lookup returns the kind of name if it is known.
func (t *kindTable) lookup(name string) (uint16, bool) {
	k, ok := t.index[name]
	return k, ok
}

// idleKinds is a min-heap of the kinds no cached session holds, the least
// recently seen first.
type idleKinds struct {
	items []idleKind
	pos   []int32 // index in items of each kind; -1 if it is not idle
}

type idleKind struct {
	seen uint64
	k    uint16
}

func (h *idleKinds) Len() int           { return len(h.items) }
func (h *idleKinds) Less(i, j int) bool { return h.items[i].seen < h.items[j].seen }
func (h *idleKinds) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i].k], h.pos[h.items[j].k] = int32(i), int32(j)
}
func (h *idleKinds) Push(x any) {
	it := x.(idleKind)
	h.pos[it.k] = int32(len(h.items))
	h.items = append(h.items, it)
}
func (h *idleKinds) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	h.pos[it.k] = -1
	return it
}
