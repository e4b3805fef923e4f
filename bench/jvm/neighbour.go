package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
)

// neighbour is the body of the process startNeighbour runs: it drives a
// JVM with demo.Pace until its standard input closes (or an interrupt),
// then writes the requests to a file: a line "errors N", then one line a
// request, "SENT_UNIX_NS LATENCY_NS WRITE".
func neighbour(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("neighbour", flag.ContinueOnError)
	url := fs.String("url", "", "the JVM's websocket URL, ws://127.0.0.1:PORT/sync; required")
	file := fs.String("out", "", "the file the requests are written to; required")
	clients := fs.Int("clients", 2, "clients connected at once")
	rate := fs.Float64("rate", 200, "requests per second of all the clients together")
	seed := fs.Uint64("seed", 1, "the clients' generator seed")
	mutations := fs.Bool("mutations", true, "every tenth request of a session is a mutation; false: queries only")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	if *url == "" || *file == "" {
		return usagef("neighbour: --url and --out are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	l := demo.Pace(ctx, *url, &demo.PaceOptions{Clients: *clients, Rate: *rate, QueriesOnly: !*mutations}, *seed)
	var b strings.Builder
	writeRequests(&b, l)
	return os.WriteFile(*file, []byte(b.String()), 0o644)
}

// writeRequests writes l as neighbour does, for readRequests.
func writeRequests(w io.Writer, l *demo.Requests) {
	fmt.Fprintf(w, "errors %d\n", l.Errors())
	for _, r := range l.InOrder() {
		fmt.Fprintf(w, "%d %d %t\n", r.Sent.UnixNano(), r.Latency.Nanoseconds(), r.Write)
	}
}

// neighbourClient is demo.Pace's traffic from a process of its own, which
// leads a session (a scheduling group under autogroup) of its own when
// asked, and runs on the processors asked. The neighbour's clients stand
// for its users, who are on other machines: timed from this process,
// which also runs the warm-up, they would be charged for the warm-up's
// processor time.
type neighbourClient struct {
	*child
	out string
}

// startNeighbour starts clients at rate requests/s in all against url, in
// a new process of this program, writing into dir.
func startNeighbour(dir, url string, clients int, rate float64, seed uint64, mutations, ownSession bool, cpus string) (*neighbourClient, error) {
	out := filepath.Join(dir, fmt.Sprintf("neighbour-%d.txt", seed))
	c, err := startChild([]string{"neighbour", "--url", url, "--out", out, "--clients", strconv.Itoa(clients),
		"--rate", strconv.FormatFloat(rate, 'g', -1, 64), "--seed", strconv.FormatUint(seed, 10), "--mutations=" + strconv.FormatBool(mutations)},
		cpus, ownSession)
	if err != nil {
		return nil, fmt.Errorf("neighbour client: %w", err)
	}
	return &neighbourClient{child: c, out: out}, nil
}

// check returns an error if the client process has already exited: it
// runs until stop.
func (c *neighbourClient) check() error {
	if err := c.exited(); err != nil {
		return fmt.Errorf("neighbour client %w", err)
	}
	return nil
}

// stop ends the clients and returns their requests.
func (c *neighbourClient) stop() (*demo.Requests, error) {
	if err := c.child.stop(); err != nil {
		return nil, fmt.Errorf("neighbour client: %w", err)
	}
	f, err := os.Open(c.out)
	if err != nil {
		return nil, fmt.Errorf("neighbour client: %w; output:\n%s", err, c.output())
	}
	defer f.Close()
	return readRequests(f)
}

// readRequests reads what writeRequests wrote.
func readRequests(r io.Reader) (*demo.Requests, error) {
	l := &demo.Requests{}
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, fmt.Errorf("neighbour client: no requests (%v)", sc.Err())
	}
	var errs int64
	if _, err := fmt.Sscanf(sc.Text(), "errors %d", &errs); err != nil {
		return nil, fmt.Errorf("neighbour client: first line %q: %w", sc.Text(), err)
	}
	l.AddErrors(errs)
	for sc.Scan() {
		r, err := parseRequest(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("neighbour client: line %q: %w", sc.Text(), err)
		}
		l.Add(r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("neighbour client: %w", err)
	}
	return l, nil
}

// parseRequest parses a request's line, "SENT_UNIX_NS LATENCY_NS WRITE".
func parseRequest(line string) (demo.Request, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return demo.Request{}, errors.New("want three fields")
	}
	sent, err1 := strconv.ParseInt(f[0], 10, 64)
	lat, err2 := strconv.ParseInt(f[1], 10, 64)
	write, err3 := strconv.ParseBool(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return demo.Request{}, err
	}
	return demo.Request{Sent: time.Unix(0, sent), Latency: time.Duration(lat), Write: write}, nil
}
