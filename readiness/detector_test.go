package readiness

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 19, 0, 0, 0, time.UTC)

// signalsAt gives each signal's sample at sec seconds; NaN means none.
type signalsAt func(sec float64, rng *rand.Rand) (jitter, compile, latency float64)

// simulate feeds the detector one sample per second and decides each
// second, until it decides or the deadline is well past. It returns the
// final decision and, for each second, whether it had released by then.
func simulate(t *testing.T, opts *Options, seed uint64, f signalsAt) (Decision, *Detector) {
	t.Helper()
	d := NewDetector(t0, opts)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i <= 3600; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		j, c, l := f(float64(i), rng)
		d.Add(Jitter, now, j)
		d.Add(Compile, now, c)
		d.Add(Latency, now, l)
		if dec := d.Decide(now); dec.Outcome != "" {
			return dec, d
		}
	}
	t.Fatal("detector never decided")
	return Decision{}, nil
}

func noise(rng *rand.Rand, level, sd float64) float64 {
	return max(0, level+sd*rng.NormFloat64())
}

func at(dec Decision) float64 { return dec.At.Sub(t0).Seconds() }

func TestDetectorFlat(t *testing.T) {
	dec, d := simulate(t, nil, 1, func(float64, *rand.Rand) (float64, float64, float64) { return 0.003, 0, 12 })
	if dec.Outcome != OutcomeWarm || !dec.Warm || !dec.Release {
		t.Fatalf("decision %+v, want warm", dec)
	}
	// Observed for a window (10s), then held flat for the window again:
	// 20s, but not before MinWarm (30s).
	if s := at(dec); s < 29 || s > 31 {
		t.Errorf("released at %vs, want about MinWarm = 30s", s)
	}
	for _, sr := range d.Series() {
		if sr.FlatAt < 0 || sr.Missing {
			t.Errorf("series %s: FlatAt %v Missing %v", sr.Name, sr.FlatAt, sr.Missing)
		}
	}
	if !strings.Contains(dec.Reason, "jitter_seconds flat") {
		t.Errorf("reason %q does not name the signals", dec.Reason)
	}
}

func TestDetectorNoisyFlat(t *testing.T) {
	for seed := range uint64(20) {
		dec, _ := simulate(t, nil, seed, func(_ float64, rng *rand.Rand) (float64, float64, float64) {
			return noise(rng, 0.004, 0.0015), noise(rng, 3, 2), noise(rng, 15, 4)
		})
		if dec.Outcome != OutcomeWarm || at(dec) > 150 {
			t.Errorf("seed %d: %s at %vs, want warm by 150s: %s", seed, dec.Outcome, at(dec), dec.Reason)
		}
	}
}

func TestDetectorDecayingThenFlat(t *testing.T) {
	for seed := range uint64(10) {
		dec, _ := simulate(t, nil, seed, func(s float64, rng *rand.Rand) (float64, float64, float64) {
			j := noise(rng, 0.004, 0.001)
			if s < 120 {
				j += 0.8 * (120 - s) / 120 // falls linearly to the floor at 120s
			}
			c := 600*math.Exp(-s/15) + noise(rng, 1, 0.5)
			return j, c, noise(rng, 20, 3) + 200*math.Exp(-s/20)
		})
		if dec.Outcome != OutcomeWarm {
			t.Fatalf("seed %d: %+v, want warm", seed, dec)
		}
		// Jitter still falls until 120s: not flat before then, then held
		// for Hold (10s).
		if s := at(dec); s < 130 || s > 180 {
			t.Errorf("seed %d: released at %vs, want after the decay ends (120s) and the hold (10s), by 180s", seed, s)
		}
	}
}

// twoWaves returns compile rate waves: the first over [0, 20), a lull, a
// second over [lullEnd, lullEnd+15), then quiet.
func twoWaves(lullEnd float64) signalsAt {
	return func(s float64, rng *rand.Rand) (float64, float64, float64) {
		c := noise(rng, 0.5, 0.3)
		switch {
		case s < 20:
			c = noise(rng, 300, 30)
		case s >= lullEnd && s < lullEnd+15:
			c = noise(rng, 200, 20)
		}
		return noise(rng, 0.004, 0.001), c, math.NaN()
	}
}

