// Command neighbour measures what one hostile client of a preheat tap costs
// the other connections through it: a quiet connection's round trips,
// alone and beside a client sending permessage-deflate messages that are
// about 1 KB on the wire and inflate to a lot. It makes the quiet
// connection's figures in docs/benchmarks-tap.md:
//
//	go build -o /tmp/preheat ./cmd/preheat
//	go run ./bench/neighbour --tap new=/tmp/preheat --tap old=/tmp/tapbase/preheat --rounds 5
//
// It serves an upstream on loopback itself: a websocket echo server
// (internal/wsbench, no compression), and on /sink an endpoint that accepts
// permessage-deflate (no context takeover) and discards what it is sent, so
// that the upstream spends nothing on the hostile messages. Then, --rounds
// times, for each --tap binary in turn (each round starts one binary
// later), it starts that binary as `preheat tap`, capturing every session
// into a file:// stream, and measures, on the fresh process:
//
//	alone   --quiet-conns connections at --quiet-rate messages/s in all
//	        for --duration after --warmup: round trip p50/p99;
//	beside  the same, while a hostile client sends --hostile-rate frames/s
//	        to /sink: each a masked, compressed text frame inflating to
//	        --inflate bytes (a JSON string of one letter repeated: 1 MB
//	        is about 1 KB on the wire), on a connection it replaces every --per-conn
//	        frames so that the tap's per-session limits never stop
//	        capturing it.
//
// around each it reads the tap's CPU time (/proc/PID/stat), and after
// "beside" the tap's counters from its admin listener: frames recorded and
// sessions cut, by reason. Each run's record goes to --out as a JSON line;
// medians and ranges per binary go to standard output.
//
// It is a program and not a test because it is an experiment: minutes
// long, its results figures to read, configured by flags. Everything
// listens on loopback; the tap processes it starts end before it returns.
// TestTapForwardsWhileCaptureStalls in package capture asserts the
// property it measures.
package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/preheatdev/preheat/internal/wsbench"
)

type tapFlag []string

func (t *tapFlag) String() string     { return strings.Join(*t, ",") }
func (t *tapFlag) Set(s string) error { *t = append(*t, s); return nil }

type options struct {
	taps        []build
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	quietRate   float64
	quietConns  int
	hostileRate float64
	inflate     int
	perConn     int
	tapArgs     []string
	out         string
}

// build is a tap build under test.
type build struct{ name, path string }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetFlags(log.Ltime)
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "neighbour:", err)
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "neighbour:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("neighbour", flag.ContinueOnError)
	var taps tapFlag
	fs.Var(&taps, "tap", "NAME=PATH of a preheat binary to measure; repeat for several (required)")
	o := &options{}
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each measures every --tap once")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each quiet run, after --warmup")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each quiet run")
	fs.Float64Var(&o.quietRate, "quiet-rate", 200, "quiet connections' messages/s in all")
	fs.IntVar(&o.quietConns, "quiet-conns", 1, "quiet connections")
	fs.Float64Var(&o.hostileRate, "hostile-rate", 1000, "hostile frames/s")
	fs.IntVar(&o.inflate, "inflate", 1000000, "bytes each hostile message inflates to (the tap inflates at most 1 MiB by default)")
	fs.IntVar(&o.perConn, "per-conn", 30, "hostile frames a connection before it is replaced (the tap cuts a session after 8 MiB of payload, 256 KiB a message by default)")
	tapArgs := fs.String("tap-args", "", "extra flags for every tap, space-separated")
	fs.StringVar(&o.out, "out", "", "append each run's record to this file as a JSON line")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(taps) == 0 {
		return nil, errors.New("--tap NAME=PATH is required")
	}
	for _, t := range taps {
		name, path, ok := strings.Cut(t, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--tap %q: want NAME=PATH", t)
		}
		o.taps = append(o.taps, build{name, path})
	}
	if o.rounds < 1 || o.duration <= 0 || o.quietRate <= 0 || o.quietConns < 1 || o.hostileRate <= 0 || o.inflate < 1 || o.perConn < 1 {
		return nil, errors.New("--rounds, --duration, --quiet-rate, --quiet-conns, --hostile-rate, --inflate and --per-conn must be positive")
	}
	o.tapArgs = strings.Fields(*tapArgs)
	return o, nil
}

// record is one run: one tap binary in one round.
type record struct {
	Round  int    `json:"round"`
	Tap    string `json:"tap"`
	Alone  rtt    `json:"alone"`
	Beside rtt    `json:"beside"`
	// CPU seconds the tap used during each quiet run.
	AloneCPU  float64 `json:"alone_cpu_s"`
	BesideCPU float64 `json:"beside_cpu_s"`
	// Hostile frames sent during "beside", and connections opened.
	HostileFrames int64   `json:"hostile_frames"`
	HostileConns  int64   `json:"hostile_conns"`
	WireBytes     int     `json:"hostile_frame_bytes"`
	Seconds       float64 `json:"beside_seconds"`
	// The tap's counters after "beside".
	FramesRecorded float64            `json:"frames_recorded"`
	Cut            map[string]float64 `json:"cut"`
	Dropped        float64            `json:"dropped"`
	LoadAvg        string             `json:"loadavg"`
}

