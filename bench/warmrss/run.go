package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/coldserver"
	"github.com/preheatdev/preheat/replayer"
)

// spec is one run's settings.
type spec struct {
	Sessions    int           // sessions in the corpus
	Queries     int           // client messages of each session after its connect
	Pad         int           // bytes added to each server message
	Concurrency int           // preheat warm --concurrency
	Rate        float64       // preheat warm --rate
	Duration    time.Duration // preheat warm --min-warm: the replay lasts at least this
}

// vary returns s with the settings in v changed: comma-separated
// KEY=VALUE pairs, the keys sessions, queries, pad, concurrency, rate and
// duration.
func (s spec) vary(v string) (spec, error) {
	for kv := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return s, fmt.Errorf("--vary %q: want KEY=VALUE", kv)
		}
		var err error
		switch k {
		case "sessions":
			s.Sessions, err = strconv.Atoi(val)
		case "queries":
			s.Queries, err = strconv.Atoi(val)
		case "pad":
			s.Pad, err = strconv.Atoi(val)
		case "concurrency":
			s.Concurrency, err = strconv.Atoi(val)
		case "rate":
			s.Rate, err = strconv.ParseFloat(val, 64)
		case "duration":
			s.Duration, err = time.ParseDuration(val)
		default:
			return s, fmt.Errorf("--vary %q: unknown key %q (sessions, queries, pad, concurrency, rate, duration)", kv, k)
		}
		if err != nil {
			return s, fmt.Errorf("--vary %q: %w", kv, err)
		}
	}
	return s, s.check()
}

func (s spec) check() error {
	if s.Sessions <= 0 || s.Queries <= 0 || s.Pad < 0 || s.Concurrency <= 0 || s.Rate <= 0 || s.Duration <= 0 {
		return fmt.Errorf("sessions %d, queries %d, pad %d, concurrency %d, rate %v, duration %v: pad must not be negative, the others must be positive",
			s.Sessions, s.Queries, s.Pad, s.Concurrency, s.Rate, s.Duration)
	}
	return nil
}

// result is one run's measurements.
type result struct {
	Spec   spec
	Corpus corpusStats

	Run       time.Duration // from warm's start line to its report: the replay and the canary
	PeakRSS   int64         // VmHWM once the report was written, or VmRSS sampled later if larger
	MedianRSS int64         // median VmRSS sampled during the replay
	EndRSS    int64         // VmRSS once the report was written
	IdleRSS   int64         // VmRSS --after the report; 0 without --after
	CPU       time.Duration // user and system CPU until the report
	Outcome   string        // the warm decision's outcome
	Canary    string        // the canary's outcome, "" without one
	CanaryN   uint64        // sessions the canary replayed to the candidate
	after     time.Duration // --after
	Stats     replayer.Stats
}

func (r result) String() string {
	return fmt.Sprintf("%d sessions x %d queries (%.0f KiB/session), concurrency %d, rate %.0f: ran %v, "+
		"peak RSS %.1f MiB, median %.1f MiB, end %.1f MiB, CPU %.2fs (%.0fm), %d messages sent, %d responses, %d sessions started, outcome %s",
		r.Spec.Sessions, r.Spec.Queries, float64(r.Corpus.PayloadBytes)/float64(r.Corpus.Sessions)/1024,
		r.Spec.Concurrency, r.Spec.Rate, r.Run.Round(100*time.Millisecond),
		mib(r.PeakRSS), mib(r.MedianRSS), mib(r.EndRSS), r.CPU.Seconds(), millicores(r.CPU, r.Run),
		r.Stats.MessagesSent, r.Stats.Responses, r.Stats.SessionsStarted, r.Outcome) + r.canary() + r.idle()
}

func (r result) canary() string {
	if r.Canary == "" {
		return ""
	}
	return fmt.Sprintf(", canary %s over %d sessions", r.Canary, r.CanaryN)
}