func TestDetectorTwoWaveCompile(t *testing.T) {
	f := func(opts *Options, lullEnd float64) {
		t.Helper()
		o := opts.withDefaults()
		for seed := range uint64(5) {
			dec, d := simulate(t, opts, seed, twoWaves(lullEnd))
			secondEnd := lullEnd + 15
			clear := secondEnd + o.Window.Seconds()
			if s := at(dec); dec.Outcome != OutcomeWarm || s < clear || s > clear+o.Hold.Seconds()+45 {
				t.Errorf("window %v, lull to %vs, seed %d: %s at %vs, want warm after the second wave clears the window (%vs)",
					o.Window, lullEnd, seed, dec.Outcome, s, clear)
			}
			if sr := d.Series()[Compile]; sr.FlatAt < secondEnd {
				t.Errorf("compile last turned flat at %v, before the second wave ended", sr.FlatAt)
			}
		}
	}
	// These are the raw rates: the watcher's RateWindow (10s) adds 10s of
	// cover after each wave that this test does not have.
	f(nil, 38) // defaults: a lull of 18s, shorter than window+hold (20s)
	long := &Options{Window: 30 * time.Second}
	f(long, 45) // a 30s window: a lull of 25s, shorter than the window
	f(long, 65) // a lull of 45s: longer than the window, shorter than window+hold
}

func TestDetectorNeverWarm(t *testing.T) {
	high := func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return noise(rng, 0.2, 0.02), noise(rng, 100, 10), 10
	}
	slowly := func(s float64, rng *rand.Rand) (float64, float64, float64) {
		return noise(rng, 0.004, 0.001), noise(rng, 400-0.5*s, 5), 10
	}
	highJitter := func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return noise(rng, 0.2, 0.02), noise(rng, 2, 1), 10
	}
	var maxJitter float64
	f := func(name string, sig signalsAt, failClosed bool, want string) {
		t.Helper()
		dec, _ := simulate(t, &Options{FailClosed: failClosed, MaxJitter: maxJitter}, 7, sig)
		if dec.Outcome != want || dec.Warm || dec.Release == failClosed {
			t.Errorf("%s: %+v, want %s", name, dec, want)
		}
		if s := at(dec); s != 600 {
			t.Errorf("%s: decided at %vs, want the 10m deadline", name, s)
		}
		if !strings.Contains(dec.Reason, "deadline") {
			t.Errorf("%s: reason %q", name, dec.Reason)
		}
	}
	f("steadily high, open", high, false, OutcomeDeadlineOpen)
	f("steadily high, closed", high, true, OutcomeDeadlineClosed)
	f("slowly decreasing, open", slowly, false, OutcomeDeadlineOpen)
	f("slowly decreasing, closed", slowly, true, OutcomeDeadlineClosed)
	maxJitter = 0.02 // jitter has no limit by default; with one, high jitter holds
	f("jitter over its limit, open", highJitter, false, OutcomeDeadlineOpen)
}

func TestDetectorAbsentSignals(t *testing.T) {
	nan := math.NaN()
	noJIT := &Options{NoJIT: true}
	f := func(name string, opts *Options, sig signalsAt, want string, missing ...Signal) {
		t.Helper()
		dec, d := simulate(t, opts, 3, sig)
		if dec.Outcome != want {
			t.Errorf("%s: %+v, want %s", name, dec, want)
		}
		series := d.Series()
		for _, s := range missing {
			if !series[s].Missing || len(series[s].Points) != 0 {
				t.Errorf("%s: %s not missing", name, s)
			}
		}
	}
	// Without a compile metric a JIT target is not judged warm (a JVM run
	// with -Xint is flat and slow): the deadline decides, unless NoJIT.
	noCompile := func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return noise(rng, 0.004, 0.001), nan, noise(rng, 15, 2)
	}
	f("no compile metric", nil, noCompile, OutcomeDeadlineOpen, Compile)
	f("no compile metric, no JIT", noJIT, noCompile, OutcomeWarm, Compile)
	f("jitter only, no JIT", noJIT, func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return noise(rng, 0.004, 0.001), nan, nan
	}, OutcomeWarm, Compile, Latency)
	f("nothing", noJIT, func(float64, *rand.Rand) (float64, float64, float64) { return nan, nan, nan },
		OutcomeDeadlineOpen, Jitter, Compile, Latency)
	f("latency only", nil, func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return nan, nan, noise(rng, 15, 2)
	}, OutcomeDeadlineOpen, Jitter, Compile)
	f("latency only, no JIT", noJIT, func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return nan, nan, noise(rng, 15, 2)
	}, OutcomeWarm, Jitter, Compile)
	f("replay stops", nil, func(s float64, rng *rand.Rand) (float64, float64, float64) {
		l := nan
		if s < 20 {
			l = 500 - 20*s // falling fast, then no more replay
		}
		return noise(rng, 0.004, 0.001), 0, l
	}, OutcomeWarm)
}

