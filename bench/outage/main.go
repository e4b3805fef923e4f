// Command outage runs a preheat tap (the binary, as an operator runs it)
// capturing into a kinesalite stream under load, takes the stream away for
// a while, and reports what the tap's memory did and what became of every
// session. It makes the figures of docs/benchmarks-outage.md:
//
//	go run ./bench/outage --mode hang --budget 8MiB       # the stream frozen (SIGSTOP)
//	go run ./bench/outage --mode kill --outage 60s        # the stream's server killed, then restarted on its data
//	go run ./bench/outage --tap /tmp/old/preheat --old    # another build of the tap, without the flags this one added
//
// It starts, on loopback: kinesalite (tools/kinesalite, with its data in a
// temporary directory so a killed server restarts with its streams), a
// websocket echo server, the tap in front of it, and clients that open
// sessions of --msgs messages of --size bytes, one after the other, as fast
// as the echoes come back (or --pause apart). After --before, the stream
// is frozen or killed for --outage, then back for --after. The load stops;
// once the tap holds nothing more (or --drain passes), its counters are
// read from its admin listener, and the stream is read back and each
// session in it classified: complete (whole, or cut by the tap) or not.
//
// The report gives the tap's resident memory (VmRSS, sampled every 100 ms)
// at most in each phase, its GC heap goal (go_memstats_next_gc_bytes: with
// GOGC=100, twice the heap found live by the last collection), the session
// counters and the
// identity upgrades = whole + dropped + skipped + cut + lost, and what the
// stream holds against them. Run from the repository root; it needs node
// and tools/kinesalite installed (make kinesalite). Exit status 1 when a
// run fails, 2 for a bad command line.
//
// It is a program and not a test because it is an experiment: it takes
// minutes, its results are figures to read, and it is configured by flags.
// TestExportCountsEverySessionThroughStreamCrash and
// TestExportBudgetBoundsHeapWhileStreamHangs in package capture assert the
// properties it measures.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/wsbench"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis"
)

