package capture

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/preheatdev/preheat/session"
)

// handoff moves the Tap's capture work (parsing, inflating, redacting and
// batching, the work Recording.Client and Server do) off the goroutines
// that forward bytes. An event loop forwards many connections, so capture
// running on it would make every connection on the loop wait for the
// slowest session's capture: one client sending compressed messages that
// inflate to a lot would delay everyone else's messages.
//
// The goroutine forwarding a session copies each chunk it has written on
// into the session's feed, a bounded queue in pooled blocks, and goes on;
// that is all it does for capture, and it never waits: it takes no lock a
// capture worker holds while capturing. A few worker goroutines take
// sessions with queued chunks in turn and feed them to their recordings, in
// the order the chunks were forwarded. A session whose queue reaches its
// bound (Tap's CaptureBacklogBytes), or whose next block would take the
// recorder past its budget, has its capture cut there and counted (reason
// "backlog" or "budget"): its queued chunks are dropped, its recording ends
// with the tap's close event, and its connection goes on, unrecorded.
//
// A worker that finds nothing to do polls for work every handoffPoll while
// work keeps coming, rather than being woken for every chunk: on a machine
// where waking a thread is dear, a wake-up per message would cost more than
// capturing it. Only a parked worker is kicked for new work. Capture lags
// forwarding by up to handoffPoll, so a session's queue wakes a worker at
// once when it passes a quarter of its bound. A worker captures one session
// for at most handoffTurn before the next session with work has its turn,
// and yields its processor after handoffQuantum, so that a woken loop
// waiting for one gets it soon.
//
// Workers run only while sessions are being captured; each session holds
// the tap's wait group until its end has been recorded, so that
// Tap.Shutdown returns with every session's capture done.
type handoff struct {
	wg      *sync.WaitGroup
	workers int   // at most this many worker goroutines
	backlog int64 // bytes of blocks a session's queue may hold
	// yield lets other goroutines run between a worker's quanta: the
	// forwarding loops must never wait long for a processor.
	yield func()
	// hook, when set (by tests), is called before each chunk is fed.
	hook func(*Recording)

	queued atomic.Int64 // bytes of blocks held by every feed

	mu      sync.Mutex
	runq    []*feed // sessions with queued work, in turn
	live    int     // feeds whose end has not been recorded
	running int     // worker goroutines
	polling int     // workers waiting with a timer
	parked  int     // workers waiting for a kick only
	kick    chan struct{}
}

const (
	// handoffPoll is how often a worker with nothing to do looks for work
	// while capture is busy (see handoff): 50 wake-ups a second at most
	// however many messages pass, while a session's queue holds 20 ms of
	// its traffic.
	handoffPoll = 20 * time.Millisecond
	// handoffPolls is how many polls in a row that find nothing a worker
	// makes before it parks until kicked: polling pays while work keeps
	// coming, and a trickle of messages is cheaper served by a kick each.
	handoffPolls = 2
	// handoffTurn is how long a worker captures one session before it
	// lets the next session with queued work have a turn.
	handoffTurn = 200 * time.Microsecond
	// handoffQuantum is how long a worker captures before it yields its
	// processor. When capture work holds every processor (a worker and an
	// exporter on two), a loop woken by the network waits for one: this
	// long at most, plus the item being captured, rather than the
	// runtime's 10 ms preemption. Yielding with nothing waiting costs
	// little, and a worker keeping up with ordinary traffic finishes its
	// work sooner than this.
	handoffQuantum = 200 * time.Microsecond
)

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// newHandoff returns a hand-off with up to workers capture goroutines that
// wg counts, and queues of at most backlog bytes a session.
func newHandoff(workers int, backlog int64, wg *sync.WaitGroup) *handoff {
	h := &handoff{
		wg:      wg,
		workers: max(workers, 1),
		backlog: backlog,
		yield:   runtime.Gosched,
		kick:    make(chan struct{}, max(workers, 1)),
	}
	if runtime.GOMAXPROCS(0) == 1 {
		// With one processor the event loops park on the runtime's
		// poller, which a processor polls only when it has nothing else
		// to run (or the monitor thread does, every 10 ms): a worker
		// that yields with Gosched would run on at once. A short sleep
		// leaves the processor idle, and the loops run.
		h.yield = func() { time.Sleep(10 * time.Microsecond) }
	}
	return h
}