// TestDetectorNoJITReleasesOnLatencyAlone: a target without a JIT, and
// without a scraped signal, is released once its replay latency has been
// flat for a window and the hold, not before MinWarm; the reason names
// latency and nothing never seen. A JIT target with the same latency alone
// is not: the deadline decides. With no signal at all, even a target
// without a JIT is not released, and the reason says why.
func TestDetectorNoJITReleasesOnLatencyAlone(t *testing.T) {
	nan := math.NaN()
	latencyOnly := func(_ float64, rng *rand.Rand) (float64, float64, float64) {
		return nan, nan, noise(rng, 12, 0.5)
	}
	f := func(name string, opts *Options, from, to float64) {
		t.Helper()
		dec, _ := simulate(t, opts, 5, latencyOnly)
		if dec.Outcome != OutcomeWarm || !dec.Release {
			t.Fatalf("%s: %+v, want warm", name, dec)
		}
		if s := at(dec); s < from || s > to {
			t.Errorf("%s: released at %vs, want %v to %vs", name, s, from, to)
		}
		if !strings.HasPrefix(dec.Reason, "warm after") || !strings.Contains(dec.Reason, "replay_latency_ms flat at") ||
			strings.Contains(dec.Reason, "jitter") || strings.Contains(dec.Reason, "compile") {
			t.Errorf("%s: reason %q, want latency named and no signal never seen", name, dec.Reason)
		}
	}
	// Observed for the 10s window, then held flat for 10s: 20s, but not
	// before MinWarm.
	f("default MinWarm", &Options{NoJIT: true}, 29, 31)
	f("no MinWarm", &Options{NoJIT: true, NoMinWarm: true}, 19, 21)
	f("NoMinWarm wins", &Options{NoJIT: true, NoMinWarm: true, MinWarm: time.Minute}, 19, 21)
	f("longer hold", &Options{NoJIT: true, NoMinWarm: true, Hold: 25 * time.Second}, 34, 36)

	dec, _ := simulate(t, nil, 5, latencyOnly)
	if dec.Outcome != OutcomeDeadlineOpen || at(dec) != 600 || !strings.Contains(dec.Reason, "no jitter or compile signal exposed") {
		t.Errorf("with a JIT: %+v at %vs, want the deadline, for want of a scraped signal", dec, at(dec))
	}

	d := NewDetector(t0, &Options{NoJIT: true, MaxWarm: time.Minute, FailClosed: true})
	for i := 0; ; i++ {
		if dec := d.Decide(t0.Add(time.Duration(i) * time.Second)); dec.Outcome != "" {
			if dec.Outcome != OutcomeDeadlineClosed || !strings.Contains(dec.Reason, "no signal to judge") {
				t.Errorf("no signal at all: %+v, want the deadline, saying there is no signal", dec)
			}
			break
		} else if i == 40 && !strings.Contains(dec.Reason, "warming: no signal to judge: no replay latency") {
			t.Errorf("no signal at all, waiting: reason %q", dec.Reason)
		}
	}
}

func TestDetectorStaleScrapeBlocks(t *testing.T) {
	// Jitter stops arriving from 25s to 100s (scrapes failing): no release
	// then, though everything before was flat.
	dec, _ := simulate(t, nil, 1, func(s float64, _ *rand.Rand) (float64, float64, float64) {
		if s >= 25 && s < 100 {
			return math.NaN(), math.NaN(), 10
		}
		return 0.003, 0, 10
	})
	if dec.Outcome != OutcomeWarm || at(dec) < 100 {
		t.Errorf("%+v at %vs, want warm after scrapes return at 100s", dec, at(dec))
	}
}

