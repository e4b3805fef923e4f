package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

type demoOptions struct {
	dir      string
	sessions int
	queries  int
	parallel int
	keep     bool
}

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run preheat end to end on one machine with embedded defaults",
		usage:   "[--sessions 100] [--dir DIR]",
		help: `Runs what preheat has built so far on this machine, with nothing to install.

Today that is capture: synthetic clients of a sync protocol talk to a small sync
server through the tap, which records their sessions, redacted, into a local
directory log. The demo then reads the stream back, checks every captured session
against what its client really sent and received, and lists the sessions as
'preheat inspect' would.

The rest of the story (the replay cache, a cold server warmed and released,
compared with an unwarmed one) joins this demo as issues #4 and #5 land.`,
		flags: func(fs *flag.FlagSet) any {
			o := &demoOptions{}
			fs.StringVar(&o.dir, "dir", "", "directory for the demo's stream; default a new temporary directory, removed afterwards")
			fs.IntVar(&o.sessions, "sessions", 100, "number of synthetic client sessions")
			fs.IntVar(&o.queries, "queries", 30, "queries each client sends")
			fs.IntVar(&o.parallel, "parallel", 20, "clients connected at once")
			fs.BoolVar(&o.keep, "keep", false, "keep the temporary stream directory for 'preheat inspect'")
			return o
		},
		run: runDemo,
	}
}

// demoServer is the demo's sync server: it answers a connect message, then
// each query with a result of the query's kind.
func demoServer(seed uint64) http.Handler {
	var mu sync.Mutex
	g := corpus.New(seed)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"sync.v3"}, CompressionMode: websocket.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			var q struct {
				Type string `json:"type"`
				ID   int    `json:"id"`
				Op   string `json:"op"`
			}
			json.Unmarshal(msg, &q)
			var reply []byte
			if q.Type == "connect" {
				reply = []byte(`{"type":"connected","id":0}`)
			} else {
				mu.Lock()
				reply = g.Result(q.ID, q.Op)
				mu.Unlock()
			}
			if err := c.Write(r.Context(), websocket.MessageText, reply); err != nil {
				return
			}
		}
	})
}

// clientLog is what one demo client sent and received, in order.
type clientLog struct {
	sent, received [][]byte
}

func runDemo(ctx context.Context, e *env, args []string) error {
	o := e.opts.(*demoOptions)
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if o.sessions <= 0 || o.queries < 0 || o.parallel <= 0 {
		return usagef("--sessions and --parallel must be positive, --queries not negative")
	}
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "preheat-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !o.keep {
			defer os.RemoveAll(tmp)
		}
	}
	out := e.stdout
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	// The sync server, and the tap in front of it recording into the
	// directory log. Their logs are kept quiet; the demo reports.
	quiet := discardLog()
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upSrv := &http.Server{Handler: demoServer(7), ErrorLog: log.New(io.Discard, "", 0)}
	set := metrics.NewSet()
	prod, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Logger: quiet, Metrics: set})
	if err != nil {
		upLn.Close()
		return err
	}
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "demo-tap", Logger: quiet, Metrics: set})
	if err != nil {
		upLn.Close()
		prod.Close(ctx)
		return err
	}
	tap, err := capture.NewTap("ws://"+upLn.Addr().String(), rec, &capture.TapOptions{Logger: quiet, Metrics: set})
	if err != nil {
		upLn.Close()
		rec.Close(ctx)
		prod.Close(ctx)
		return err
	}
	tapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		upLn.Close()
		rec.Close(ctx)
		prod.Close(ctx)
		return err
	}
	tapSrv := &http.Server{Handler: tap, ErrorLog: log.New(io.Discard, "", 0)}
	var servers errgroup.Group
	servers.Go(func() error { upSrv.Serve(upLn); return nil })
	servers.Go(func() error { tapSrv.Serve(tapLn); return nil })
	fmt.Fprintf(out, "preheat demo\n\n  sync server   ws://%s\n  tap           ws://%s  (capturing into file://%s)\n\n", upLn.Addr(), tapLn.Addr(), dir)

	// Synthetic clients talk through the tap.
	start := time.Now()
	logs := make([]*clientLog, o.sessions)
	var clients errgroup.Group
	clients.SetLimit(o.parallel)
	for i := range o.sessions {
		clients.Go(func() error {
			l, err := demoClient(ctx, "ws://"+tapLn.Addr().String()+"/sync?client=web", uint64(i)+1, o.queries)
			logs[i] = l
			return err
		})
	}
	clientErr := clients.Wait()
	elapsed := time.Since(start)

	// Stop in order: the tap, then capture, then the stream.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	tapSrv.Shutdown(sctx)
	tap.Shutdown(sctx)
	rec.Close(sctx)
	closeErr := prod.Close(sctx)
	upSrv.Shutdown(sctx)
	servers.Wait()
	if clientErr != nil {
		return fmt.Errorf("client: %w", clientErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close stream: %w", closeErr)
	}
	messages := 0
	for _, l := range logs {
		messages += len(l.sent) + len(l.received)
	}
	fmt.Fprintf(out, "clients:  %d sessions, %d messages through the tap in %v (%.0f messages/s)\n",
		o.sessions, messages, elapsed.Round(time.Millisecond), float64(messages)/elapsed.Seconds())

	// Read the stream back and check it against what the clients saw.
	cons, err := dirlog.NewConsumer(dir, stream.Start{StopAtEnd: true}, &dirlog.ConsumerOptions{Logger: quiet, Metrics: set})
	if err != nil {
		return err
	}
	defer cons.Close()
	ins := newInspector(session.ID{})
	got := make(map[session.ID][]session.Event)
	records, encoded := 0, 0
	for {
		r, err := cons.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		records++
		encoded += len(r.Data)
		ins.add(r)
		evs, err := session.DecodeBatch(r.Data, nil)
		if err != nil {
			return fmt.Errorf("record %s/%s: %w", r.Partition, r.Position, err)
		}
		got[evs[0].Session] = append(got[evs[0].Session], evs...)
	}
	payload, err := checkCaptured(logs, got)
	if err != nil {
		return fmt.Errorf("captured sessions: %w", err)
	}
	fmt.Fprintf(out, "capture:  %d sessions, %s of messages in %d records, %s in the stream (%.2f bytes per payload byte)\n",
		len(got), humanBytes(int64(payload)), records, humanBytes(int64(encoded)), float64(encoded)/float64(payload))
	fmt.Fprintf(out, "          every session matches what its client sent and received; the connect token is redacted to %s\n\n", redact.Marker)
	if err := ins.printList(out, false, 5); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n(the newest 5 of %d sessions)\n", len(got))
	if o.keep || o.dir != "" {
		fmt.Fprintf(out, "\nThe stream is kept: preheat inspect --stream file://%s\n", dir)
	}
	fmt.Fprint(out, `
Next: the replay cache (issue #4) and warming a cold server (#5) join this demo as
they land.
`)
	return nil
}