func (r result) idle() string {
	if r.IdleRSS == 0 {
		return ""
	}
	return fmt.Sprintf(", RSS %.1f MiB %v after the report", mib(r.IdleRSS), r.after)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// millicores is CPU time as a share of wall time, in thousandths of a core.
func millicores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 1000 * cpu.Seconds() / wall.Seconds()
}

// median returns the median of v, 0 for none. It sorts v.
func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// env returns this process's environment without the Go runtime's memory
// and scheduling settings, so that a child sees only what extra sets.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG", "PREHEAT_CACHE_TOKEN", "PREHEAT_METRICS_TOKEN":
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// startCache starts `preheat cache` on the directory log at dir and waits
// until it holds n sessions.
func startCache(ctx context.Context, bin, dir string, n int) (*child, string, error) {
	c, err := startChild("preheat cache", bin, []string{"cache", "--stream", "file://" + dir,
		"--listen", "127.0.0.1:0", "--window", "24h"}, env())
	if err != nil {
		return nil, "", err
	}
	line, _, err := c.waitLine(ctx, 0, "cache listening", 30*time.Second)
	if err != nil {
		c.stop(5 * time.Second)
		return nil, "", err
	}
	url := "http://" + logAddr(line)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var st struct {
			Sessions int `json:"sessions"`
		}
		if err := getJSON(ctx, url+"/v1/status", &st); err == nil && st.Sessions >= n {
			return c, url, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop(5 * time.Second)
			return nil, "", fmt.Errorf("cache holds %d of %d sessions after 5m", st.Sessions, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// target is a cold simulated sync server on loopback.
type target struct {
	sim  *coldserver.Server
	srv  *http.Server
	addr string
	done chan struct{}
}

// startTarget starts a simulated server as `preheat demo` starts its
// servers (internal/demo/servers.go): scale is coldserver.Options.Scale;
// warm starts it warm, a pod of the version in service.
func startTarget(scale float64, warm bool) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sim := coldserver.New(&coldserver.Options{Scale: scale, Seed: 1, Warm: warm})
	t := &target{sim: sim, addr: ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: sim, ErrorLog: log.New(io.Discard, "", 0)}}
	go func() {
		defer close(t.done)
		_ = t.srv.Serve(ln)
	}()
	return t, nil
}

func (t *target) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.sim.Close() // ends the websocket handlers, which Shutdown does not wait for
	_ = t.srv.Shutdown(ctx)
	<-t.done
}

// warmToken is the warm-up credential the runs put in WARMUP_TOKEN, for
// the manifest's --header and --rewrite.
const warmToken = "warmrss-token-0123456789abcdef"

// canaryTime is what a run with a canary adds to --deadline: time for the
// server to turn warm after --min-warm, and for the canary phase (a minute
// by default) after that.
const canaryTime = 2 * time.Minute

// warmArgs are the manifest's warmer flags
// (deploy/kubernetes/base/sync-server/deployment.yaml) with the addresses
// of this machine, the run's --rate and --concurrency, and --min-warm and
// --deadline both s.Duration: the replay lasts that long, the pod warm or
// not. With a reference (refAddr not ""), also the manifest's --canary and
// --on-regression, and --deadline canaryTime later.
func warmArgs(s spec, targetAddr, refAddr, cacheURL, report string) []string {
	deadline := s.Duration
	if refAddr != "" {
		deadline += canaryTime
	}
	args := []string{"warm",
		"--target=ws://" + targetAddr + "/sync",
		"--metrics=http://" + targetAddr + "/metrics",
		"--cache=" + cacheURL,
		"--ready-addr=127.0.0.1:0",
		"--header=Authorization: Bearer ${WARMUP_TOKEN}",
		"--rewrite=token=unredact:${WARMUP_TOKEN}",
		"--rate=" + strconv.FormatFloat(s.Rate, 'f', -1, 64),
		"--concurrency=" + strconv.Itoa(s.Concurrency),
		"--min-warm=" + s.Duration.String(),
		"--deadline=" + deadline.String(),
		"--report=" + report,
		"--log-format=json",
	}
	if refAddr != "" {
		args = append(args, "--canary=ws://"+refAddr+"/sync", "--on-regression=hold")
	}
	return args
}