func TestDetectorJudge(t *testing.T) {
	sig := Jitter
	f := func(name string, vals func(i int) float64, wantFlat bool, wantWhy string) {
		t.Helper()
		d := NewDetector(t0, &Options{Window: 30 * time.Second, MaxJitter: 0.02})
		for i := range 31 {
			d.Add(sig, t0.Add(time.Duration(i)*time.Second), vals(i))
		}
		_, flat, why := d.judge(sig, t0.Add(30*time.Second), 1)
		if flat != wantFlat || !strings.Contains(why, wantWhy) {
			t.Errorf("%s: flat %v (%s), want %v (%s)", name, flat, why, wantFlat, wantWhy)
		}
	}
	f("constant", func(int) float64 { return 0.01 }, true, "flat at 0.01")
	f("over the limit", func(int) float64 { return 0.05 }, false, "over limit")
	f("one spike tolerated", func(i int) float64 { return map[bool]float64{true: 0.3, false: 0.01}[i == 12] }, true, "flat")
	f("falling under the limit", func(i int) float64 { return 0.019 - 0.0005*float64(i) }, false, "falling")
	f("rising under the limit", func(i int) float64 { return 0.004 + 0.0005*float64(i) }, false, "rising")
	f("tiny steady drift", func(i int) float64 { return 0.004 - 0.00001*float64(i) }, true, "flat")

	// A compile rate settling under its limit (a late compile's bump in a
	// rate over RateWindow, decaying) is flat; one still falling from above
	// the limit, or rising under it, is not.
	sig = Compile
	f("compile settling under the limit", func(i int) float64 { return max(0, 15-1.5*float64(i)) }, true, "flat")
	f("compile falling from over the limit", func(i int) float64 { return 300 - 10*float64(i) }, false, "over limit")
	f("compile rising under the limit", func(i int) float64 { return 0.5 * float64(i) }, true, "flat")
	f("compile rising over the limit", func(i int) float64 { return float64(i) }, false, "over limit")

	// Drifts under a signal's floor are not trends, however significant.
	sig = Latency
	f("latency drifting 0.09ms", func(i int) float64 { return 0.4 + 0.003*float64(i) }, true, "flat")
	f("latency falling 3ms", func(i int) float64 { return 5 - 0.1*float64(i) }, false, "falling")
}

func TestDetectorDecisionIsFinal(t *testing.T) {
	d := NewDetector(t0, &Options{MaxWarm: 5 * time.Second})
	for i := range 10 {
		d.Decide(t0.Add(time.Duration(i) * time.Second))
	}
	dec := d.Decide(t0.Add(time.Hour))
	if dec.Outcome != OutcomeDeadlineOpen || at(dec) != 5 {
		t.Errorf("%+v, want the deadline decision at 5s kept", dec)
	}
}

// TestDetectorMinResponses: flat signals from an idle target do not release
// it; the hold counts from the moment the replay has had enough responses.
func TestDetectorMinResponses(t *testing.T) {
	d := NewDetector(t0, &Options{MinResponses: 500, MinWarm: time.Second, Hold: 10 * time.Second})
	var released float64
	for i := 0; i <= 120; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		d.Add(Jitter, now, 0.002)
		d.Add(Compile, now, 0)
		if i >= 60 { // the replay starts at 60 s, 50 responses a second
			d.Add(Latency, now, 1)
			d.SetResponses(uint64(50 * (i - 59)))
		}
		if dec := d.Decide(now); dec.Outcome != "" {
			released = at(dec)
			break
		} else if i == 59 && !strings.Contains(dec.Reason, "0 of the 500 replay responses required") {
			t.Fatalf("at 59 s: reason %q does not name the missing responses", dec.Reason)
		}
	}
	// 500 responses at 69 s, then the 10 s hold.
	if released < 79 || released > 81 {
		t.Fatalf("released at %vs, want about 79s", released)
	}

	never := NewDetector(t0, &Options{MinResponses: 1, MaxWarm: time.Minute})
	for i := 0; ; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		never.Add(Jitter, now, 0.002)
		never.Add(Compile, now, 0)
		if dec := never.Decide(now); dec.Outcome != "" {
			if dec.Outcome != OutcomeDeadlineOpen || !strings.Contains(dec.Reason, "0 of the 1 replay responses") {
				t.Fatalf("%s: %s", dec.Outcome, dec.Reason)
			}
			break
		}
	}
}

