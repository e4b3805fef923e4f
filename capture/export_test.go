package capture_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis"
)

// streamRig is a tap recording through the Kinesis producer into a
// kinesalite stream, with clients that open sessions in a loop.
type streamRig struct {
	t     *testing.T
	ks    *kinesalite.Server
	name  string
	prod  *kinesis.Producer
	pset  *vmetrics.Set
	rec   *capture.Recorder
	tap   *capture.Tap
	front *httptest.Server

	stopLoad chan struct{}
	load     sync.WaitGroup
	opened   atomic.Int64 // sessions the clients opened through the tap
}

func newStreamRig(t *testing.T, ks *kinesalite.Server, po kinesis.ProducerOptions, ro capture.RecorderOptions) *streamRig {
	t.Helper()
	r := &streamRig{t: t, ks: ks, name: "sessions", pset: vmetrics.NewSet(), stopLoad: make(chan struct{})}
	ks.CreateStream(t, r.name, 2)
	po.Metrics, po.Logger = r.pset, quietLog
	prod, err := kinesis.NewProducer(ks.Client(t), r.name, &po)
	if err != nil {
		t.Fatal(err)
	}
	r.prod = prod
	ro.Logger = quietLog
	if r.rec, err = capture.NewRecorder(prod, capture.DefaultPolicy(), &ro); err != nil {
		t.Fatal(err)
	}
	up := wsecho.Start(t, nil)
	if r.tap, err = capture.NewTap(up.URL, r.rec, &capture.TapOptions{Logger: quietLog}); err != nil {
		t.Fatal(err)
	}
	r.front = httptest.NewServer(r.tap)
	t.Cleanup(func() {
		r.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.prod.Close(ctx)
	})
	return r
}

// run starts clients that each open sessions of msgs messages, one after
// the other, waiting pause between messages, until stop.
func (r *streamRig) run(clients int, msgs [][]byte, pause time.Duration) {
	url := "ws" + strings.TrimPrefix(r.front.URL, "http") + "/sync"
	for range clients {
		r.load.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-r.stopLoad:
				case <-ctx.Done():
				}
				cancel()
			}()
			for ctx.Err() == nil {
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					if ctx.Err() == nil {
						r.t.Errorf("dial: %v", err)
					}
					return
				}
				r.opened.Add(1)
				c.SetReadLimit(1 << 20)
				for _, m := range msgs {
					if c.Write(ctx, websocket.MessageText, m) != nil {
						break
					}
					if _, got, err := c.Read(ctx); err != nil || string(got) != string(m) {
						if ctx.Err() == nil {
							r.t.Errorf("echo: %d bytes, %v", len(got), err)
						}
						break
					}
					if pause > 0 {
						time.Sleep(pause)
					}
				}
				c.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}

// stop ends the load, then the tap, and closes the recorder. The
// producer keeps what it holds.
func (r *streamRig) stop() {
	select {
	case <-r.stopLoad:
		return
	default:
	}
	close(r.stopLoad)
	r.load.Wait()
	r.front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.tap.Shutdown(ctx)
	if err := r.rec.Close(ctx); err != nil {
		r.t.Errorf("recorder close: %v", err)
	}
}

// sessionsInStream reads the whole stream back and returns each session's
// events in sequence order, duplicates (retries) removed.
func (r *streamRig) sessionsInStream() map[session.ID][]session.Event {
	r.t.Helper()
	c, err := kinesis.NewConsumer(r.ks.Client(r.t), r.name, stream.Start{StopAtEnd: true}, &kinesis.ConsumerOptions{
		IdleInterval: 20 * time.Millisecond, Logger: quietLog, Metrics: vmetrics.NewSet(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sessions session.Reassembler
	for {
		rec, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.t.Fatal(err)
		}
		if err := sessions.AddBatch(rec.Data); err != nil {
			r.t.Fatalf("record %s/%s: %v", rec.Partition, rec.Position, err)
		}
	}
	return sessions.Sessions()
}

// sum adds the series of set whose names start with prefix.
func sum(set *vmetrics.Set, prefix string) float64 {
	var b strings.Builder
	set.WritePrometheus(&b)
	total := 0.0
	for line := range strings.SplitSeq(b.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			total += metricValue(set, line[:strings.LastIndexByte(line, ' ')])
		}
	}
	return total
}

// textMessages returns n JSON-ish text messages of about size bytes, three
// quarters incompressible.
func textMessages(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		raw := make([]byte, size*3/4)
		rand.Read(raw)
		out[i] = []byte(`{"op":"sync","data":"` + base64.StdEncoding.EncodeToString(raw) + `"}`)
	}
	return out
}

