// Command loadgen measures what `preheat loadtest` costs the machine it runs
// on, beside a bare websocket client, at the same fixed message rate
// against the same echo server. It makes the figures of
// docs/benchmarks-loadtest.md, section 3:
//
//	go run ./bench/loadgen [flags]    # about (duration + 15s) x 2 x rounds
//
// It builds preheat and wsbench, writes a corpus file of --sessions
// sessions, each a connect and then one query every --conns/--rate
// seconds for --duration (a query's recorded answer 1ms after it, with
// --results), and starts `wsbench echo` on loopback. Then, --rounds times,
// it runs, each in a process of its own and one after the other:
//
//	A  preheat loadtest --source CORPUS --concurrency CONNS --speed 1 ...
//	   (the closed model: CONNS sessions at once, each at its recorded pace)
//	B  wsbench load --conns CONNS --rate RATE (open loop, the same
//	   coder/websocket library, 256 prepared queries a connection)
//
// and reads each process's CPU time (user + system) from wait4, its peak
// resident set size from its own /proc/PID/status (VmHWM, sampled every
// 100ms; wait4's ru_maxrss is recorded too, but it can count the memory of
// this process, whose copy the child was before it exec'd), and for A also
// the CPU and the peak resident set it had when its corpus was loaded
// (/proc/PID/stat and VmHWM at its "loadtest: starting" line). A message
// is a query sent and its echo received; both clients send the same number
// at the same rate. Each run's record goes to --out as a JSON line; the
// summary, medians and ranges and the ratio of each A to the B that
// follows it, to standard output.
//
// With --load-only, each load test is stopped (killed) at its "loadtest:
// starting" line, and no bare client runs: what loading and planning the
// corpus costs, alone, in seconds a round.
//
// It is a program and not a test because it is an experiment: minutes
// long, its results figures to read. Everything listens on loopback; every
// process it starts ends before it returns.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	conns           int
	rate            float64
	duration        time.Duration
	rounds          int
	sessions        int
	results         bool
	preheat, wsb    string
	before          string
	out, work       string
	loadtestArgs    string
	gomaxprocs      string
	skipA, skipB    bool
	loadOnly        bool
	sessionInterval time.Duration
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.IntVar(&c.conns, "conns", 200, "connections (loadtest: sessions at once)")
	fs.Float64Var(&c.rate, "rate", 4000, "messages per second over all connections")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long each run sends")
	fs.IntVar(&c.rounds, "rounds", 3, "pairs of runs (loadtest, then the bare client)")
	fs.IntVar(&c.sessions, "sessions", 200, "distinct sessions in the corpus (the load test cycles through them)")
	fs.BoolVar(&c.results, "results", true, "record each query's answer in the corpus, as a tap does (about 1.5 KB each)")
	fs.StringVar(&c.preheat, "preheat", "", "preheat binary (default: built from this module)")
	fs.StringVar(&c.wsb, "wsbench", "", "wsbench binary (default: built from this module)")
	fs.StringVar(&c.before, "preheat-before", "", "a second preheat binary (an older build) to run first in each round, as \"before\"")
	fs.StringVar(&c.out, "out", "", "append each run's record here as a JSON line (default: in the work directory)")
	fs.StringVar(&c.work, "work", "", "work directory, kept (default: a temporary one, removed)")
	fs.StringVar(&c.loadtestArgs, "loadtest-args", "", "extra flags for preheat loadtest, space separated")
	fs.StringVar(&c.gomaxprocs, "gomaxprocs", "", "GOMAXPROCS of both clients (default: unset, every core)")
	fs.BoolVar(&c.skipA, "skip-loadtest", false, "run only the bare client")
	fs.BoolVar(&c.skipB, "skip-bare", false, "run only the load test")
	fs.BoolVar(&c.loadOnly, "load-only", false, "stop each load test once its corpus is loaded (its \"loadtest: starting\" line), and run no bare client: the corpus load alone")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.conns <= 0 || c.rate <= 0 || c.duration <= 0 || c.rounds <= 0 || c.sessions <= 0 {
		return errors.New("--conns, --rate, --duration, --rounds and --sessions must be positive")
	}
	c.skipB = c.skipB || c.loadOnly
	c.sessionInterval = time.Duration(float64(time.Second) * float64(c.conns) / c.rate)
	if c.work == "" {
		dir, err := os.MkdirTemp("", "loadgen-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	} else if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	if c.out == "" {
		c.out = filepath.Join(c.work, "records.jsonl")
	}
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&c.preheat, "github.com/preheatdev/preheat/cmd/preheat"}, {&c.wsb, "github.com/preheatdev/preheat/internal/wsbench/cmd/wsbench"}} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(c.work, filepath.Base(b.pkg))
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", *b.path, b.pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.pkg, err, out)
		}
	}
	corpusFile := filepath.Join(c.work, "corpus.jsonl")
	size, err := writeCorpus(corpusFile, &c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "corpus: %d sessions of %d queries each (%.1f MB of JSON lines), %d connections at %.0f msg/s for %v, %d rounds\n",
		c.sessions, queriesPerSession(&c), float64(size)/1e6, c.conns, c.rate, c.duration, c.rounds)

	echoCtx, stopEcho := context.WithCancel(ctx)
	addr, waitEcho, err := startEcho(echoCtx, c.wsb)
	if err != nil {
		stopEcho()
		return err
	}
	defer func() {
		stopEcho()
		waitEcho()
	}()
	target := "ws://" + addr + "/sync"

	out, err := os.OpenFile(c.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	var recs []record
	for round := range c.rounds {
		for _, kind := range []string{"before", "loadtest", "bare"} {
			if (kind == "loadtest" && c.skipA) || (kind == "bare" && c.skipB) || (kind == "before" && c.before == "") {
				continue
			}
			var rec record
			var err error
			switch kind {
			case "before":
				rec, err = runLoadtest(ctx, &c, c.before, corpusFile, target, filepath.Join(c.work, fmt.Sprintf("report-before-%d", round)))
				rec.Kind = "before"
			case "loadtest":
				rec, err = runLoadtest(ctx, &c, c.preheat, corpusFile, target, filepath.Join(c.work, fmt.Sprintf("report-%d", round)))
			default:
				rec, err = runBare(ctx, &c, target)
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, kind, err)
			}
			rec.Round = round + 1
			rec.At = time.Now().UTC().Format(time.RFC3339)
			rec.Load1 = loadAverage()
			if b, err := json.Marshal(rec); err == nil {
				out.Write(append(b, '\n'))
			}
			fmt.Fprintln(stdout, rec)
			recs = append(recs, rec)
		}
	}
	summarize(stdout, recs, c.loadOnly)
	return nil
}