// feed is one session's queue of capture work. The goroutine(s)
// forwarding the session append to it; one worker at a time takes from it.
type feed struct {
	h   *handoff
	rec *Recording

	mu        sync.Mutex
	items     []item // items[head:] are queued
	head      int
	tail      *block // the block chunks are copied into
	held      int64  // bytes the queue holds: its blocks, and its items past freeItems
	scheduled bool   // in h.runq, or a worker is taking from it
	cut       string // why capture was cut here; nothing more is queued
	stopping  bool   // the recording stopped: its parsers are released
	ended     bool   // the end is queued; nothing follows it
}

// item is one piece of capture work.
type item struct {
	kind itemKind
	dir  direction
	side session.Side // itemEnd
	at   time.Time
	b    []byte // itemData: the chunk, in blk
	blk  *block
}

type itemKind uint8

// itemBytes is what one queued item costs.
const itemBytes = int64(unsafe.Sizeof(item{}))

// freeItems is how many items a feed may hold without counting them against
// its bound and the budget, as the feed itself is not: a session's fixed
// cost.
const freeItems = 4

const (
	itemData itemKind = iota // feed b to direction dir
	itemMark                 // Recording.mark(dir, at)
	itemStop                 // the recording stopped: release its parsers
	itemCut                  // record the cut that abandoned the recording (feed.cut)
	itemEnd                  // Recording.End(side)
)

// block holds copies of chunks: a pooled buffer, shared by the items in it
// and, while chunks are still copied into it, the feed's tail.
type block struct {
	buf  []byte
	used int
	refs int // items in it, plus one while it is the tail
}

const (
	smallBlock = 4 << 10
	largeBlock = pumpBufferBytes // the largest chunk the tap reads
)

var (
	smallBlocks = sync.Pool{New: func() any { return &block{buf: make([]byte, smallBlock)} }}
	largeBlocks = sync.Pool{New: func() any { return &block{buf: make([]byte, largeBlock)} }}
)

// begin returns the feed of rec, which counts as live (and in the tap's
// wait group) until its end has been recorded.
func (h *handoff) begin(rec *Recording) *feed {
	h.mu.Lock()
	h.live++
	h.mu.Unlock()
	h.wg.Add(1)
	return &feed{h: h, rec: rec}
}

// mark queues Recording.mark: a chunk of direction dir, read at the time
// at, is being forwarded and is queued later. The forwarding goroutine
// calls it when a chunk's write does not complete at once (splice: before
// every write), so that events of the other direction forwarded meanwhile
// keep their place behind it.
func (f *feed) mark(dir direction, at time.Time) {
	f.mu.Lock()
	if f.cut == "" && !f.ended && !f.stopping && f.room() {
		f.items = append(f.items, item{kind: itemMark, dir: dir, at: at})
	}
	f.mu.Unlock()
}

// see queues a copy of b, a chunk of direction dir read at the time at and
// written on, for capture. It never blocks on capture; past the session's
// bound or the recorder's budget it cuts the session's capture instead.
func (f *feed) see(dir direction, b []byte, at time.Time) {
	if len(b) == 0 {
		return
	}
	f.mu.Lock()
	if f.cut != "" || f.ended || f.stopping {
		f.mu.Unlock()
		return
	}
	if !f.rec.recording() {
		// Recording stopped (a limit, a parse error): copy nothing more,
		// and let the worker release the parsers.
		f.stopping = true
		f.push(item{kind: itemStop})
		f.mu.Unlock()
		return
	}
	urgent := f.held >= f.h.backlog/4
	for len(b) > 0 {
		blk := f.tail
		if blk == nil || blk.used == len(blk.buf) || (len(b) > len(blk.buf)-blk.used && len(b) <= largeBlock) {
			// A chunk goes whole into one block when it can: the parser
			// is fed it in one piece.
			if blk = f.newBlock(len(b)); blk == nil {
				f.mu.Unlock()
				return // cut
			}
		}
		if !f.room() {
			f.mu.Unlock()
			return // cut
		}
		n := copy(blk.buf[blk.used:], b)
		blk.refs++
		f.items = append(f.items, item{kind: itemData, dir: dir, at: at, b: blk.buf[blk.used : blk.used+n : blk.used+n], blk: blk})
		blk.used += n
		b = b[n:]
	}
	kick := !urgent && f.held >= f.h.backlog/4
	f.schedule(kick)
}

// newBlock makes a new block, big enough for n bytes if it can be, the
// feed's tail. It cuts the session's capture and returns nil when the
// queue would pass its bound or the recorder its budget. f.mu is held.
func (f *feed) newBlock(n int) *block {
	size := int64(largeBlock)
	if n <= smallBlock/2 {
		size = smallBlock
	}
	if !f.charge(size) {
		return nil
	}
	var blk *block
	if size == smallBlock {
		blk = smallBlocks.Get().(*block)
	} else {
		blk = largeBlocks.Get().(*block)
	}
	blk.used, blk.refs = 0, 1
	f.dropTail()
	f.tail = blk
	return blk
}

