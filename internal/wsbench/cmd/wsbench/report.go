package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/preheatdev/preheat/internal/wsbench"
)

// record is one target's measurements in one round, as bench/tap.sh writes
// them: one JSON object a line.
type record struct {
	Round  int    `json:"round"`
	Target string `json:"target"`
	// Sat and Fixed are the saturation and fixed-rate runs; SatCPU and
	// FixedCPU the proxy's CPU seconds (user+system, all its processes)
	// over each whole run, and SatFrames and FixedFrames the frames it
	// recorded (tap only).
	Sat         *wsbench.Result `json:"sat"`
	SatCPU      float64         `json:"sat_cpu_s"`
	SatFrames   float64         `json:"sat_frames"`
	Fixed       *wsbench.Result `json:"fixed"`
	FixedCPU    float64         `json:"fixed_cpu_s"`
	FixedFrames float64         `json:"fixed_frames"`
	// Idle connections and the proxy's resident memory, in KiB, before
	// they were opened and while they were held.
	IdleConns   int     `json:"idle_conns"`
	RSSBeforeKB float64 `json:"rss_before_kb"`
	RSSIdleKB   float64 `json:"rss_idle_kb"`
	// Dropped counts sessions the tap dropped or cut: a capture run that
	// dropped any did less than capture everything.
	Dropped float64 `json:"dropped"`
	// GoBefore and GoIdle are the tap's Go memory figures before and
	// while the idle connections were held.
	GoBefore *goMem `json:"go_before"`
	GoIdle   *goMem `json:"go_idle"`
	// LoadAvg is the machine's load average when the record was written.
	LoadAvg string `json:"loadavg"`
}

type goMem struct {
	HeapInuse  float64 `json:"heap_inuse"`
	StackInuse float64 `json:"stack_inuse"`
	Goroutines float64 `json:"goroutines"`
}

// figures are the per-target numbers the table shows.
type figures struct {
	satRate, p50, p99, p999, cpuFixed, cpuSat, idleKB float64
	late, framePerMsg, dropped                        float64
	// Per idle connection, from the Go runtime (tap only): heap and
	// stack KiB, and goroutines.
	heapKB, stackKB, goroutines float64
}

func (r *record) figures() figures {
	f := figures{
		cpuFixed: math.NaN(), cpuSat: math.NaN(), idleKB: math.NaN(),
		satRate: r.Sat.MessagesPerSec, p50: r.Fixed.RTT.P50, p99: r.Fixed.RTT.P99, p999: r.Fixed.RTT.P999,
		late: float64(r.Fixed.Late), dropped: r.Dropped,
	}
	if r.Target != "direct" {
		f.cpuFixed = r.FixedCPU / float64(r.Fixed.Total) * 1e6
		f.cpuSat = r.SatCPU / float64(r.Sat.Total) * 1e6
		f.idleKB = (r.RSSIdleKB - r.RSSBeforeKB) / float64(r.IdleConns)
	}
	f.heapKB, f.stackKB, f.goroutines = math.NaN(), math.NaN(), math.NaN()
	if r.GoBefore != nil && r.GoIdle != nil && r.IdleConns > 0 {
		n := float64(r.IdleConns)
		f.heapKB = (r.GoIdle.HeapInuse - r.GoBefore.HeapInuse) / 1024 / n
		f.stackKB = (r.GoIdle.StackInuse - r.GoBefore.StackInuse) / 1024 / n
		f.goroutines = (r.GoIdle.Goroutines - r.GoBefore.Goroutines) / n
	}
	if r.Fixed.Total > 0 {
		f.framePerMsg = r.FixedFrames / float64(r.Fixed.Total)
	}
	return f
}