// runOne measures one run of preheat warm against a fresh cold server, fed
// by a fresh cache of the corpus at dir.
func runOne(ctx context.Context, c *config, s spec, dir string, cs corpusStats, work string) (result, error) {
	res := result{Spec: s, Corpus: cs, after: c.after}
	cache, cacheURL, err := startCache(ctx, c.preheat, dir, cs.Sessions)
	if err != nil {
		return res, err
	}
	defer cache.stop(10 * time.Second)
	tgt, err := startTarget(c.scale, false)
	if err != nil {
		return res, err
	}
	defer tgt.close()
	var refAddr string
	if c.canary {
		ref, err := startTarget(c.scale, true)
		if err != nil {
			return res, err
		}
		defer ref.close()
		refAddr = ref.addr
	}

	report, err := os.MkdirTemp(work, "report-")
	if err != nil {
		return res, err
	}
	extra := []string{"WARMUP_TOKEN=" + warmToken}
	if c.gomemlimit != "" {
		extra = append(extra, "GOMEMLIMIT="+c.gomemlimit)
	}
	w, err := startChild("preheat warm", c.preheat, warmArgs(s, tgt.addr, refAddr, cacheURL, report), env(extra...))
	if err != nil {
		return res, err
	}
	defer w.stop(10 * time.Second)
	samp := startSampler(w.pid(), c.sample)
	defer samp.Stop()

	line, i, err := w.waitLine(ctx, 0, "warm: serving /readyz", 30*time.Second)
	if err != nil {
		return res, err
	}
	readyURL := "http://" + logAddr(line)
	if _, i, err = w.waitLine(ctx, i, "warm: starting", 30*time.Second); err != nil {
		return res, err
	}
	start := time.Now()
	if _, _, err = w.waitLine(ctx, i, "warm: report written", s.Duration+canaryTime+2*time.Minute); err != nil {
		return res, err
	}
	end := time.Now()
	res.Run = end.Sub(start)

	pid := w.pid()
	m, err := readMemory(pid)
	if err != nil {
		return res, err
	}
	res.PeakRSS, res.EndRSS = m.HWM, m.RSS
	if res.CPU, err = readCPU(pid); err != nil {
		return res, err
	}
	var st struct {
		Replay   replayer.Stats `json:"replay"`
		Decision struct {
			Outcome string `json:"outcome"`
		} `json:"decision"`
		Canary *struct {
			Candidate struct {
				Sessions uint64 `json:"sessions"`
			} `json:"candidate"`
			Result *struct {
				Outcome string `json:"outcome"`
			} `json:"result"`
		} `json:"canary"`
	}
	if err := getJSON(ctx, readyURL+"/status", &st); err != nil {
		return res, fmt.Errorf("warm /status: %w", err)
	}
	res.Stats, res.Outcome = st.Replay, st.Decision.Outcome
	if st.Canary != nil && st.Canary.Result != nil {
		res.Canary, res.CanaryN = st.Canary.Result.Outcome, st.Canary.Candidate.Sessions
	}
	if c.after > 0 {
		// The sidecar lives on beside the released server: what it keeps.
		select {
		case <-time.After(c.after):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		m, err := readMemory(pid)
		if err != nil {
			return res, err
		}
		res.IdleRSS = m.RSS
	}
	// Stopped as the kubelet stops it; the sampler sees the shutdown too.
	// wait4's peak (rusage maxrss) would not do: a child started by a
	// vfork-like clone, as os/exec starts it, counts its parent's resident
	// set before the exec as its own.
	ps := w.stop(10 * time.Second)
	samp.Stop()
	res.MedianRSS = median(samp.between(start, end))
	res.PeakRSS = max(res.PeakRSS, slices.Max(append(samp.between(time.Time{}, time.Now()), 0)))
	if !ps.Success() && ps.ExitCode() != -1 {
		return res, fmt.Errorf("preheat warm exited with %v after SIGTERM\n%s", ps, w.tail())
	}
	return res, nil
}