type options struct {
	tap, mode, budget, deliveryTimeout string
	old                                bool
	clients, msgs, size, shards        int
	pause                              time.Duration
	before, outage, after, drain       time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	fs := flag.NewFlagSet("outage", flag.ContinueOnError)
	fs.StringVar(&o.tap, "tap", "", "preheat binary to run; default build ./cmd/preheat into a temporary directory")
	fs.BoolVar(&o.old, "old", false, "the binary predates --delivery-timeout: do not pass it")
	fs.StringVar(&o.mode, "mode", "hang", "what happens to the stream: hang (SIGSTOP, then SIGCONT) or kill (SIGKILL, then a restart on its data)")
	fs.StringVar(&o.budget, "budget", "8MiB", "the tap's --budget")
	fs.StringVar(&o.deliveryTimeout, "delivery-timeout", "", "the tap's --delivery-timeout; default the tap's")
	fs.IntVar(&o.clients, "clients", 32, "clients opening sessions at once")
	fs.IntVar(&o.msgs, "msgs", 40, "messages a session")
	fs.IntVar(&o.size, "size", 4096, "bytes a message, three quarters incompressible")
	fs.DurationVar(&o.pause, "pause", 0, "wait between a message's echo and the next message; 0 saturates")
	fs.IntVar(&o.shards, "shards", 4, "shards of the stream")
	fs.DurationVar(&o.before, "before", 15*time.Second, "load before the outage")
	fs.DurationVar(&o.outage, "outage", 60*time.Second, "how long the stream is away")
	fs.DurationVar(&o.after, "after", 30*time.Second, "load after the stream is back")
	fs.DurationVar(&o.drain, "drain", 60*time.Second, "after the load, at most this long for the tap to deliver or give up what it holds")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if o.mode != "hang" && o.mode != "kill" {
		fmt.Fprintln(os.Stderr, "outage: --mode is hang or kill")
		os.Exit(2)
	}
	if err := run(ctx, &o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "outage:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, o *options, out io.Writer) error {
	work, err := os.MkdirTemp("", "preheat-outage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if o.tap == "" {
		o.tap = filepath.Join(work, "preheat")
		logf("building ./cmd/preheat")
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", o.tap, "./cmd/preheat").CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v: %s", err, b)
		}
	}

	ks, err := startKinesalite(ctx, "0", filepath.Join(work, "kinesalite"))
	if err != nil {
		return err
	}
	defer func() { ks.stop() }()
	client := awskinesis.New(awskinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ks.endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDBENCH", "secret", ""),
	})
	const streamName = "sessions"
	if err := createStream(ctx, client, streamName, o.shards); err != nil {
		return err
	}

	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	echo := &http.Server{Handler: wsbench.NewEchoHandler(nil)}
	go echo.Serve(echoLn)
	defer echo.Close()

	tapAddr, adminAddr := freeAddr(), freeAddr()
	args := []string{"tap", "--listen", tapAddr, "--upstream", "ws://" + echoLn.Addr().String(),
		"--stream", "kinesis://" + streamName, "--admin-listen", adminAddr, "--budget", o.budget}
	if o.deliveryTimeout != "" && !o.old {
		args = append(args, "--delivery-timeout", o.deliveryTimeout)
	}
	tap := exec.Command(o.tap, args...)
	tap.Env = append(os.Environ(), "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_KINESIS="+ks.endpoint(),
		"AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=secret")
	tapLog, _ := os.Create(filepath.Join(work, "tap.log"))
	tap.Stdout, tap.Stderr = tapLog, tapLog
	if err := tap.Start(); err != nil {
		return fmt.Errorf("start tap: %w", err)
	}
	defer func() {
		tap.Process.Signal(syscall.SIGKILL)
		tap.Wait()
	}()
	if err := waitListening(ctx, tapAddr); err != nil {
		return err
	}
	if err := waitListening(ctx, adminAddr); err != nil {
		return err
	}
	logf("tap %s (pid %d) --budget %s, stream %d shards, %d clients × %d messages of %d bytes",
		o.tap, tap.Process.Pid, o.budget, o.shards, o.clients, o.msgs, o.size)

	// Sample the tap's memory through the phases.
	var phase atomic.Int32
	phases := []string{"before", "outage", "after", "drain"}
	var peakRSS, peakHeap [4]atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	var sampling sync.WaitGroup
	sampling.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			p := phase.Load()
			if kb := rssKB(tap.Process.Pid); kb > peakRSS[p].Load() {
				peakRSS[p].Store(kb)
			}
			if n++; n%5 == 0 { // the heap goal from the admin listener, twice a second
				if m, err := scrape(adminAddr); err == nil {
					if h := int64(m["go_memstats_next_gc_bytes"]); h > peakHeap[p].Load() {
						peakHeap[p].Store(h)
					}
				}
			}
		}
	})

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var load sync.WaitGroup
	var opened, echoErrors atomic.Int64
	msgs := messages(o.msgs, o.size)
	for range o.clients {
		load.Go(func() { clientLoop(loadCtx, "ws://"+tapAddr+"/sync", msgs, o.pause, &opened, &echoErrors) })
	}

	sleep(ctx, o.before)
	phase.Store(1)
	switch o.mode {
	case "hang":
		logf("freezing the stream for %v", o.outage)
		ks.signal(syscall.SIGSTOP)
	case "kill":
		logf("killing the stream's server for %v", o.outage)
		ks.stop()
	}
	sleep(ctx, o.outage)
	switch o.mode {
	case "hang":
		ks.signal(syscall.SIGCONT)
	case "kill":
		if ks, err = startKinesalite(ctx, ks.port, ks.dir); err != nil {
			return fmt.Errorf("restart kinesalite: %w", err)
		}
	}
	logf("the stream is back")
	phase.Store(2)
	sleep(ctx, o.after)
	phase.Store(3)
	stopLoad()
	load.Wait()
	logf("load stopped: %d sessions opened; draining", opened.Load())
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) {
		m, err := scrape(adminAddr)
		if err == nil && m["preheat_tap_recordings_active"] == 0 && m["preheat_tap_buffer_bytes"] == 0 &&
			m["preheat_kinesis_producer_buffered_bytes"] == 0 {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	stopSampling()
	sampling.Wait()
	m, err := scrape(adminAddr)
	if err != nil {
		return fmt.Errorf("read the tap's metrics: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	logf("reading the stream back")
	inStream, err := readSessions(ctx, client, streamName)
	if err != nil {
		return err
	}
	report(out, o, m, inStream, opened.Load(), echoErrors.Load(), phases, &peakRSS, &peakHeap)
	return nil
}

func report(out io.Writer, o *options, m map[string]float64, inStream map[session.ID][]session.Event,
	opened, echoErrors int64, phases []string, peakRSS, peakHeap *[4]atomic.Int64) {
	sum := func(prefix string) float64 {
		t := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, prefix) {
				t += v
			}
		}
		return t
	}
	upgrades := m[`preheat_tap_requests_total{kind="websocket"}`] - sum("preheat_tap_upgrade_failures_total")
	recorded := m["preheat_tap_sessions_recorded_total"]
	dropped := sum("preheat_tap_sessions_dropped_total")
	skipped := sum("preheat_tap_sessions_skipped_total")
	cut := sum("preheat_tap_sessions_cut_total")
	lost := sum("preheat_tap_sessions_lost_total")
	whole := recorded - cut - lost
	complete, cutIn, broken := 0, 0, 0
	for _, evs := range inStream {
		switch {
		case !session.Complete(evs):
			broken++
		case evs[len(evs)-1].ClosedBy == session.SideTap:
			cutIn++
		default:
			complete++
		}
	}

	fmt.Fprintf(out, "mode %s, outage %v, budget %s, %d clients × %d messages of %d bytes, pause %v, %d shards\n",
		o.mode, o.outage, o.budget, o.clients, o.msgs, o.size, o.pause, o.shards)
	fmt.Fprintf(out, "tap RSS at most (MiB):  ")
	for i, p := range phases {
		fmt.Fprintf(out, "%s %.0f  ", p, float64(peakRSS[i].Load())/1024)
	}
	fmt.Fprintf(out, "\ntap GC heap goal at most (MiB; twice the heap live at the last GC):  ")
	for i, p := range phases {
		fmt.Fprintf(out, "%s %.0f  ", p, float64(peakHeap[i].Load())/(1<<20))
	}
	fmt.Fprintf(out, "\nsessions: opened %d, echo errors %d; upgrades %.0f = whole %.0f + dropped %.0f + skipped %.0f + cut %.0f + lost %.0f (%s)\n",
		opened, echoErrors, upgrades, whole, dropped, skipped, cut, lost, holds(upgrades == whole+dropped+skipped+cut+lost))
	var reasons []string
	for k, v := range m {
		if (strings.HasPrefix(k, "preheat_tap_sessions_") || strings.HasPrefix(k, "preheat_kinesis_dropped_user_records_total") ||
			strings.HasPrefix(k, "preheat_kinesis_unknown_user_records_total")) && v > 0 {
			reasons = append(reasons, fmt.Sprintf("  %s %.0f", k, v))
		}
	}
	slices.Sort(reasons)
	fmt.Fprintln(out, strings.Join(reasons, "\n"))
	fmt.Fprintf(out, "stream: %d sessions: %d whole, %d cut by the tap, %d incomplete\n", len(inStream), complete, cutIn, broken)
	fmt.Fprintf(out, "  recorded but not whole in the stream: %.0f; counted cut or lost: %.0f\n", recorded-float64(complete+cutIn), cut+lost)
	fmt.Fprintf(out, "  counted whole %.0f, whole in the stream %d (%s)\n", whole, complete,
		holds(float64(complete) >= whole && float64(complete) <= whole+m[`preheat_tap_sessions_lost_total{reason="unknown"}`]))
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "DOES NOT HOLD"
}

func messages(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		raw := make([]byte, size*3/4)
		rand.Read(raw)
		out[i] = []byte(`{"op":"sync","data":"` + base64.StdEncoding.EncodeToString(raw)[:size*3/4] + `"}`)
	}
	return out
}