// record is one run's measurements.
type record struct {
	Round    int     `json:"round"`
	At       string  `json:"at"`
	Kind     string  `json:"kind"` // "loadtest" or "bare"
	Messages int64   `json:"messages"`
	Failed   int64   `json:"failed"` // messages not answered (loadtest: timeouts and closed; bare: mismatched)
	Wall     float64 `json:"wall_s"`
	CPU      float64 `json:"cpu_s"`
	LoadCPU  float64 `json:"load_cpu_s"`   // loadtest: CPU used before its run started (the corpus load)
	MaxRSS   float64 `json:"maxrss_mib"`   // wait4's ru_maxrss: may count this process's memory from before the child's exec
	HWM      float64 `json:"hwm_mib"`      // the process's own peak resident set (VmHWM), the last read of it, every 100ms
	LoadHWM  float64 `json:"load_hwm_mib"` // loadtest: VmHWM when its corpus was loaded, the peak of the load
	RunRSS   float64 `json:"run_rss_mib"`  // the most resident memory seen during the run, sampled every 100ms (loadtest: after the corpus load)
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Load1    string  `json:"load1"`
}

func (r record) perCPU() float64 { return float64(r.Messages) / r.CPU }

// runCPU is the CPU of the run itself, the corpus load aside.
func (r record) runCPU() float64 { return r.CPU - r.LoadCPU }

func (r record) String() string {
	return fmt.Sprintf("round %d %-8s %7d msgs (%d unanswered) in %5.1fs: cpu %.2fs (load %.2fs) = %6.0f msgs/cpu-s (%6.0f without the load), peak rss %5.1f MiB (load %5.1f, run %5.1f, wait4 %5.1f), p50 %.2fms p99 %.2fms, load1 %s",
		r.Round, r.Kind, r.Messages, r.Failed, r.Wall, r.CPU, r.LoadCPU, r.perCPU(), float64(r.Messages)/r.runCPU(), r.HWM, r.LoadHWM, r.RunRSS, r.MaxRSS, r.P50, r.P99, r.Load1)
}

func queriesPerSession(c *config) int { return int(c.duration / c.sessionInterval) }

// writeCorpus writes the sessions: session i's messages are offset by
// i/sessions of an interval, so that the load test's sessions, all started
// at once, spread their sends as the bare client's staggered connections
// do.
func writeCorpus(path string, c *config) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	q := queriesPerSession(c)
	for i := range c.sessions {
		phase := c.sessionInterval * time.Duration(i) / time.Duration(c.sessions)
		evs := corpus.New(uint64(1+i)).PacedSession(start.Add(time.Duration(i)*time.Millisecond), phase, c.sessionInterval, q, c.results)
		for j := range evs {
			if err := enc.Encode(evs[j].ToJSON()); err != nil {
				return 0, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// startEcho starts `wsbench echo` on loopback and returns its address and a
// function that waits for it once ctx is done.
func startEcho(ctx context.Context, bin string) (string, func(), error) {
	cmd := exec.CommandContext(ctx, bin, "echo", "--listen", "127.0.0.1:0", "--max-duration", "24h")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	wait := func() { _ = cmd.Wait() }
	rx := regexp.MustCompile(`addr=(\S+)`)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := rx.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, stderr) // ends when the process does
			return m[1], wait, nil
		}
	}
	_ = cmd.Process.Kill()
	wait()
	return "", nil, errors.New("wsbench echo did not say its address")
}

