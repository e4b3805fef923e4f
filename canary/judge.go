package canary

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/preheatdev/preheat/internal/counts"
	"github.com/preheatdev/preheat/paired"
)

// metric is one latency statistic compared.
type metric struct {
	name string
	q    float64 // quantile; 0 for the mean
}

var (
	overallMetrics = []metric{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"mean", 0}}
	kindMetrics    = []metric{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}}
)

// snapshot is one target's measurements, copied out of its recorder.
type snapshot struct {
	resp      []response
	slots     []slot
	started   uint64
	completed uint64
	failed    map[string]uint64
	sent      uint64
	timeouts  uint64
	overflow  uint64
}

func (r *recorder) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return snapshot{
		resp: append([]response(nil), r.resp...), slots: append([]slot(nil), r.slots...),
		started: r.started, completed: r.completed, failed: maps.Clone(r.failed),
		sent: r.lastStats.MessagesSent, timeouts: r.lastStats.Timeouts, overflow: r.overflow,
	}
}

// errorRate is failed sessions and timeouts over sessions and messages.
func (s snapshot) errorRate() float64 {
	ops := s.started + s.sent
	if ops == 0 {
		return 0
	}
	return float64(counts.Sum(s.failed)+s.timeouts) / float64(ops)
}

// byInterval returns the latencies of kind (all kinds for -1) in each of
// the first n intervals.
func (s snapshot) byInterval(n, kind int) [][]float64 {
	out := make([][]float64, n)
	for _, r := range s.resp {
		if int(r.iv) < n && (kind < 0 || int(r.kind) == kind) {
			out[r.iv] = append(out[r.iv], r.ms)
		}
	}
	return out
}

func flat(per [][]float64) []float64 {
	var out []float64
	for _, v := range per {
		out = append(out, v...)
	}
	slices.Sort(out)
	return out
}

// comparison is one statistic to compare, on one pool of responses.
type comparison struct {
	kind    int // -1: every response
	metric  metric
	cand    []float64 // sorted
	ref     []float64
	perCand [][]float64
	perRef  [][]float64
}

