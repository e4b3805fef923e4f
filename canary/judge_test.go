package canary

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/replayer"
)

// synthetic is one target's traffic for a judge test.
type synthetic struct {
	// slow multiplies the latency of a kind.
	slow map[string]float64
	// fails is the sessions that fail a second.
	fails int
	// perSecond is the responses a second; kinds are drawn by share.
	perSecond int
}

var syntheticKinds = []struct {
	name  string
	share float64
	ms    float64
}{{"tasks.list", 0.4, 2}, {"tasks.search", 0.35, 4}, {"user.me", 0.23, 1}, {"rare.kind", 0.02, 8}}

// judged records the two targets' synthetic traffic for seconds intervals
// of a second in a canary's recorders, without a network, and judges it.
// The two targets share the moments and the kinds of their responses, and
// each interval a common factor (the machine's load), as a real canary's
// do; their latencies are drawn apart.
func judged(t *testing.T, seed uint64, seconds int, cand, ref synthetic, o *Options) *Result {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	o.Logger = slog.New(slog.DiscardHandler)
	o.Interval = time.Second
	c, err := New("ws://127.0.0.1:1/a", "ws://127.0.0.1:1/b", o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_000_000, 0)
	for _, a := range c.arms {
		a.rec.begin(start, time.Second, seconds+2)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	var sent, timeouts [2]uint64
	for s := range seconds {
		load := math.Exp(0.3 * rng.NormFloat64())
		at := start.Add(time.Duration(s) * time.Second)
		for i, tg := range []synthetic{cand, ref} {
			for k := range 4 {
				c.arms[i].rec.handed(at)
				res := replayer.SessionResult{Started: at, Duration: time.Millisecond}
				if k < tg.fails {
					res.Failure, res.CloseCode = "closed_by_target", 1011
				}
				c.arms[i].rec.ended(res)
			}
		}
		for k := range max(cand.perSecond, ref.perSecond) {
			u := rng.Float64()
			kind := syntheticKinds[len(syntheticKinds)-1]
			for _, sk := range syntheticKinds {
				if u < sk.share {
					kind = sk
					break
				}
				u -= sk.share
			}
			when := at.Add(time.Duration(k) * time.Second / time.Duration(max(cand.perSecond, ref.perSecond)))
			for i, tg := range []synthetic{cand, ref} {
				if k >= tg.perSecond {
					continue
				}
				ms := kind.ms * load * math.Exp(0.5*rng.NormFloat64())
				if f := tg.slow[kind.name]; f > 0 {
					ms *= f
				}
				sent[i]++
				c.arms[i].rec.observe(replayer.Response{At: when, Latency: time.Duration(ms * 1e6), Kind: kind.name})
			}
		}
		for i := range c.arms {
			c.arms[i].rec.close(at.Add(time.Second), replayer.Stats{MessagesSent: sent[i], Timeouts: timeouts[i]})
		}
	}
	res := &Result{}
	c.judge(res, seconds, "")
	return res
}

// TestJudgeNamesTheSlowKind: a kind 30% slower in every percentile is a
// regression named for that kind, at p50, p90 and p99.
func TestJudgeNamesTheSlowKind(t *testing.T) {
	res := judged(t, 1, 60, synthetic{perSecond: 50, slow: map[string]float64{"tasks.search": 1.3}}, synthetic{perSecond: 50}, nil)
	if res.Outcome != Regression || !strings.Contains(res.Finding, "slower at p") || !strings.Contains(res.Finding, " on tasks.search, 99% CI +") {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Finding)
	}
	for _, r := range res.Regressions {
		if strings.Contains(r, " on ") && !strings.Contains(r, " on tasks.search,") {
			t.Errorf("another kind is found slower: %s", r)
		}
	}
	var kinds []string
	for _, k := range res.Kinds {
		kinds = append(kinds, k.Kind)
		if k.Kind == "rare.kind" {
			t.Errorf("a kind with %v responses was compared (fewer than 100)", k.Responses)
		}
	}
	if strings.Join(kinds, " ") != "tasks.list tasks.search user.me" {
		t.Errorf("kinds compared %v, want the three with 100 responses each, most frequent first", kinds)
	}
}

// TestJudgeEqualTargets: targets drawn alike show no regression, seed
// after seed: the family-wise level and the minimum effect hold over
// every metric and kind compared.
func TestJudgeEqualTargets(t *testing.T) {
	for seed := range uint64(30) {
		res := judged(t, seed+100, 60, synthetic{perSecond: 50}, synthetic{perSecond: 50}, nil)
		if res.Outcome != NoRegression {
			t.Errorf("seed %d: %s: %s %v", seed, res.Outcome, res.Finding, res.Regressions)
		}
	}
}

// TestJudgeInconclusive: too few responses, or a failing reference, is
// no verdict; a failing candidate is a regression.
func TestJudgeInconclusive(t *testing.T) {
	f := func(name string, cand, ref synthetic, outcome, finding string) {
		t.Helper()
		res := judged(t, 7, 30, cand, ref, nil)
		if res.Outcome != outcome || !strings.Contains(res.Finding, finding) {
			t.Errorf("%s: %s: %s; want %s: %q", name, res.Outcome, res.Finding, outcome, finding)
		}
	}
	f("few responses", synthetic{perSecond: 10}, synthetic{perSecond: 10}, Inconclusive, "too few responses in 30s to judge: candidate 300, reference 300, of the 500 each needed")
	f("failing reference", synthetic{perSecond: 50}, synthetic{perSecond: 50, fails: 2}, Inconclusive, "the reference failed 3.7% of its operations, over the 2% allowed: sessions failed (closed_by_target_1011 60), 0 response timeouts")
	f("failing candidate", synthetic{perSecond: 50, fails: 1}, synthetic{perSecond: 50}, Regression, "candidate has 1.85 points more errors (1.85% against 0.00%), 99% CI +1.85 to +1.85 points")
	f("slower reference", synthetic{perSecond: 50}, synthetic{perSecond: 50, slow: map[string]float64{"tasks.list": 2}}, NoRegression, "no regression over 1500 responses a target and 3 kinds compared apart")
}