// demoClient runs one synthetic session: connect, then queries, each
// awaiting its result.
func demoClient(ctx context.Context, url string, seed uint64, queries int) (*clientLog, error) {
	l := &clientLog{}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"sync.v3"}, CompressionMode: websocket.CompressionContextTakeover})
	if err != nil {
		return l, err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	g := corpus.New(seed)
	msgs := [][]byte{g.Connect()}
	for range queries {
		msgs = append(msgs, g.Query(g.Kind()))
	}
	for _, m := range msgs {
		if err := c.Write(ctx, websocket.MessageText, m); err != nil {
			return l, err
		}
		l.sent = append(l.sent, m)
		_, reply, err := c.Read(ctx)
		if err != nil {
			return l, err
		}
		l.received = append(l.received, reply)
	}
	return l, c.Close(websocket.StatusNormalClosure, "done")
}

// checkCaptured matches every client's log to one captured session: the
// client's messages after redaction, the server's as received, a close from
// the client. It returns the payload bytes captured.
func checkCaptured(logs []*clientLog, got map[session.ID][]session.Event) (int, error) {
	if len(got) != len(logs) {
		return 0, fmt.Errorf("%d sessions captured, %d clients ran", len(got), len(logs))
	}
	rd, err := redact.New(nil)
	if err != nil {
		return 0, err
	}
	key := func(sent [][]byte) string {
		var b strings.Builder
		for _, m := range sent {
			r, _ := rd.Payload(nil, m, false)
			b.Write(r)
			b.WriteByte(0)
		}
		return b.String()
	}
	want := make(map[string]*clientLog, len(logs))
	for _, l := range logs {
		want[key(l.sent)] = l
	}
	payload := 0
	for id, evs := range got {
		var client, server [][]byte
		for i, e := range evs {
			if e.Seq != uint64(i) {
				return 0, fmt.Errorf("session %s: event %d has sequence %d", id, i, e.Seq)
			}
			if e.Kind == session.KindFrame {
				payload += len(e.Payload)
				if e.Direction == session.ClientToServer {
					client = append(client, e.Payload)
				} else {
					server = append(server, e.Payload)
				}
			}
		}
		var k strings.Builder
		for _, m := range client {
			k.Write(m)
			k.WriteByte(0)
		}
		l := want[k.String()]
		if l == nil {
			return 0, fmt.Errorf("session %s matches no client's messages", id)
		}
		if !slices.EqualFunc(server, l.received, bytes.Equal) {
			return 0, fmt.Errorf("session %s: server messages differ from what the client received", id)
		}
		if evs[0].Kind != session.KindOpen || evs[len(evs)-1].Kind != session.KindClose || evs[len(evs)-1].ClosedBy != session.SideClient {
			return 0, fmt.Errorf("session %s: not from open to the client's close", id)
		}
	}
	return payload, nil
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
