package kinesis

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

// fates records the outcome PutTracked reported for each record, by data.
type fates struct {
	mu    sync.Mutex
	by    map[string]stream.Outcome
	twice []string
}

func (f *fates) done(data []byte) func(stream.Outcome) {
	d := string(data)
	return func(o stream.Outcome) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.by == nil {
			f.by = make(map[string]stream.Outcome)
		}
		if _, ok := f.by[d]; ok {
			f.twice = append(f.twice, d)
		}
		f.by[d] = o
	}
}

func (f *fates) count() map[stream.Fate]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := make(map[stream.Fate]int)
	for _, o := range f.by {
		n[o.Fate]++
	}
	return n
}

// sealed puts records into lane as one sealed aggregate, as Put and the
// linger would, with the given seal time.
func sealed(p *Producer, f *fates, lane string, at time.Time, recs ...string) {
	b := &bucket{key: recs[0]}
	for _, r := range recs {
		key := r[:1] // records are named key + index: "a1"
		b.agg.Add(key, "", []byte(r))
		b.recs = append(b.recs, userRecord{key: key, weight: int64(len(r) + 1), done: f.done([]byte(r))})
		b.bytes += int64(len(r) + 1)
		p.pending[0]++
	}
	p.space.Acquire(context.Background(), b.bytes)
	p.sealBucketLocked(lane, b, at)
}

// laneRecords returns the user records of each aggregate queued in lane,
// decoded from the data the producer would send.
func laneRecords(t *testing.T, p *Producer, lane string) [][]string {
	t.Helper()
	var out [][]string
	for _, a := range p.lanes[lane].queue {
		users, err := kpl.Deaggregate(a.data)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for i, u := range users {
			names = append(names, string(u.Data))
			if u.PartitionKey != "" && u.PartitionKey != a.recs[i].key {
				t.Errorf("user record %q has key %q, its record says %q", u.Data, u.PartitionKey, a.recs[i].key)
			}
		}
		if len(names) != len(a.recs) {
			t.Errorf("aggregate holds %d user records, the producer tracks %d", len(names), len(a.recs))
		}
		out = append(out, names)
	}
	return out
}

// TestShedOldestDropsWholeKeys: shedding gives up the oldest aggregate not
// in flight, and with it every later record of its keys, re-encoding the
// aggregates that keep other keys' records; each is reported once, and
// nothing else is.
func TestShedOldestDropsWholeKeys(t *testing.T) {
	p := idleProducer(t)
	var f fates
	t0 := time.Unix(1000, 0)
	sealed(p, &f, "x", t0, "a1", "b1")
	sealed(p, &f, "x", t0.Add(2*time.Second), "a2", "c1", "c2")
	sealed(p, &f, "y", t0.Add(time.Second), "d1")
	sealed(p, &f, "y", t0.Add(3*time.Second), "b2", "d2")

	freed := p.ShedOldest(1)
	if want := int64(4 * 3); freed != want { // a1 b1 a2 b2, 3 bytes each
		t.Errorf("freed %d bytes, want %d", freed, want)
	}
	if got := laneRecords(t, p, "x"); !slices.EqualFunc(got, [][]string{{"c1", "c2"}}, slices.Equal) {
		t.Errorf("lane x holds %q", got)
	}
	if got := laneRecords(t, p, "y"); !slices.EqualFunc(got, [][]string{{"d1"}, {"d2"}}, slices.Equal) {
		t.Errorf("lane y holds %q", got)
	}
	want := map[string]stream.Outcome{
		"a1": {Fate: stream.Lost, Reason: "shed"},
		"b1": {Fate: stream.Lost, Reason: "shed"},
		"a2": {Fate: stream.Lost, Reason: "key_lost"},
		"b2": {Fate: stream.Lost, Reason: "key_lost"},
	}
	f.mu.Lock()
	if fmt.Sprint(f.by) != fmt.Sprint(want) || len(f.twice) > 0 {
		t.Errorf("reported %v (twice: %q), want %v", f.by, f.twice, want)
	}
	f.mu.Unlock()
	if n := p.pending[0]; n != 4 {
		t.Errorf("%d user records pending, want 4", n)
	}

	// The head in flight keeps its records; the rest go, oldest first.
	p.lanes["y"].inFlight = true
	if freed := p.ShedOldest(1); freed != 6 { // c1 c2
		t.Errorf("second shed freed %d bytes, want 6", freed)
	}
	if got := laneRecords(t, p, "y"); !slices.EqualFunc(got, [][]string{{"d1"}, {"d2"}}, slices.Equal) {
		t.Errorf("lane y holds %q", got)
	}
	p.ShedOldest(1 << 20)
	if got := laneRecords(t, p, "y"); !slices.EqualFunc(got, [][]string{{"d1"}}, slices.Equal) {
		t.Errorf("after shedding everything, lane y holds %q; want only its head in flight", got)
	}
	if n := counter(p.opts.Metrics, `preheat_kinesis_dropped_user_records_total{reason="shed"}`); n != 5 {
		t.Errorf("counted %d user records shed, want 5 (a1 b1 c1 c2 d2)", n)
	}
}