// report reads records from in and writes markdown tables to out: the
// median of each figure over the rounds (with the range when there were
// several), ratios to nginx, the capture's CPU per frame, and each round.
func report(in io.Reader, out io.Writer) error {
	var recs []record
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("parse record %q: %w", line, err)
		}
		if r.Sat == nil || r.Fixed == nil {
			return fmt.Errorf("record for %q round %d lacks a run", r.Target, r.Round)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("no records to report")
	}
	var targets []string
	by := map[string][]figures{}
	rounds := 0
	for i := range recs {
		r := &recs[i]
		if _, ok := by[r.Target]; !ok {
			targets = append(targets, r.Target)
		}
		by[r.Target] = append(by[r.Target], r.figures())
		rounds = max(rounds, r.Round)
	}
	med := func(t string, get func(figures) float64) (m, lo, hi float64) {
		var xs []float64
		for _, f := range by[t] {
			if x := get(f); !math.IsNaN(x) {
				xs = append(xs, x)
			}
		}
		if len(xs) == 0 {
			return math.NaN(), math.NaN(), math.NaN()
		}
		slices.Sort(xs)
		n := len(xs)
		m = xs[n/2]
		if n%2 == 0 {
			m = (xs[n/2-1] + xs[n/2]) / 2
		}
		return m, xs[0], xs[n-1]
	}
	cell := func(t string, get func(figures) float64, prec int) string {
		m, lo, hi := med(t, get)
		if math.IsNaN(m) {
			return "–"
		}
		s := fmt.Sprintf("%.*f", prec, m)
		if len(by[t]) > 1 {
			s += fmt.Sprintf(" (%.*f–%.*f)", prec, lo, prec, hi)
		}
		return s
	}
	ratio := func(t string, get func(figures) float64) string {
		m, _, _ := med(t, get)
		b, _, _ := med("nginx", get)
		if math.IsNaN(m) || math.IsNaN(b) || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", m/b)
	}
	satRate := func(f figures) float64 { return f.satRate }
	p50 := func(f figures) float64 { return f.p50 }
	p99 := func(f figures) float64 { return f.p99 }
	p999 := func(f figures) float64 { return f.p999 }
	cpuFixed := func(f figures) float64 { return f.cpuFixed }
	cpuSat := func(f figures) float64 { return f.cpuSat }
	idleKB := func(f figures) float64 { return f.idleKB }

	sat, fixed := recs[0].Sat, recs[0].Fixed
	fmt.Fprintf(out, "Median of %d round(s); the range over rounds in brackets. Saturation: %d connections closed loop for %.0f s; "+
		"round trips: %d connections at %.0f msg/s in aggregate for %.0f s; idle: %d connections. CPU is the proxy's "+
		"user+system time per message echoed (one message in, one out).\n\n",
		rounds, sat.Conns, sat.Seconds, fixed.Conns, fixed.Rate, fixed.Seconds, recs[0].IdleConns)
	fmt.Fprintln(out, "| target | msg/s at saturation | vs nginx | RTT p50 µs | RTT p99 µs | p99 vs nginx | RTT p99.9 µs | proxy CPU µs/msg (fixed rate) | proxy CPU µs/msg (saturation) | KiB per idle conn |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range targets {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t,
			cell(t, satRate, 0), ratio(t, satRate), cell(t, p50, 0), cell(t, p99, 0), ratio(t, p99), cell(t, p999, 0),
			cell(t, cpuFixed, 1), cell(t, cpuSat, 1), cell(t, idleKB, 1))
	}

	if _, ok := by["tap-on"]; ok {
		if _, ok := by["tap-off"]; ok {
			// CPU per captured frame: the extra CPU per message that
			// capture costs, over the frames recorded per message.
			perFrame := func(cpu func(figures) float64) string {
				on, _, _ := med("tap-on", cpu)
				off, _, _ := med("tap-off", cpu)
				fpm, _, _ := med("tap-on", func(f figures) float64 { return f.framePerMsg })
				if fpm == 0 || math.IsNaN(fpm) {
					return "–"
				}
				return fmt.Sprintf("%.2f µs (%.1f µs/msg more than capture off, %.2f frames recorded per message)", (on-off)/fpm, on-off, fpm)
			}
			fmt.Fprintf(out, "\nCPU per captured frame: %s at the fixed rate; %s at saturation.\n", perFrame(cpuFixed), perFrame(cpuSat))
			var dropped float64
			for _, f := range by["tap-on"] {
				dropped += f.dropped
			}
			fmt.Fprintf(out, "Sessions the capturing tap dropped or cut: %.0f.\n", dropped)
		}
	}
	for _, t := range targets {
		if h, _, _ := med(t, func(f figures) float64 { return f.heapKB }); !math.IsNaN(h) {
			st, _, _ := med(t, func(f figures) float64 { return f.stackKB })
			g, _, _ := med(t, func(f figures) float64 { return f.goroutines })
			fmt.Fprintf(out, "%s per idle connection, from the Go runtime: heap in use %.1f KiB, stacks %.1f KiB, %.1f goroutines.\n", t, h, st, g)
		}
	}
	if _, ok := by["nginx"]; ok {
		if _, ok := by["tap-on"]; ok {
			on, _, _ := med("tap-on", satRate)
			ng, _, _ := med("nginx", satRate)
			p99on, _, _ := med("tap-on", p99)
			p99ng, _, _ := med("nginx", p99)
			idle, _, _ := med("tap-on", idleKB)
			verdict := func(ok bool) string {
				if ok {
					return "met"
				}
				return "MISSED"
			}
			fmt.Fprintf(out, "\nAims for the tap capturing everything (medians): messages/s %.2f× nginx's (aim ≥ 0.9×): %s; "+
				"p99 round trip %.2f× nginx's (aim ≤ 1.1×): %s; %.1f KiB per idle connection (aim ≤ 16 KiB): %s.\n",
				on/ng, verdict(on/ng >= 0.9), p99on/p99ng, verdict(p99on/p99ng <= 1.1), idle, verdict(idle <= 16))
		}
	}
	var late []string
	for _, t := range targets {
		if m, _, hi := med(t, func(f figures) float64 { return f.late }); hi > 0 {
			late = append(late, fmt.Sprintf("%s %.0f (max %.0f)", t, m, hi))
		}
	}
	if len(late) > 0 {
		fmt.Fprintf(out, "Fixed-rate sends more than one interval late (median per run): %s.\n", strings.Join(late, ", "))
	}

	fmt.Fprint(out, "\nEach round:\n\n")
	fmt.Fprintln(out, "| round | target | msg/s sat | p50 µs | p99 µs | p99.9 µs | max µs | CPU µs/msg fixed | CPU µs/msg sat | KiB/idle conn | load average after |")
	fmt.Fprintln(out, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for i := range recs {
		r := &recs[i]
		f := r.figures()
		fmt.Fprintf(out, "| %d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n", r.Round, r.Target,
			f.satRate, f.p50, f.p99, f.p999, r.Fixed.RTT.Max, num(f.cpuFixed, 1), num(f.cpuSat, 1), num(f.idleKB, 1), r.LoadAvg)
	}
	return nil
}

func num(x float64, prec int) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, x)
}