// TestDetectorJudgesCompileAtFullLoad: a compile rate under its limit only
// because a back-off holds the replay at a twentieth of its rate is not
// flat; the same rate at full load is, and a replay released from its
// back-off is judged again at the share it runs at.
func TestDetectorJudgesCompileAtFullLoad(t *testing.T) {
	run := func(share func(i int) float64) (Decision, string) {
		d := NewDetector(t0, &Options{MinWarm: time.Second, Hold: 10 * time.Second, MaxWarm: 90 * time.Second})
		var at59 string
		for i := 0; ; i++ {
			now := t0.Add(time.Duration(i) * time.Second)
			d.Add(Jitter, now, 0.002)
			d.Add(Compile, now, 5) // ms/s: a quarter of the limit as scraped
			d.SetLoadShare(now, share(i))
			dec := d.Decide(now)
			if i == 59 {
				at59 = dec.Reason
			}
			if dec.Outcome != "" {
				return dec, at59
			}
		}
	}
	held, at59 := run(func(int) float64 { return 0.05 })
	if held.Outcome != OutcomeDeadlineOpen {
		t.Fatalf("held at 5%% of its rate: %s at %vs (%s); want the deadline", held.Outcome, at(held), held.Reason)
	}
	if want := "compile_ms_per_second 5 ms/s with the replay held to 5% of its rate: 100 ms/s at full rate, over limit 20"; !strings.Contains(at59, want) {
		t.Fatalf("reason %q lacks %q", at59, want)
	}
	full, _ := run(func(int) float64 { return 1 })
	if full.Outcome != OutcomeWarm || at(full) > 21 {
		t.Fatalf("at full rate: %s at %vs, want warm by 21s (window and hold)", full.Outcome, at(full))
	}
	// Released from the back-off at 30 s: the mean share over the 10 s
	// rate window passes a quarter (5 ms/s scaled under 20) at 32 s, so the
	// hold ends at 42 s.
	freed, _ := run(func(i int) float64 {
		if i < 30 {
			return 0.05
		}
		return 1
	})
	if freed.Outcome != OutcomeWarm || at(freed) < 41 || at(freed) > 44 {
		t.Fatalf("freed at 30s: %s at %vs (%s), want warm at about 42s", freed.Outcome, at(freed), freed.Reason)
	}
}

func TestDetectorSeriesRecordsLoadShare(t *testing.T) {
	d := NewDetector(t0, nil)
	if s := d.Series(); len(s) != int(numSignals) {
		t.Fatalf("%d series without load shares, want the %d signals'", len(s), numSignals)
	}
	for i := range 30 { // longer than the two rate windows the judgment keeps
		d.SetLoadShare(t0.Add(time.Duration(i)*time.Second), float64(i)/20)
	}
	d.SetLoadShare(t0.Add(time.Second), 0.5) // older than the newest: dropped
	s := d.Series()
	if len(s) != int(numSignals)+1 || s[numSignals].Name != LoadShareSeries || len(s[numSignals].Points) != 30 {
		t.Fatalf("series %+v: want the load share's 30 points last", s)
	}
	if p := s[numSignals].Points; p[0].V != 0.001 || p[10].V != 0.5 || p[29].V != 1 || p[29].T != 29 {
		t.Fatalf("points %v: want shares clamped to [0.001, 1] at their times", p)
	}
}