// judge compares the two targets over the first n intervals of the phase
// and returns the verdict. stopped, when set, says why the phase ended
// early.
func (c *Canary) judge(res *Result, n int, stopped string) {
	o := &c.o
	cand, ref := c.arms[0].rec.snapshot(), c.arms[1].rec.snapshot()
	kinds := c.kinds.list()
	res.Compared = float64(n) * o.Interval.Seconds()
	res.Rate, res.Confidence, res.MinEffect = o.Rate, o.Confidence, o.MinEffect
	res.Targets = []Target{c.target(0, cand, n), c.target(1, ref, n)}

	// What can be compared: a statistic needs enough responses from
	// both targets, a kind MinKindResponses of its own.
	var todo []comparison
	allC, allR := cand.byInterval(n, -1), ref.byInterval(n, -1)
	fc, fr := flat(allC), flat(allR)
	for _, m := range overallMetrics {
		todo = append(todo, comparison{kind: -1, metric: m, cand: fc, ref: fr, perCand: allC, perRef: allR})
	}
	type kindPool struct {
		id         int
		perC, perR [][]float64
		c, r       []float64
	}
	var pools []kindPool
	for id := range kinds {
		perC, perR := cand.byInterval(n, id), ref.byInterval(n, id)
		kc, kr := flat(perC), flat(perR)
		if min(len(kc), len(kr)) >= o.MinKindResponses {
			pools = append(pools, kindPool{id, perC, perR, kc, kr})
		}
	}
	slices.SortStableFunc(pools, func(a, b kindPool) int { return cmp.Compare(len(b.r), len(a.r)) })
	for _, p := range pools {
		for _, m := range kindMetrics {
			if min(len(p.c), len(p.r)) >= paired.MinResponses(m.q) {
				todo = append(todo, comparison{kind: p.id, metric: m, cand: p.c, ref: p.r, perCand: p.perC, perRef: p.perR})
			}
		}
	}
	// Error rates, interval by interval.
	var errDiff []float64
	for i := range n {
		x, y := ref.slots[i], cand.slots[i]
		ox, oy := x.started+x.sent, y.started+y.sent
		if ox == 0 && oy == 0 {
			continue
		}
		errDiff = append(errDiff, 100*(share(y.failed+y.timeouts, oy)-share(x.failed+x.timeouts, ox)))
	}
	family := 1 // the error rate
	for _, t := range todo {
		if n >= paired.MinPairs && min(len(t.cand), len(t.ref)) >= paired.MinResponses(t.metric.q) {
			family++
		}
	}
	level := paired.Level(o.Confidence, family)
	rule := paired.Rule{Confidence: o.Confidence, Level: level, MinEffect: o.MinEffect, Resamples: o.Resamples}
	res.Level = level
	res.Method = fmt.Sprintf("paired by %v interval; percentiles of the responses pooled over the intervals; moving-block bootstrap, %d resamples; %.0f%% family-wise over %d comparisons (%.2f%% each); minimum effect %.0f%%",
		o.Interval, o.Resamples, o.Confidence*100, family, level*100, o.MinEffect*100)
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d))

	// One bootstrap per pool, every statistic of it at once.
	byPool := map[int][]int{} // kind -> indices into todo
	var order []int
	for i, t := range todo {
		if _, ok := byPool[t.kind]; !ok {
			order = append(order, t.kind)
		}
		byPool[t.kind] = append(byPool[t.kind], i)
	}
	diffs := make([]paired.Difference, len(todo))
	for _, kind := range order {
		var qs []float64
		var idx []int
		for _, i := range byPool[kind] {
			t := todo[i]
			d := &diffs[i]
			*d = paired.Difference{Metric: t.metric.name, Unit: "ms"}
			if len(t.ref) > 0 {
				d.Baseline = paired.Statistic(t.ref, t.metric.q)
			}
			if len(t.cand) > 0 {
				d.Candidate = paired.Statistic(t.cand, t.metric.q)
			}
			need := paired.MinResponses(t.metric.q)
			switch {
			case n < paired.MinPairs:
				d.Summary = fmt.Sprintf("too few intervals to compare %s: %d", t.metric.name, n)
			case min(len(t.cand), len(t.ref)) < need:
				d.Summary = fmt.Sprintf("too few responses to compare %s: %d and %d of the %d each it needs", t.metric.name, len(t.cand), len(t.ref), need)
			default:
				qs = append(qs, t.metric.q)
				idx = append(idx, i)
			}
		}
		if len(qs) == 0 {
			continue
		}
		t := todo[idx[0]]
		point, lo, hi, ok := paired.PooledLogRatios(t.perRef, t.perCand, qs, rng, o.Resamples, level)
		for k, i := range idx {
			d := &diffs[i]
			d.Pairs = n
			if !ok {
				d.Summary = fmt.Sprintf("could not compare %s", d.Metric)
				continue
			}
			rule.Judge(d, point[k], lo[k], hi[k], "slower", "faster")
		}
	}
	errs := paired.Difference{Metric: "error_rate", Unit: "%", Baseline: 100 * ref.errorRate(), Candidate: 100 * cand.errorRate()}
	rule.Points(&errs, errDiff, rng)

	// The report: overall first, then kinds by frequency.
	type finding struct {
		sentence string
		errors   bool
		change   float64
	}
	var worse []finding
	kindAt := map[int]int{}
	for i, t := range todo {
		d := diffs[i]
		if t.kind < 0 {
			res.Overall = append(res.Overall, d)
		} else {
			at, ok := kindAt[t.kind]
			if !ok {
				at = len(res.Kinds)
				kindAt[t.kind] = at
				res.Kinds = append(res.Kinds, KindComparison{Kind: kinds[t.kind], Responses: [2]int{len(t.cand), len(t.ref)}})
			}
			res.Kinds[at].Metrics = append(res.Kinds[at].Metrics, d)
		}
		if d.Worse {
			where := "over all messages"
			if t.kind >= 0 {
				where = "on " + kinds[t.kind]
			}
			worse = append(worse, finding{sentence: fmt.Sprintf("candidate is %.0f%% slower at %s %s, %.0f%% CI %+.0f%% to %+.0f%%",
				100*d.Change, d.Metric, where, o.Confidence*100, 100*d.Low, 100*d.High), change: d.Change})
		}
	}
	res.Overall = append(res.Overall, errs)
	if errs.Worse {
		worse = append(worse, finding{errors: true, sentence: fmt.Sprintf("candidate has %.2f points more errors (%.2f%% against %.2f%%), %.0f%% CI %+.2f to %+.2f points",
			errs.Change, errs.Candidate, errs.Baseline, o.Confidence*100, errs.Low, errs.High)})
	}
	slices.SortStableFunc(worse, func(a, b finding) int {
		if a.errors != b.errors {
			if a.errors {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.change, a.change)
	})
	for _, f := range worse {
		res.Regressions = append(res.Regressions, f.sentence)
	}

	// The verdict. A reference that failed makes every comparison moot.
	refTarget := res.Targets[1]
	candN, refN := len(fc), len(fr)
	switch {
	case stopped != "":
		res.Outcome, res.Finding = Inconclusive, stopped
	case refTarget.ErrorRate > o.MaxReferenceErrors:
		res.Outcome = Inconclusive
		res.Finding = fmt.Sprintf("the reference failed %.1f%% of its operations, over the %.0f%% allowed: %s",
			100*refTarget.ErrorRate, 100*o.MaxReferenceErrors, failureText(ref.failed, ref.timeouts))
	case len(worse) > 0:
		res.Outcome, res.Finding = Regression, worse[0].sentence
	case min(candN, refN) < o.MinResponses:
		res.Outcome = Inconclusive
		res.Finding = fmt.Sprintf("too few responses in %.0fs to judge: candidate %d, reference %d, of the %d each needed (a longer canary duration or a higher canary rate gives more)",
			res.Compared, candN, refN, o.MinResponses)
	default:
		res.Outcome = NoRegression
		var p99 string
		for _, d := range res.Overall {
			if d.Metric == "p99" && d.Pairs > 0 {
				p99 = fmt.Sprintf("; p99 %+.0f%%, %.0f%% CI %+.0f%% to %+.0f%%", 100*d.Change, o.Confidence*100, 100*d.Low, 100*d.High)
			}
		}
		res.Finding = fmt.Sprintf("no regression over %d responses a target and %d kinds compared apart%s", min(candN, refN), len(res.Kinds), p99)
	}
}

// target summarizes a target's snapshot over the first n intervals.
func (c *Canary) target(i int, s snapshot, n int) Target {
	a := c.arms[i]
	t := Target{Name: a.rec.name, URL: a.rec.url, Sessions: s.started, Completed: s.completed,
		SessionsFailed: s.failed, Sent: s.sent, Timeouts: s.timeouts, ErrorRate: s.errorRate()}
	t.Responses = uint64(len(s.resp)) + s.overflow
	if secs := float64(n) * c.o.Interval.Seconds(); secs > 0 {
		sent := 0
		for _, sl := range s.slots[:min(n, len(s.slots))] {
			sent += sl.sent
		}
		t.MessagesPerSecond = math.Round(10*float64(sent)/secs) / 10
	}
	if all := flat(s.byInterval(n, -1)); len(all) > 0 {
		t.P50, t.P99 = paired.Statistic(all, 0.5), paired.Statistic(all, 0.99)
	}
	return t
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}
