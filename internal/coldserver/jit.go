package coldserver

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/preheatdev/preheat/internal/corpus"
)

// Tier is the compilation tier a path's code runs at.
type Tier int32

// The tiers, coldest first.
const (
	Interpreted Tier = iota
	C1
	C2
)

func (t Tier) String() string {
	switch t {
	case Interpreted:
		return "interpreted"
	case C1:
		return "c1"
	case C2:
		return "c2"
	}
	return "unknown"
}

// The warm-up model at Scale 1. A path stands for a whole call tree (parse,
// plan, fetch, serialise), so its thresholds are lower than HotSpot's
// per-method ones; its compile costs are those of many methods together.
const (
	// c1Threshold is the number of invocations after which a path's C1
	// compile task is queued.
	c1Threshold = 10
	// c2Threshold is the number of invocations after which a path running
	// C1 code has its C2 compile task queued.
	c2Threshold = 50
	// c1Cost and c2Cost are the mean CPU time of one compile task; each
	// path multiplies them by its own factor in [0.5, 1.5).
	c1Cost = 20 * time.Millisecond
	c2Cost = 150 * time.Millisecond
	// frameworkCostFactor makes the shared framework path dearer to compile.
	frameworkCostFactor = 3
	// installPause is how long installing compiled code stops the world.
	installPause = time.Millisecond
	// c1Factor is how much slower C1 code runs than C2 code; interpreted
	// code is 15 to 30 times slower, per path.
	c1Factor = 3
)

// variants of a query: bit 0 a filter is present, bit 1 the query subscribes.
var variantNames = [4]string{"plain", "filter", "sub", "filter+sub"}

// path is one simulated code path and its compilation state.
type path struct {
	name   string
	base   time.Duration // service time of C2 code
	interp float64       // interpreted slowdown, in [15, 30)
	slow   float64       // Options.Slow's factor for the path's kind; 0 or 1: none
	cost   [3]time.Duration
	tier   atomic.Int32
	calls  atomic.Uint64
	queued atomic.Bool // a compile task for the next tier is queued or running
}

func (p *path) serviceTime(t Tier) time.Duration {
	d := p.base
	switch t {
	case Interpreted:
		d = time.Duration(float64(p.base) * p.interp)
	case C1:
		d = c1Factor * p.base
	}
	if p.slow > 1 {
		d = time.Duration(float64(d) * p.slow)
	}
	return d
}

// splitmix64 derives the deterministic per-path constants from the seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

type unitSource struct{ state uint64 }

func (u *unitSource) next() float64 {
	u.state = splitmix64(u.state)
	return float64(u.state>>11) / (1 << 53)
}

// newPaths returns the query paths of every corpus kind and variant, in the
// order kind*4+variant, followed by the framework path.
func newPaths(seed uint64, scale float64) []*path {
	mk := func(i int, name string, base time.Duration, costFactor float64) *path {
		u := unitSource{state: seed ^ uint64(i+1)*0xd1342543de82ef95}
		p := &path{name: name, interp: 15 + 15*u.next()}
		p.base = base
		if base == 0 {
			p.base = time.Duration((0.3 + 1.2*u.next()) * float64(time.Millisecond))
		}
		p.cost[C1] = time.Duration(float64(c1Cost) * (0.5 + u.next()) * costFactor * scale)
		p.cost[C2] = time.Duration(float64(c2Cost) * (0.5 + u.next()) * costFactor * scale)
		return p
	}
	var ps []*path
	for k, kind := range corpus.Kinds {
		for v, vn := range variantNames {
			ps = append(ps, mk(k*4+v, kind+"/"+vn, 0, 1))
		}
	}
	return append(ps, mk(len(ps), "framework", 150*time.Microsecond, frameworkCostFactor))
}

func scaledThreshold(n int, scale float64) uint64 {
	return uint64(max(1, math.Round(float64(n)*scale)))
}

type compileTask struct {
	p  *path
	to Tier
}

// jit owns the paths, the compile queue, the compilers and the safepoint.
type jit struct {
	paths     []*path
	framework *path
	c1, c2    uint64 // scaled thresholds
	queue     chan compileTask
	pending   atomic.Int64     // tasks queued or compiling
	dropped   *metrics.Counter // tasks not queued because the queue was full
	compileUS atomic.Uint64    // microseconds spent compiling

	// safepoint is read-locked by running requests and the jitter task and
	// write-locked by a compiler while it installs code.
	safepoint sync.RWMutex
	sink      atomic.Uint64
	onInstall func()
}

// invoke counts one invocation of p, queues its next compile task when a
// threshold is crossed and the queue has room, and returns the tier this
// invocation runs at. When the queue is full the task is not queued; a
// later invocation tries again, as HotSpot does.
func (j *jit) invoke(p *path) Tier {
	t := Tier(p.tier.Load())
	n := p.calls.Add(1)
	next := t
	switch {
	case t == Interpreted && n >= j.c1:
		next = C1
	case t == C1 && n >= j.c2:
		next = C2
	}
	if next != t && p.queued.CompareAndSwap(false, true) {
		j.pending.Add(1)
		select {
		case j.queue <- compileTask{p: p, to: next}:
		default:
			j.pending.Add(-1)
			p.queued.Store(false)
			j.dropped.Inc()
		}
	}
	return t
}

// compiler takes tasks from the queue until ctx ends.
func (j *jit) compiler(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-j.queue:
			j.compile(ctx, t)
		}
	}
}

// compile burns CPU for the task's cost, then installs the code at a
// safepoint.
func (j *jit) compile(ctx context.Context, t compileTask) {
	start := time.Now()
	cost := t.p.cost[t.to]
	x := j.sink.Load() | 1
	for i := 0; ; i++ {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Since(start) >= cost {
			break
		}
		if i%64 == 0 && ctx.Err() != nil {
			j.pending.Add(-1)
			return
		}
	}
	j.sink.Store(x)
	j.compileUS.Add(uint64(time.Since(start).Microseconds()))

	j.safepoint.Lock()
	time.Sleep(installPause)
	t.p.tier.Store(int32(t.to))
	j.safepoint.Unlock()
	t.p.queued.Store(false)
	j.pending.Add(-1)
	if j.onInstall != nil {
		j.onInstall()
	}
}