// TestExportCountsEverySessionThroughStreamCrash kills the Kinesis server
// under load for longer than the delivery timeout, and starts it again on
// its data: once with a budget too small to hold the outage (sessions are
// shed, oldest first), once with one that holds it (batches are given up
// at the delivery timeout). Every session opened is counted once: upgrades
// = recorded whole + dropped + skipped + cut + lost. And the stream
// agrees: every session counted whole is in it, complete; every recorded
// session not whole in it is counted cut or lost; a session counted lost
// is complete in it only when the outcome of its last batch was unknown.
func TestExportCountsEverySessionThroughStreamCrash(t *testing.T) {
	f := func(name string, budget int64, reasons ...string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			countsThroughCrash(t, budget, reasons)
		})
	}
	f("shed", 256<<10, "budget")
	f("timeout", 8<<20, "undelivered", "unknown")
}

// countsThroughCrash is TestExportCountsEverySessionThroughStreamCrash with
// one budget; some sessions must be lost for one of reasons.
func countsThroughCrash(t *testing.T, budget int64, reasons []string) {
	ks := kinesalite.StartPersistent(t)
	r := newStreamRig(t, ks, kinesis.ProducerOptions{
		Linger:          20 * time.Millisecond,
		DeliveryTimeout: 2 * time.Second,
		RequestTimeout:  time.Second,
		BackoffBase:     20 * time.Millisecond,
		BackoffMax:      200 * time.Millisecond,
	}, capture.RecorderOptions{
		BudgetBytes:   budget,
		FlushInterval: 50 * time.Millisecond,
		BatchBytes:    8 << 10,
	})
	r.run(8, textMessages(8, 1<<10), 20*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	ks.Stop()
	time.Sleep(3500 * time.Millisecond)
	ks.Restart(t)
	time.Sleep(2 * time.Second)
	r.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.prod.Flush(ctx); err != nil {
		t.Fatalf("flush after the restart: %v", err)
	}

	set := r.rec.Metrics()
	// An upgrade is a websocket request the upstream accepted and the tap
	// answered: one the tap failed is not.
	upgrades := metricValue(r.tap.Metrics(), `preheat_tap_requests_total{kind="websocket"}`) -
		sum(r.tap.Metrics(), "preheat_tap_upgrade_failures_total")
	recorded := counter(t, r.rec, "preheat_tap_sessions_recorded_total")
	dropped := sum(set, "preheat_tap_sessions_dropped_total")
	skipped := sum(set, "preheat_tap_sessions_skipped_total")
	cut := sum(set, "preheat_tap_sessions_cut_total")
	lost := sum(set, "preheat_tap_sessions_lost_total")
	unknown := counter(t, r.rec, `preheat_tap_sessions_lost_total{reason="unknown"}`)
	whole := recorded - cut - lost
	var b strings.Builder
	set.WritePrometheus(&b)
	r.pset.WritePrometheus(&b)
	var counts []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if strings.Contains(line, "sessions_") || strings.Contains(line, "user_records_total") || strings.Contains(line, "batches_") {
			counts = append(counts, line)
		}
	}
	t.Logf("opened %d; upgrades %v = whole %v + dropped %v + skipped %v + cut %v + lost %v\n%s",
		r.opened.Load(), upgrades, whole, dropped, skipped, cut, lost, strings.Join(counts, "\n"))

	// A client stopped mid-handshake may not see an upgrade the tap made.
	if upgrades < float64(r.opened.Load()) {
		t.Errorf("tap counted %v upgrades, clients opened %d sessions", upgrades, r.opened.Load())
	}
	if upgrades != whole+dropped+skipped+cut+lost || whole < 0 {
		t.Errorf("upgrades %v != whole %v + dropped %v + skipped %v + cut %v + lost %v", upgrades, whole, dropped, skipped, cut, lost)
	}
	if st := r.rec.Status(); st.BufferBytes != 0 || st.Recording != 0 {
		t.Errorf("after the flush: %d recordings, %d budget bytes in use", st.Recording, st.BufferBytes)
	}

	inStream := r.sessionsInStream()
	wholeInStream, cutInStream, broken := 0, 0, 0
	for _, evs := range inStream {
		switch {
		case !session.Complete(evs):
			broken++
		case evs[len(evs)-1].ClosedBy == session.SideTap:
			cutInStream++
		default:
			wholeInStream++
		}
	}
	t.Logf("in the stream: %d sessions, %d whole, %d cut, %d incomplete", len(inStream), wholeInStream, cutInStream, broken)
	if float64(len(inStream)) > recorded {
		t.Errorf("%d sessions in the stream, %v recorded", len(inStream), recorded)
	}
	// A session the tap's own shutdown closed ends with the tap's close
	// event and is counted whole: complete in the stream, as a cut one is.
	complete := float64(wholeInStream + cutInStream)
	if complete < whole {
		t.Errorf("%v sessions complete in the stream, %v counted whole", complete, whole)
	}
	if complete > whole+cut+unknown {
		t.Errorf("%v sessions complete in the stream, %v counted whole, %v cut and %v lost with an unknown outcome", complete, whole, cut, unknown)
	}
	if missing := recorded - float64(wholeInStream+cutInStream); missing > cut+lost {
		t.Errorf("%v recorded sessions are not whole in the stream, %v counted cut or lost", missing, cut+lost)
	}
	byReason := 0.0
	for _, reason := range reasons {
		byReason += counter(t, r.rec, `preheat_tap_sessions_lost_total{reason="`+reason+`"}`)
	}
	if byReason == 0 || whole == 0 {
		t.Errorf("the outage should have lost some sessions (reason %s) and spared others: %v lost so, %v whole",
			strings.Join(reasons, " or "), byReason, whole)
	}
}