// TestDetectorHoldTolerance: once every signal is flat, a late compile's
// bump just over the limit does not restart the hold (the JIT tail of a
// real JVM), a bump well over it does (a wave), the compile rate judged at
// full load gets the same tolerance, and a rate that never went under the
// limit itself is never released, whatever the tolerance.
func TestDetectorHoldTolerance(t *testing.T) {
	// The compile rate (as over a 10 s rate window) is a wave of 300 ms/s
	// to 19 s, then 8 ms/s: flat from 29 s (the window (19, 29] clear of
	// the wave), a hold to 39 s. Late compiles from 33 s ramp the rate up
	// to bump over three seconds, and it stays there to 42 s. The ramp is
	// a significant, material rising trend: under the tolerance it is
	// settling, as under the limit itself.
	bumpAt := func(bump float64) func(int) float64 {
		return func(i int) float64 {
			switch {
			case i < 20:
				return 300
			case i >= 33 && i < 35:
				return 8 + (bump-8)*float64(i-32)/3
			case i >= 35 && i < 43:
				return bump
			}
			return 8
		}
	}
	run := func(tol float64, compile func(int) float64, share func(int) float64) (Decision, []string) {
		t.Helper()
		d := NewDetector(t0, &Options{MinWarm: time.Second, MaxWarm: 3 * time.Minute, HoldTolerance: tol})
		var reasons []string
		for i := 0; ; i++ {
			now := t0.Add(time.Duration(i) * time.Second)
			d.Add(Jitter, now, 0.002)
			d.Add(Compile, now, compile(i))
			if share != nil {
				d.SetLoadShare(now, share(i))
			}
			dec := d.Decide(now)
			reasons = append(reasons, dec.Reason)
			if dec.Outcome != "" {
				return dec, reasons
			}
		}
	}
	// Default tolerance 2: a bump to 30 ms/s (1.5x) leaves the hold alone.
	dec, reasons := run(0, bumpAt(30), nil)
	if dec.Outcome != OutcomeWarm || at(dec) != 39 {
		t.Fatalf("bump to 30 ms/s in the hold: %s at %vs (%s), want warm at 39s", dec.Outcome, at(dec), dec.Reason)
	}
	if r := reasons[36]; !strings.Contains(r, "every signal flat") {
		t.Fatalf("at 36 s, in the bump: %q, want the hold going on", r)
	}
	if !strings.Contains(dec.Reason, "p95 30 over limit 20, within the hold's tolerance 2") {
		t.Fatalf("release reason %q does not say the bump was tolerated", dec.Reason)
	}
	// A strict hold restarts at the bump: flat again once the bump has
	// left the window, (42, 52], held to 62 s.
	if dec, _ = run(1, bumpAt(30), nil); dec.Outcome != OutcomeWarm || at(dec) != 62 {
		t.Fatalf("strict hold, bump to 30 ms/s: %s at %vs, want warm at 62s", dec.Outcome, at(dec))
	}
	// A bump over the tolerance (50 ms/s, 2.5x) is a wave: it restarts
	// the hold under the default too.
	dec, reasons = run(0, bumpAt(50), nil)
	if dec.Outcome != OutcomeWarm || at(dec) != 62 {
		t.Fatalf("bump to 50 ms/s in the hold: %s at %vs, want warm at 62s", dec.Outcome, at(dec))
	}
	if r := reasons[34]; !strings.Contains(r, "every signal flat") {
		t.Fatalf("at 34 s, the ramp at 36 ms/s: %q, want the hold going on", r)
	}
	if r := reasons[35]; !strings.Contains(r, "p95 50 ms/s over limit 20 times the hold's tolerance 2") {
		t.Fatalf("at 35 s, the ramp at 50 ms/s: %q, want the tolerance named", r)
	}
	if r := reasons[36]; !strings.Contains(r, "p95 50 ms/s over limit 20") || strings.Contains(r, "tolerance") {
		t.Fatalf("at 36 s, the hold broken: %q, want the strict limit again", r)
	}
	// Judged at full load: the replay held back to a quarter of its rate
	// from 30 s, the settled 8 ms/s reads as 32 ms/s at full rate once the
	// share's mean over the rate window is under 0.4, at 38 s. The default
	// tolerates it; a strict hold breaks; a tenth of the rate (80 ms/s at
	// full rate) breaks the default too, and says so.
	heldTo := func(share float64) func(int) float64 {
		return func(i int) float64 {
			if i >= 30 {
				return share
			}
			return 1
		}
	}
	if dec, _ = run(0, bumpAt(8), heldTo(0.25)); dec.Outcome != OutcomeWarm || at(dec) != 39 {
		t.Fatalf("held to 25%% in the hold: %s at %vs (%s), want warm at 39s", dec.Outcome, at(dec), dec.Reason)
	}
	if _, reasons = run(1, bumpAt(8), heldTo(0.25)); !strings.Contains(reasons[38], "at full rate, over limit 20") {
		t.Fatalf("strict hold, held to 25%%, at 38 s: %q, want the full-rate limit broken", reasons[38])
	}
	if _, reasons = run(0, bumpAt(8), heldTo(0.1)); !strings.Contains(reasons[38], "at full rate, over limit 20 times the hold's tolerance 2") {
		t.Fatalf("held to 10%%, at 38 s: %q, want the widened full-rate limit broken", reasons[38])
	}
	// Never early: a rate that hovers at 30 ms/s from the wave's end on
	// never turns flat, so no tolerance (2, or 10) ever applies; the
	// deadline decides.
	hover := func(i int) float64 {
		if i < 20 {
			return 300
		}
		return 30
	}
	for _, tol := range []float64{0, 10} {
		if dec, _ = run(tol, hover, nil); dec.Outcome != OutcomeDeadlineOpen {
			t.Fatalf("tolerance %v, rate at 30 ms/s throughout: %s at %vs (%s), want the deadline", tol, dec.Outcome, at(dec), dec.Reason)
		}
	}
	// The library clamps what NewDetector is not asked to validate: NaN
	// is a strict hold.
	if dec, _ = run(math.NaN(), bumpAt(30), nil); dec.Outcome != OutcomeWarm || at(dec) != 62 {
		t.Fatalf("tolerance NaN, bump to 30 ms/s: %s at %vs, want a strict hold's 62s", dec.Outcome, at(dec))
	}
}