type rtt struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	Max     float64 `json:"max_us"`
	Late    int64   `json:"late"`
}

func run(ctx context.Context, o *options) error {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", wsbench.NewEchoHandler(nil))
	mux.HandleFunc("/sink", sink)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(up)
	defer srv.Close()
	frame, err := hostileFrame(o.inflate)
	if err != nil {
		return err
	}
	log.Printf("upstream %s; hostile frame %d bytes on the wire, inflating to %d", up.Addr(), len(frame), o.inflate)

	var out io.Writer = io.Discard
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	var recs []record
	for round := 1; round <= o.rounds; round++ {
		for k := range o.taps {
			b := o.taps[(k+round-1)%len(o.taps)]
			r, err := measure(ctx, o, b, up.Addr().String(), frame)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, b.name, err)
			}
			r.Round = round
			log.Printf("round %d %s: alone p50 %.0f p99 %.0f µs; beside p50 %.0f p99 %.0f µs; %d hostile frames, %.0f recorded, cut %v",
				round, b.name, r.Alone.P50, r.Alone.P99, r.Beside.P50, r.Beside.P99, r.HostileFrames, r.FramesRecorded, r.Cut)
			line, _ := json.Marshal(r)
			fmt.Fprintf(out, "%s\n", line)
			recs = append(recs, *r)
		}
	}
	report(os.Stdout, o, recs)
	return nil
}

// measure runs one tap binary through both quiet runs.
func measure(ctx context.Context, o *options, b build, upstream string, frame []byte) (*record, error) {
	dir, err := os.MkdirTemp("", "preheat-neighbour-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	listen, admin := freePort(), freePort()
	args := append([]string{"tap", "--listen", listen, "--upstream", "ws://" + upstream,
		"--stream", "file://" + dir + "/stream", "--admin-listen", admin, "--tap-id", "neighbour"}, o.tapArgs...)
	cmd := exec.CommandContext(ctx, b.path, args...)
	logf, err := os.Create(dir + "/tap.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	for _, a := range []string{listen, admin} {
		if err := waitPort(ctx, a); err != nil {
			return nil, fmt.Errorf("tap: %w (log in %s)", err, dir)
		}
	}
	url := "ws://" + listen
	r := &record{Tap: b.name, WireBytes: len(frame)}

	quiet := func() (rtt, float64, error) {
		c0, err := cpuSeconds(cmd.Process.Pid)
		if err != nil {
			return rtt{}, 0, err
		}
		res, err := wsbench.Load(ctx, url+"/sync", &wsbench.LoadOptions{
			Conns: o.quietConns, Rate: o.quietRate, Duration: o.duration, Warmup: o.warmup,
		})
		if err != nil {
			return rtt{}, 0, err
		}
		if res.Mismatched > 0 {
			return rtt{}, 0, fmt.Errorf("%d echoes differed from what was sent", res.Mismatched)
		}
		c1, err := cpuSeconds(cmd.Process.Pid)
		if err != nil {
			return rtt{}, 0, err
		}
		return rtt{Samples: res.RTT.Samples, P50: res.RTT.P50, P99: res.RTT.P99, Max: res.RTT.Max, Late: res.Late}, c1 - c0, nil
	}
	if r.Alone, r.AloneCPU, err = quiet(); err != nil {
		return nil, fmt.Errorf("alone: %w", err)
	}

	hctx, stopHostile := context.WithCancel(ctx)
	var frames, conns atomic.Int64
	hdone := make(chan error, 1)
	start := time.Now()
	go func() { hdone <- hostile(hctx, listen, frame, o.hostileRate, o.perConn, &frames, &conns) }()
	r.Beside, r.BesideCPU, err = quiet()
	stopHostile()
	herr := <-hdone
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		return nil, fmt.Errorf("beside: %w", err)
	}
	if herr != nil && !errors.Is(herr, context.Canceled) {
		return nil, fmt.Errorf("hostile client: %w", herr)
	}
	r.HostileFrames, r.HostileConns = frames.Load(), conns.Load()
	time.Sleep(time.Second) // let the tap record and export what it had
	m, err := scrape(ctx, "http://"+admin+"/metrics")
	if err != nil {
		return nil, err
	}
	r.Cut = map[string]float64{}
	for name, v := range m {
		switch {
		case strings.HasPrefix(name, "preheat_tap_frames_recorded_total"):
			r.FramesRecorded += v
		case strings.HasPrefix(name, `preheat_tap_sessions_cut_total{reason="`):
			r.Cut[strings.TrimSuffix(strings.TrimPrefix(name, `preheat_tap_sessions_cut_total{reason="`), `"}`)] += v
		case strings.HasPrefix(name, "preheat_tap_sessions_dropped_total"):
			r.Dropped += v
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	return r, nil
}

// hostileFrame returns a masked, compressed text frame whose message
// inflates to n bytes: a JSON object with one long string of one letter
// repeated, which deflate shrinks about a thousandfold.
func hostileFrame(n int) ([]byte, error) {
	head, tail := `{"op":"fill","pad":"`, `"}`
	payload := append(append([]byte(head), bytes.Repeat([]byte{'a'}, max(n-len(head)-len(tail), 0))...), tail...)
	var z bytes.Buffer
	w, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	w.Write(payload)
	if err := w.Flush(); err != nil { // ends with the 00 00 ff ff that RFC 7692 strips
		return nil, err
	}
	data := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
	f := []byte{0x80 | 0x40 | 0x1} // FIN, RSV1 (compressed), text
	switch l := len(data); {
	case l < 126:
		f = append(f, 0x80|byte(l))
	case l < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(l))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(l))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	f = append(f, key[:]...)
	for i, c := range data {
		f = append(f, c^key[i%4])
	}
	return f, nil
}

// hostile sends frame to the tap's /sink at rate frames/s, on connections
// replaced every perConn frames, until ctx is done.
func hostile(ctx context.Context, addr string, frame []byte, rate float64, perConn int, frames, conns *atomic.Int64) error {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8} // masked with a zero key: 1000
	for ctx.Err() == nil {
		c, err := dialSink(ctx, addr)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		conns.Add(1)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for range perConn {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			} else if d < -time.Second {
				next = time.Now() // far behind: do not burst to catch up
			}
			next = next.Add(interval)
			if ctx.Err() != nil {
				break
			}
			if _, err := c.Write(frame); err != nil {
				break
			}
			frames.Add(1)
		}
		c.Write(closeFrame)
		stop()
		c.Close()
	}
	return ctx.Err()
}