// heapLive returns the heap the last garbage collection found live.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestExportBudgetBoundsHeapWhileStreamHangs freezes the Kinesis server
// under saturating capture load, with the producer's own buffer left at
// its 64 MiB default. The budget alone bounds what capture holds: the live
// heap stays within what it was under the same load with the stream
// answering, plus the budget, plus a fixed allowance for the requests in
// flight (their JSON bodies, up to 2.7 times the producer's 2 MiB
// MaxInFlightBytes) and the exporters' scratch buffers.
func TestExportBudgetBoundsHeapWhileStreamHangs(t *testing.T) {
	if testing.Short() {
		t.Skip("saturating load for several seconds")
	}
	ks := kinesalite.Start(t)
	const budget = 4 << 20
	r := newStreamRig(t, ks, kinesis.ProducerOptions{RequestTimeout: 2 * time.Second}, capture.RecorderOptions{BudgetBytes: budget})
	r.run(16, textMessages(32, 4<<10), 0)

	var peak atomic.Uint64
	var baseline uint64
	sample := func(d time.Duration) uint64 {
		top := uint64(0)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			top = max(top, heapLive())
		}
		return top
	}
	time.Sleep(time.Second) // the load settles
	runtime.GC()
	baseline = sample(time.Second)
	ks.Pause(t)
	peak.Store(sample(4 * time.Second))
	used := r.rec.Status().BufferBytes
	ks.Resume(t)
	r.stop()

	const allowance = 16 << 20
	lost := sum(r.rec.Metrics(), "preheat_tap_sessions_lost_total")
	t.Logf("live heap: %.1f MiB under load, %.1f MiB at most with the stream frozen; budget %d MiB, %.1f MiB of it in use at the end; %v sessions lost",
		float64(baseline)/(1<<20), float64(peak.Load())/(1<<20), budget>>20, float64(used)/(1<<20), lost)
	if p := peak.Load(); p > baseline+budget+allowance {
		t.Errorf("live heap reached %.1f MiB with the stream frozen: more than %.1f MiB under load + %d MiB budget + %d MiB",
			float64(p)/(1<<20), float64(baseline)/(1<<20), budget>>20, allowance>>20)
	}
	if lost == 0 && sum(r.rec.Metrics(), "preheat_tap_sessions_dropped_total") == 0 {
		t.Errorf("no session lost or dropped: the load did not fill the budget")
	}
}