func clientEnv(c *config) []string {
	env := os.Environ()
	if c.gomaxprocs != "" {
		env = append(env, "GOMAXPROCS="+c.gomaxprocs)
	}
	return env
}

func runLoadtest(ctx context.Context, c *config, bin, corpusFile, target, report string) (record, error) {
	rec := record{Kind: "loadtest"}
	args := []string{"loadtest", "--source", corpusFile, "--target", target,
		"--concurrency", strconv.Itoa(c.conns), "--duration", c.duration.String(), "--speed", "1",
		"--drain", "15s", "--progress", "0", "--abort-after", "0", "--report", report}
	if c.loadtestArgs != "" {
		args = append(args, strings.Fields(c.loadtestArgs)...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = clientEnv(c)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return rec, err
	}
	var tail strings.Builder
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return rec, err
	}
	pid := cmd.Process.Pid
	hwm := make(chan float64, 1)
	stopHWM := make(chan struct{})
	go func() { hwm <- sampleStatus(pid, "VmHWM:", stopHWM) }()
	sampled := make(chan float64, 1)
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	started := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "loadtest: starting") && !started {
			started = true
			rec.LoadCPU = procCPU(pid)
			rec.LoadHWM = statusMiB(pid, "VmHWM:")
			if c.loadOnly {
				_ = cmd.Process.Kill() // its standard error ends with it
			} else {
				go func() { sampled <- sampleStatus(pid, "VmRSS:", stopSampling) }()
			}
		}
		if tail.Len() < 8192 {
			tail.WriteString(line + "\n")
		}
	}
	err = cmd.Wait()
	close(stopHWM)
	rec.HWM = <-hwm
	rec.Wall = time.Since(t0).Seconds()
	readUsage(&rec, cmd.ProcessState)
	if c.loadOnly {
		if !started {
			return rec, fmt.Errorf("the load test did not start: %v\n%s", err, tail.String())
		}
		rec.HWM = max(rec.HWM, rec.LoadHWM)
		return rec, nil
	}
	if started {
		rec.RunRSS = <-sampled
	}
	if err != nil {
		return rec, fmt.Errorf("%w\n%s", err, tail.String())
	}
	b, err := os.ReadFile(filepath.Join(report, "loadtest-report.json"))
	if err != nil {
		return rec, err
	}
	var res loadtest.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return rec, err
	}
	tr := res.Targets[0]
	rec.Messages = int64(tr.Responses)
	rec.Failed = int64(tr.Sent - tr.Responses) // every message sent is answered by the echo
	rec.P50, rec.P99 = tr.Latency.P50, tr.Latency.P99
	return rec, nil
}