// clientLoop opens sessions through the tap one after the other until ctx
// ends.
func clientLoop(ctx context.Context, url string, msgs [][]byte, pause time.Duration, opened, echoErrors *atomic.Int64) {
	for ctx.Err() == nil {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		opened.Add(1)
		c.SetReadLimit(1 << 20)
		for _, m := range msgs {
			if err := c.Write(ctx, websocket.MessageText, m); err != nil {
				break
			}
			if _, got, err := c.Read(ctx); err != nil || len(got) != len(m) {
				if ctx.Err() == nil {
					echoErrors.Add(1)
				}
				break
			}
			if pause > 0 {
				sleep(ctx, pause)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// readSessions reads the stream to its end and returns each session's
// events in sequence order, duplicates removed.
func readSessions(ctx context.Context, client *awskinesis.Client, name string) (map[session.ID][]session.Event, error) {
	c, err := kinesis.NewConsumer(client, name, stream.Start{StopAtEnd: true}, &kinesis.ConsumerOptions{Metrics: metrics.NewSet()})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var sessions session.Reassembler
	for {
		r, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the stream: %w", err)
		}
		if err := sessions.AddBatch(r.Data); err != nil {
			return nil, fmt.Errorf("record %s/%s: %w", r.Partition, r.Position, err)
		}
	}
	return sessions.Sessions(), nil
}

// kinesaliteProc is a kinesalite server process.
type kinesaliteProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // the server exits when it closes
	port  string
	dir   string
}

func (k *kinesaliteProc) endpoint() string { return "http://127.0.0.1:" + k.port }

func (k *kinesaliteProc) signal(sig syscall.Signal) { syscall.Kill(-k.cmd.Process.Pid, sig) }

func (k *kinesaliteProc) stop() {
	k.signal(syscall.SIGKILL)
	k.cmd.Wait()
}

// startKinesalite starts tools/kinesalite/server.js on port ("0" for a free
// one) keeping its streams in dir.
func startKinesalite(ctx context.Context, port, dir string) (*kinesaliteProc, error) {
	cmd := exec.Command("node", "server.js", port, dir)
	cmd.Dir = "tools/kinesalite"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kinesalite (run from the repository root, after make kinesalite): %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LISTENING ") {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("kinesalite did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return &kinesaliteProc{cmd: cmd, stdin: stdin, port: strings.TrimSpace(strings.TrimPrefix(line, "LISTENING ")), dir: dir}, nil
}

func createStream(ctx context.Context, c *awskinesis.Client, name string, shards int) error {
	if _, err := c.CreateStream(ctx, &awskinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	for range 200 {
		out, err := c.DescribeStreamSummary(ctx, &awskinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		sleep(ctx, 50*time.Millisecond)
	}
	return errors.New("stream not active")
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(ctx context.Context, addr string) error {
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		sleep(ctx, 50*time.Millisecond)
	}
	return fmt.Errorf("nothing listening on %s", addr)
}

// scrape reads the tap's admin /metrics into a map from series to value.
func scrape(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// rssKB is the resident memory of pid in KiB, 0 if it cannot be read.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