// dropTail stops copying into the tail block. f.mu is held.
func (f *feed) dropTail() {
	if f.tail != nil {
		f.unref(f.tail)
		f.tail = nil
	}
}

// unref drops one reference to blk, and gives it back once none is left.
// f.mu is held.
func (f *feed) unref(blk *block) {
	if blk.refs--; blk.refs > 0 {
		return
	}
	size := int64(len(blk.buf))
	f.refund(size)
	if size == smallBlock {
		smallBlocks.Put(blk)
	} else {
		largeBlocks.Put(blk)
	}
}

// charge counts n more bytes held by the queue against the session's bound
// and the recorder's budget. Past either it cuts the session's capture
// instead and returns false. f.mu is held.
func (f *feed) charge(n int64) bool {
	if f.held+n > f.h.backlog {
		f.cutLocked("backlog")
		return false
	}
	r := f.rec.r
	if r.used.Add(n) > r.opts.BudgetBytes {
		r.used.Add(-n)
		f.cutLocked("budget")
		return false
	}
	f.held += n
	f.h.queued.Add(n)
	return true
}

// refund gives back n bytes charged. f.mu is held.
func (f *feed) refund(n int64) {
	f.held -= n
	f.h.queued.Add(-n)
	f.rec.r.used.Add(-n)
}

// room makes room for one more item, charging what the queue's items take
// past freeItems. It cuts the session's capture and returns false when the
// queue cannot grow. f.mu is held.
func (f *feed) room() bool {
	if len(f.items) < cap(f.items) {
		return true
	}
	if f.head > 0 {
		f.compact()
		return true
	}
	n := max(2*cap(f.items), freeItems)
	if c := int64(n-max(cap(f.items), freeItems)) * itemBytes; c > 0 && !f.charge(c) {
		return false
	}
	f.grow(n)
	return true
}

// grow moves the items into an array of n. f.mu is held.
func (f *feed) grow(n int) {
	items := make([]item, len(f.items), n)
	copy(items, f.items)
	f.items = items
}

// compact moves the items queued to the front of the array. f.mu is held.
func (f *feed) compact() {
	n := copy(f.items, f.items[f.head:])
	clear(f.items[n:])
	f.items, f.head = f.items[:n], 0
}

// releaseItems lets an empty queue's array go, and what it was charged.
// f.mu is held.
func (f *feed) releaseItems() {
	if c := cap(f.items); c > freeItems {
		f.refund(int64(c-freeItems) * itemBytes)
		f.items = nil
	}
	f.items, f.head = f.items[:0], 0
}

// cutLocked cuts the session's capture: the cut is counted now, the queued
// chunks are dropped, and the worker records the close event. f.mu is held.
func (f *feed) cutLocked(reason string) {
	f.cut = reason
	f.dropQueued()
	f.dropTail()
	if f.rec.abandon(reason) {
		f.push(item{kind: itemCut})
	} else {
		f.push(item{kind: itemStop}) // it had stopped meanwhile
	}
}

// dropQueued drops the items queued. f.mu is held.
func (f *feed) dropQueued() {
	for i := f.head; i < len(f.items); i++ {
		if blk := f.items[i].blk; blk != nil {
			f.unref(blk)
		}
	}
	clear(f.items)
	f.releaseItems()
}

// end queues the end of the connection; side is who hung up first.
func (f *feed) end(side session.Side) {
	f.mu.Lock()
	f.ended = true
	f.dropTail()
	f.appendAlways(item{kind: itemEnd, side: side})
	f.schedule(false)
}

// appendAlways queues it whatever the bound: each of a session's last
// items (stop, cut, end) is queued at most once. f.mu is held.
func (f *feed) appendAlways(it item) {
	if len(f.items) == cap(f.items) {
		if f.head > 0 {
			f.compact()
		} else {
			n := max(2*cap(f.items), freeItems)
			if c := int64(n-max(cap(f.items), freeItems)) * itemBytes; c > 0 {
				f.held += c
				f.h.queued.Add(c)
				f.rec.r.used.Add(c)
			}
			f.grow(n)
		}
	}
	f.items = append(f.items, it)
}