func runBare(ctx context.Context, c *config, target string) (record, error) {
	rec := record{Kind: "bare"}
	cmd := exec.CommandContext(ctx, c.wsb, "load", "--url", target, "--conns", strconv.Itoa(c.conns),
		"--rate", strconv.FormatFloat(c.rate, 'f', -1, 64), "--duration", c.duration.String(), "--warmup", "0", "--max-conns", "100000")
	cmd.Env = clientEnv(c)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return rec, err
	}
	stopSampling := make(chan struct{})
	sampled, hwm := make(chan float64, 1), make(chan float64, 1)
	go func() { sampled <- sampleStatus(cmd.Process.Pid, "VmRSS:", stopSampling) }()
	go func() { hwm <- sampleStatus(cmd.Process.Pid, "VmHWM:", stopSampling) }()
	err := cmd.Wait()
	close(stopSampling)
	rec.RunRSS, rec.HWM = <-sampled, <-hwm
	rec.Wall = time.Since(t0).Seconds()
	readUsage(&rec, cmd.ProcessState)
	if err != nil {
		return rec, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	var res struct {
		Total      int64 `json:"total"`
		Mismatched int64 `json:"mismatched"`
		RTT        struct {
			P50 float64 `json:"p50_us"`
			P99 float64 `json:"p99_us"`
		} `json:"rtt"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		return rec, fmt.Errorf("wsbench output: %w", err)
	}
	rec.Messages, rec.Failed = res.Total, res.Mismatched
	rec.P50, rec.P99 = res.RTT.P50/1000, res.RTT.P99/1000
	return rec, nil
}

func readUsage(rec *record, ps *os.ProcessState) {
	if ps == nil {
		return
	}
	rec.CPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rec.MaxRSS = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
}

// procCPU returns the CPU seconds process pid has used so far, from
// /proc/PID/stat; 0 if it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of those.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 a second on Linux
}

// sampleStatus returns the largest value of the field (such as "VmRSS:")
// of process pid's /proc/PID/status, in MiB, read every 100ms until stop
// is closed or the process is gone.
func sampleStatus(pid int, field string, stop <-chan struct{}) float64 {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	most := 0.0
	for {
		v, ok := status(pid, field)
		if !ok {
			return most
		}
		most = max(most, v)
		select {
		case <-t.C:
		case <-stop:
			return most
		}
	}
}

// statusMiB returns the field (such as "VmHWM:", in kB) of process pid's
// /proc/PID/status, in MiB; 0 if it cannot be read.
func statusMiB(pid int, field string) float64 {
	v, _ := status(pid, field)
	return v
}

// status returns the field of process pid's /proc/PID/status, in MiB; ok
// is false when the process is gone or its memory is (it is exiting).
func status(pid int, field string) (mib float64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024, true
		}
	}
	return 0, false
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Fields(string(b))[0]
}

// summarize prints medians and ranges by kind, and the ratio of each load
// test run to the bare run that follows it; with loadOnly, only the CPU and
// the memory of the corpus load.
func summarize(w io.Writer, recs []record, loadOnly bool) {
	by := map[string][]record{}
	for _, r := range recs {
		by[r.Kind] = append(by[r.Kind], r)
	}
	stat := func(kind string, f func(record) float64) string {
		var v []float64
		for _, r := range by[kind] {
			v = append(v, f(r))
		}
		if len(v) == 0 {
			return "-"
		}
		slices.Sort(v)
		return fmt.Sprintf("%.4g (%.4g – %.4g)", median(v), v[0], v[len(v)-1])
	}
	kinds := []string{"loadtest", "bare"}
	if len(by["before"]) > 0 {
		kinds = []string{"before", "loadtest", "bare"}
	}
	if loadOnly {
		kinds = kinds[:len(kinds)-1] // no bare client ran
	}
	fmt.Fprintf(w, "\n| median (range) | %s |\n|%s\n", strings.Join(kinds, " | "), strings.Repeat(" --- |", len(kinds)+1))
	rows := []struct {
		name string
		f    func(record) float64
	}{
		{"messages per CPU-second", record.perCPU},
		{"messages per CPU-second, corpus load aside", func(r record) float64 { return float64(r.Messages) / r.runCPU() }},
		{"CPU seconds", func(r record) float64 { return r.CPU }},
		{"CPU seconds of the corpus load", func(r record) float64 { return r.LoadCPU }},
		{"peak RSS (VmHWM), MiB", func(r record) float64 { return r.HWM }},
		{"peak RSS while loading the corpus (VmHWM), MiB", func(r record) float64 { return r.LoadHWM }},
		{"peak RSS (wait4), MiB", func(r record) float64 { return r.MaxRSS }},
		{"most RSS during the run, MiB", func(r record) float64 { return r.RunRSS }},
		{"messages answered", func(r record) float64 { return float64(r.Messages) }},
		{"round trip p50, ms", func(r record) float64 { return r.P50 }},
		{"round trip p99, ms", func(r record) float64 { return r.P99 }},
	}
	if loadOnly {
		rows = slices.DeleteFunc(rows, func(r struct {
			name string
			f    func(record) float64
		}) bool {
			return !strings.Contains(r.name, "CPU seconds") && !strings.Contains(r.name, "peak RSS")
		})
	}
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |", row.name)
		for _, k := range kinds {
			fmt.Fprintf(w, " %s |", stat(k, row.f))
		}
		fmt.Fprintln(w)
	}
	if loadOnly {
		return
	}
	// Each load test run against the bare run of its round.
	bare := map[int]record{}
	for _, r := range recs {
		if r.Kind == "bare" {
			bare[r.Round] = r
		}
	}
	for _, k := range kinds[:len(kinds)-1] {
		var whole, run []string
		for _, r := range recs {
			if b, ok := bare[r.Round]; ok && r.Kind == k {
				whole = append(whole, fmt.Sprintf("%.2f", r.perCPU()/b.perCPU()))
				run = append(run, fmt.Sprintf("%.2f", float64(r.Messages)/r.runCPU()/b.perCPU()))
			}
		}
		if len(whole) > 0 {
			fmt.Fprintf(w, "\nmessages per CPU-second, %s / bare, each round: %s; corpus load aside: %s\n", k, strings.Join(whole, ", "), strings.Join(run, ", "))
		}
	}
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