func dialSink(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var k [16]byte
	rand.Read(k[:])
	fmt.Fprintf(c, "GET /sink HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(k[:]))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("sink handshake: %w", err)
	}
	resp.Body.Close()
	c.SetReadDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("sink handshake: %s", resp.Status)
	}
	return c, nil
}

// sink accepts a websocket upgrade, agreeing to permessage-deflate without
// context takeover when offered, and discards everything it is sent.
func sink(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "not a websocket upgrade", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	ext := ""
	if strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
		base64.StdEncoding.EncodeToString(h[:]), ext)
	io.Copy(io.Discard, brw)
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitPort(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing listening on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpuSeconds is the user and system CPU time of process pid.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// scrape reads a Prometheus text exposition into name{labels} -> value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// report prints medians and ranges per tap binary.
func report(w io.Writer, o *options, recs []record) {
	fmt.Fprintf(w, "\nMedian of %d round(s), the range in brackets. Quiet: %d connection(s) at %.0f msg/s for %v; hostile: %.0f frames/s of %d bytes inflating to %d, a new connection every %d frames.\n\n",
		o.rounds, o.quietConns, o.quietRate, o.duration, o.hostileRate, firstWire(recs), o.inflate, o.perConn)
	fmt.Fprintln(w, "| tap | alone p50 µs | alone p99 µs | beside hostile p50 µs | beside hostile p99 µs | tap CPU alone, ms/s | beside hostile, ms/s | hostile frames recorded | sessions cut |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, b := range o.taps {
		var mine []record
		for _, r := range recs {
			if r.Tap == b.name {
				mine = append(mine, r)
			}
		}
		f := func(get func(record) float64) string {
			v := make([]float64, len(mine))
			for i, r := range mine {
				v[i] = get(r)
			}
			slices.Sort(v)
			med := v[len(v)/2]
			if len(v)%2 == 0 {
				med = (v[len(v)/2-1] + v[len(v)/2]) / 2
			}
			if len(v) == 1 {
				return fmt.Sprintf("%.0f", med)
			}
			return fmt.Sprintf("%.0f (%.0f–%.0f)", med, v[0], v[len(v)-1])
		}
		cuts := map[string]float64{}
		for _, r := range mine {
			for k, v := range r.Cut {
				cuts[k] += v / float64(len(mine))
			}
		}
		var cs []string
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range cuts {
				if !yield(k) {
					return
				}
			}
		}) {
			cs = append(cs, fmt.Sprintf("%s %.0f", k, cuts[k]))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s of %s | %s |\n", b.name,
			f(func(r record) float64 { return r.Alone.P50 }), f(func(r record) float64 { return r.Alone.P99 }),
			f(func(r record) float64 { return r.Beside.P50 }), f(func(r record) float64 { return r.Beside.P99 }),
			f(func(r record) float64 { return r.AloneCPU / (o.duration + o.warmup).Seconds() * 1000 }),
			f(func(r record) float64 { return r.BesideCPU / (o.duration + o.warmup).Seconds() * 1000 }),
			f(func(r record) float64 { return r.FramesRecorded }), f(func(r record) float64 { return float64(r.HostileFrames) }),
			strings.Join(cs, ", "))
	}
}

func firstWire(recs []record) int {
	if len(recs) == 0 {
		return 0
	}
	return recs[0].WireBytes
}