// push queues it and schedules the feed. f.mu is held (and h.mu is
// taken under it).
func (f *feed) push(it item) {
	f.appendAlways(it)
	if !f.scheduled {
		f.scheduled = true
		f.h.schedule(f, false)
	}
}

// schedule puts the feed in the workers' run queue unless it is there, and
// unlocks f.mu. kick wakes a worker now rather than at its next poll.
func (f *feed) schedule(kick bool) {
	first := !f.scheduled
	f.scheduled = true
	f.mu.Unlock()
	switch {
	case first:
		f.h.schedule(f, kick)
	case kick:
		f.h.schedule(nil, true)
	}
}

// schedule puts f, unless nil, in the run queue and makes sure a worker
// will take it: one polling finds it within handoffPoll, a parked one (or
// with kick, any idle one) is kicked, and with none idle a new one starts,
// up to h.workers.
func (h *handoff) schedule(f *feed, kick bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f != nil {
		h.runq = append(h.runq, f)
	}
	switch {
	case h.polling > 0 && !kick:
	case h.polling+h.parked > 0:
		select {
		case h.kick <- struct{}{}:
		default: // every idle worker has a kick waiting already
		}
	case h.running < h.workers && len(h.runq) > 0:
		h.running++
		h.wg.Add(1)
		go h.run()
	}
}

// run is a worker: it captures sessions with queued work until no session
// is live.
func (h *handoff) run() {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := 0      // polls in a row that found nothing
	var busy int64 // nanotime when this worker last found work or yielded
	for {
		h.mu.Lock()
		var f *feed
		for f == nil {
			if len(h.runq) > 0 {
				f = h.runq[0]
				h.runq[0] = nil
				h.runq = h.runq[1:]
				if len(h.runq) == 0 {
					h.runq = h.runq[:0:0] // let the backing array go
				}
				break
			}
			if h.live == 0 {
				h.running--
				h.mu.Unlock()
				return
			}
			poll := idle < handoffPolls
			if poll {
				h.polling++
			} else {
				h.parked++
			}
			h.mu.Unlock()
			if poll {
				timer.Reset(handoffPoll)
				select {
				case <-h.kick:
					timer.Stop()
				case <-timer.C:
				}
				idle++
			} else {
				<-h.kick
			}
			h.mu.Lock()
			if poll {
				h.polling--
			} else {
				h.parked--
			}
		}
		h.mu.Unlock()
		if idle > 0 || busy == 0 {
			busy = nanotime()
		}
		idle = 0
		h.work(f)
		if nanotime()-busy > int64(handoffQuantum) {
			h.yield()
			busy = nanotime()
		}
	}
}

// work captures f's queued items, for a turn at most.
func (h *handoff) work(f *feed) {
	start := nanotime()
	var done *block // the block of the item just captured
	for turn := true; ; turn = nanotime()-start < int64(handoffTurn) {
		f.mu.Lock()
		if done != nil {
			f.unref(done)
			done = nil
		}
		if f.head == len(f.items) {
			// Drained: an idle session holds no block and almost no
			// queue.
			clear(f.items)
			f.releaseItems()
			f.dropTail()
			f.scheduled = false
			f.mu.Unlock()
			return
		}
		if !turn {
			f.mu.Unlock()
			h.mu.Lock()
			h.runq = append(h.runq, f) // behind the others
			h.mu.Unlock()
			return
		}
		it := f.items[f.head]
		f.items[f.head] = item{}
		if f.head++; f.head >= 16 && 2*f.head >= len(f.items) {
			f.compact() // the queue never empties: keep its array bounded
		}
		f.mu.Unlock()

		s := f.rec
		switch it.kind {
		case itemData:
			if h.hook != nil {
				h.hook(s)
			}
			s.feed(it.dir, it.b, it.at)
			done = it.blk
		case itemMark:
			s.mark(it.dir, it.at)
		case itemStop:
			s.releaseParser(0)
			s.releaseParser(1)
		case itemCut:
			f.mu.Lock()
			reason := f.cut
			f.mu.Unlock()
			s.cut(reason)
			s.releaseParser(0)
			s.releaseParser(1)
		case itemEnd:
			s.End(it.side)
			f.mu.Lock()
			f.dropQueued() // nothing follows the end; this is for certain
			f.dropTail()
			f.mu.Unlock()
			h.mu.Lock()
			h.live--
			if h.live == 0 {
				// Wake every idle worker, so that they end.
				for range h.polling + h.parked {
					select {
					case h.kick <- struct{}{}:
					default:
					}
				}
			}
			h.mu.Unlock()
			h.wg.Done()
			return
		}
	}
}