// TestStreamHungOutcomeUnknown: records whose every attempt timed out are
// given up as unknown, not lost, and when the frozen server comes back it
// may well store them.
func TestStreamHungOutcomeUnknown(t *testing.T) {
	t.Parallel()
	srv, name := newStream(t, 1)
	po := testProducerOptions(t)
	po.RequestTimeout = 200 * time.Millisecond
	po.DeliveryTimeout = time.Second
	p := newProducer(t, srv.Client(t), name, po)
	// Let the shard listing finish first, so records are not held for it.
	if err := p.Put(ctxTimeout(t, 5*time.Second), "warm", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	srv.Pause(t)
	var f fates
	for i := range 20 {
		d := []byte(fmt.Sprintf("%s/%d", sessionKey(i%4), i))
		if err := p.PutTracked(ctxTimeout(t, 5*time.Second), sessionKey(i%4), d, f.done(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctxTimeout(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	srv.Resume(t)
	if n := f.count(); n[stream.Unknown] == 0 || n[stream.Delivered] != 0 || n[stream.Unknown]+n[stream.Lost] != 20 {
		t.Fatalf("fates %v; want every record given up, some as unknown", n)
	}
	f.mu.Lock()
	for d, o := range f.by {
		if o.Fate == stream.Lost && o.Reason != "key_lost" {
			t.Errorf("%s reported lost (%s) though nothing refused it", d, o.Reason)
		}
	}
	f.mu.Unlock()
	if n := counter(po.Metrics, `preheat_kinesis_unknown_user_records_total{reason="timeout"}`); n == 0 {
		t.Errorf("no unknown user records counted for timeouts")
	}
	if n := counter(po.Metrics, `preheat_kinesis_dropped_user_records_total{reason="timeout"}`); n != 0 {
		t.Errorf("%d user records counted dropped for timeouts", n)
	}
}

// TestOutcomesMatchStreamThroughCrash kills the Kinesis server for longer
// than the delivery timeout while keys are being put, then starts it again
// on its data. Puts follow PutTracked's contract: a key is no longer put
// once a record of it was not delivered. What the stream holds then
// matches the reports: every record reported delivered is there, none
// reported lost is, and each key's records form a prefix of what was put.
func TestOutcomesMatchStreamThroughCrash(t *testing.T) {
	t.Parallel()
	srv := kinesalite.StartPersistent(t)
	const name = "crash"
	srv.CreateStream(t, name, 2)
	po := testProducerOptions(t)
	po.RequestTimeout = 500 * time.Millisecond
	po.DeliveryTimeout = 1500 * time.Millisecond
	p := newProducer(t, srv.Client(t), name, po)

	const keys = 24
	var f fates
	type keyState struct {
		mu   sync.Mutex
		puts []string
		gone bool
	}
	state := make([]keyState, keys)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			ks := &state[k]
			key := sessionKey(k)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				d := []byte(fmt.Sprintf("%s/%06d", key, i))
				done := f.done(d)
				ks.mu.Lock()
				if ks.gone {
					ks.mu.Unlock()
					return
				}
				ks.puts = append(ks.puts, string(d))
				err := p.PutTracked(context.Background(), key, d, func(o stream.Outcome) {
					done(o)
					if o.Fate != stream.Delivered {
						ks.mu.Lock()
						ks.gone = true
						ks.mu.Unlock()
					}
				})
				ks.mu.Unlock()
				if err != nil {
					t.Errorf("put: %v", err)
					return
				}
			}
		})
	}
	time.Sleep(time.Second)
	srv.Stop()
	time.Sleep(3 * time.Second)
	srv.Restart(t)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if err := p.Flush(ctxTimeout(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}

	c := newConsumer(t, srv.Client(t), name, stream.Start{StopAtEnd: true}, testConsumerOptions(t))
	inStream := make(map[string]bool)
	ctx := ctxTimeout(t, 20*time.Second)
	for {
		r, err := c.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		inStream[string(r.Data)] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.twice) > 0 {
		t.Errorf("reported twice: %q", f.twice)
	}
	n := map[stream.Fate]int{}
	for k := range state {
		ks := &state[k]
		prefix := true
		for _, d := range ks.puts {
			o, ok := f.by[d]
			if !ok {
				t.Errorf("%s: never reported", d)
				continue
			}
			n[o.Fate]++
			switch {
			case o.Fate == stream.Delivered && !inStream[d]:
				t.Errorf("%s: reported delivered, not in the stream", d)
			case o.Fate == stream.Lost && inStream[d]:
				t.Errorf("%s: reported lost (%s), in the stream", d, o.Reason)
			case inStream[d] && !prefix:
				t.Errorf("%s: in the stream after an earlier record of its key that is not", d)
			}
			prefix = prefix && inStream[d]
		}
	}
	if n[stream.Lost]+n[stream.Unknown] == 0 || n[stream.Delivered] == 0 {
		t.Fatalf("fates %v: the outage should have cost some records and spared others", n)
	}
	t.Logf("fates %v, %d records in the stream", n, len(inStream))
}

// TestShedAfterUnsureAttemptReportsUnknown: a record shed or given up with
// its key after an attempt whose outcome was never learned may be in the
// stream, and is reported so.
func TestShedAfterUnsureAttemptReportsUnknown(t *testing.T) {
	p := idleProducer(t)
	var f fates
	t0 := time.Unix(1000, 0)
	sealed(p, &f, "x", t0, "a1", "b1")
	sealed(p, &f, "y", t0.Add(time.Second), "a2")
	sealed(p, &f, "y", t0.Add(2*time.Second), "c1", "b2")
	p.lanes["x"].queue[0].unknown = true
	p.lanes["y"].queue[1].unknown = true
	p.ShedOldest(1)
	want := map[string]stream.Outcome{
		"a1": {Fate: stream.Unknown, Reason: "shed"},
		"b1": {Fate: stream.Unknown, Reason: "shed"},
		"a2": {Fate: stream.Lost, Reason: "key_lost"},
		"b2": {Fate: stream.Unknown, Reason: "key_lost"},
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fmt.Sprint(f.by) != fmt.Sprint(want) {
		t.Errorf("reported %v, want %v", f.by, want)
	}
	if got := laneRecords(t, p, "y"); !slices.EqualFunc(got, [][]string{{"c1"}}, slices.Equal) {
		t.Errorf("lane y holds %q", got)
	}
	if !p.lanes["y"].queue[0].unknown {
		t.Errorf("the rest of an aggregate whose attempt may have landed lost that mark")
	}
}
