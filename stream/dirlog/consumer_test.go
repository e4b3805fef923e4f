package dirlog

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/preheatdev/preheat/stream"
)

// The follow tests write a fixed schedule of records: record i has key
// k(i mod followKeys) and is that key's record i/followKeys. Sizes range
// from under a tenth of a segment to more than a whole one, so that
// segments hold one to a few records and roll all the time.
const (
	followKeys       = 7
	followPartitions = 3
	followSegment    = 4 << 10
	followPoll       = 100 * time.Microsecond

	followPre   = 120 // written and flushed before any follower opens
	followMid   = 520 // end of the first writing phase
	followTotal = 800 // end of the second

	followDirEnv  = "DIRLOG_TEST_FOLLOW_DIR"
	followFromEnv = "DIRLOG_TEST_FOLLOW_FROM"
	followToEnv   = "DIRLOG_TEST_FOLLOW_TO"
)

func followRecord(i int) (key string, data []byte) {
	key = fmt.Sprintf("k%d", i%followKeys)
	n := 64 + (i*7919)%1800
	if i%61 == 0 {
		n = followSegment + 500 // a record larger than a segment
	}
	return key, payload(key, i/followKeys, n)
}

// followProducerOptions writes every record through at once with buffered
// 1, or in batches of several records otherwise. Retention is off: every
// record must stay readable.
func followProducerOptions(buffered int) *ProducerOptions {
	return &ProducerOptions{
		Partitions:       followPartitions,
		SegmentBytes:     followSegment,
		MaxBufferedBytes: buffered,
		FlushInterval:    time.Millisecond,
		MaxAge:           -1,
		MaxBytes:         -1,
		Logger:           quiet,
	}
}

// followLastSeq is the seq of key's last record in the schedule.
func followLastSeq(key string) int {
	k, _ := strconv.Atoi(key[1:])
	return (followTotal - 1 - k) / followKeys
}

func putFollowRange(ctx context.Context, p *Producer, from, to int) error {
	for i := from; i < to; i++ {
		key, data := followRecord(i)
		if err := p.Put(ctx, key, data); err != nil {
			return fmt.Errorf("put record %d: %w", i, err)
		}
	}
	return nil
}

// TestHelperFollowWriter is the writer process of the follow tests, not a
// test of its own: it opens the log, says "writing", puts records [from,
// to) of the schedule one write each, and closes the log.
func TestHelperFollowWriter(t *testing.T) {
	dir := os.Getenv(followDirEnv)
	if dir == "" {
		t.Skip("helper process for TestFollowerSeesEveryRecordWhileWriterRolls")
	}
	from, _ := strconv.Atoi(os.Getenv(followFromEnv))
	to, _ := strconv.Atoi(os.Getenv(followToEnv))
	p, err := NewProducer(dir, followProducerOptions(1))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("writing")
	if err := putFollowRange(context.Background(), p, from, to); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	if err := p.Close(context.Background()); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
}

// followWriter appends records [from, to) of the schedule; start returns
// once writing has begun or is about to, wait once it has ended.
type followWriter interface {
	start(t *testing.T, from, to int)
	wait(t *testing.T)
}

// inProcessWriter writes with one producer in this process throughout.
type inProcessWriter struct {
	p    *Producer
	done chan error
}

func (w *inProcessWriter) start(t *testing.T, from, to int) {
	w.done = make(chan error, 1)
	go func() { w.done <- putFollowRange(context.Background(), w.p, from, to) }()
}

func (w *inProcessWriter) wait(t *testing.T) {
	t.Helper()
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
}

// processWriter starts a new writer process for every range, so the
// producer also reopens the log (scanning its active segments) while
// followers read it.
type processWriter struct {
	dir   string
	cmd   *exec.Cmd
	lines chan string
}

func (w *processWriter) start(t *testing.T, from, to int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFollowWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), followDirEnv+"="+w.dir,
		followFromEnv+"="+strconv.Itoa(from), followToEnv+"="+strconv.Itoa(to),
		// Under -race, not the race runtime's second of sleep at exit.
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.cmd = cmd
	w.lines = make(chan string, 16)
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if w.cmd == cmd { // the test failed before wait
			cmd.Process.Kill()
			for range w.lines {
			}
			cmd.Wait()
		}
	})
	select {
	case l, ok := <-w.lines:
		if !ok || l != "writing" {
			t.Fatalf("writer process: %q", l)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("writer process did not start writing within 2 minutes")
	}
}

func (w *processWriter) wait(t *testing.T) {
	t.Helper()
	var rest []string
	for l := range w.lines {
		rest = append(rest, l)
	}
	err := w.cmd.Wait()
	w.cmd = nil
	if err != nil {
		t.Fatalf("writer process: %v %q", err, rest)
	}
}

// follower is a consumer started at one kind of position that reads until
// it has seen every key's last record.
type follower struct {
	name  string
	c     *Consumer
	start []int64           // each partition's position once opened
	since time.Time         // Start.Time, or zero
	got   [][]stream.Record // per partition
	err   error
}

func openFollower(t *testing.T, dir, name string, start stream.Start) *follower {
	t.Helper()
	c := openConsumer(t, dir, start, &ConsumerOptions{PollInterval: followPoll})
	f := &follower{name: name, c: c, since: start.Time, got: make([][]stream.Record, followPartitions)}
	for _, p := range c.parts {
		f.start = append(f.start, p.pos())
	}
	return f
}

func (f *follower) follow(ctx context.Context) {
	seen := 0 // keys whose last record has been read
	for seen < followKeys {
		r, err := f.c.Next(ctx)
		if err != nil {
			f.err = fmt.Errorf("%s: Next after %d records: %w", f.name, f.count(), err)
			return
		}
		i, _ := strconv.Atoi(r.Partition)
		f.got[i] = append(f.got[i], r)
		if _, seq, ok := parsePayload(r.Data); ok && seq == followLastSeq(r.Key) {
			seen++
		}
	}
}

func (f *follower) count() int {
	n := 0
	for _, g := range f.got {
		n += len(g)
	}
	return n
}

// check compares what f read in each partition with what it should have:
// the records of all, the whole log, from where f started on.
func (f *follower) check(t *testing.T, all [][]stream.Record) {
	t.Helper()
	for i, want := range all {
		from := slices.IndexFunc(want, func(r stream.Record) bool {
			if !f.since.IsZero() {
				return !r.Time.Before(f.since)
			}
			return recordStart(r) >= f.start[i]
		})
		if from < 0 {
			from = len(want)
		}
		want = want[from:]
		got := f.got[i]
		for j := range min(len(got), len(want)) {
			if got[j].Position != want[j].Position {
				what := "out of order or repeated"
				if k := slices.IndexFunc(want, func(r stream.Record) bool { return r.Position == got[j].Position }); k > j {
					what = fmt.Sprintf("%d records skipped", k-j)
				}
				t.Fatalf("%s, partition %d, started at %d: record %d is at position %s, want %s: %s",
					f.name, i, f.start[i], j, got[j].Position, want[j].Position, what)
			}
			if string(got[j].Data) != string(want[j].Data) || got[j].Key != want[j].Key {
				t.Fatalf("%s, partition %d: record at %s differs from the log's", f.name, i, got[j].Position)
			}
		}
		if len(got) < len(want) && f.err != nil {
			t.Fatalf("%s, partition %d, started at %d: read %d records, want %d: the last ones skipped or never found (%v)",
				f.name, i, f.start[i], len(got), len(want), f.err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s, partition %d, started at %d: read %d records, want %d", f.name, i, f.start[i], len(got), len(want))
		}
	}
}

// recordStart is the logical offset where r starts.
func recordStart(r stream.Record) int64 {
	end, _ := strconv.ParseInt(r.Position, 10, 64)
	return end - int64(recHeaderLen+len(r.Key)+len(r.Data))
}

// TestFollowerSeesEveryRecordWhileWriterRolls follows a log whose segments
// roll every few records, written by a producer in this process or by a
// succession of writer processes, with consumers started at the oldest
// record, at a position inside a segment, at the newest record and at a
// time, the last two while the writer is rolling. Each must read every
// record from where it started, none skipped. Run it many times, with
// -race and -cpu 1,2,4: each run is a few hundred rolls.
func TestFollowerSeesEveryRecordWhileWriterRolls(t *testing.T) {
	t.Run("writer=in-process", func(t *testing.T) { testFollowWhileRolling(t, false) })
	if testing.Short() {
		return
	}
	t.Run("writer=processes", func(t *testing.T) { testFollowWhileRolling(t, true) })
}

func testFollowWhileRolling(t *testing.T, processes bool) {
	dir := t.TempDir()
	// A bound on a hang, not on speed: a round takes under a second, but
	// ten and more under -race on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var w followWriter
	buffered := 1
	if !processes {
		buffered = 8 << 10
	}
	p := openProducer(t, dir, followProducerOptions(buffered))
	if err := putFollowRange(ctx, p, 0, followPre); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if processes {
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		w = &processWriter{dir: dir}
	} else {
		w = &inProcessWriter{p: p}
	}

	// A position inside a segment: where a consumer that has read a few
	// records would resume.
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	for range 1 + rand.IntN(followPre-1) {
		if _, err := c.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	positions := c.Positions()
	c.Close()

	var fs []*follower
	var wg sync.WaitGroup
	defer func() {
		cancel() // a test that failed early stops its followers
		wg.Wait()
	}()
	run := func(f *follower) {
		fs = append(fs, f)
		wg.Go(func() { f.follow(ctx) })
	}
	run(openFollower(t, dir, "oldest", stream.Start{}))
	run(openFollower(t, dir, "after", stream.Start{After: positions}))
	w.start(t, followPre, followMid)
	run(openFollower(t, dir, "latest", stream.Start{Latest: true}))
	run(openFollower(t, dir, "time", stream.Start{Time: time.Now()}))
	w.wait(t)
	w.start(t, followMid, followTotal)
	w.wait(t)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	all := make([][]stream.Record, followPartitions)
	c = openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	ck := newChecker(t, followPartitions)
	for _, r := range readAll(t, c) {
		ck.check(r)
		i, _ := strconv.Atoi(r.Partition)
		all[i] = append(all[i], r)
	}
	for k := range followKeys {
		key := fmt.Sprintf("k%d", k)
		if want := followLastSeq(key) + 1; ck.next[key] != want {
			t.Fatalf("the log holds %d records of %s, want %d", ck.next[key], key, want)
		}
	}
	for _, f := range fs {
		f.check(t, all) // before f.err: a follower that missed a key's last record waits for it in vain
		if f.err != nil {
			t.Fatal(f.err)
		}
		if n := counter(f.c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); n != 0 {
			t.Fatalf("%s: %d corrupt records counted", f.name, n)
		}
	}
}

// TestSealedSegmentWithBadHeaderIsSkipped flips a byte of a sealed
// segment's header: that segment is counted as corrupt and skipped, the
// ones around it are read whole.
func TestSealedSegmentWithBadHeaderIsSkipped(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 1, SegmentBytes: 4 << 10})
	putSeq(t, p, map[string]int{}, 100, 1, 200)
	p.Close(context.Background())

	pdir := partitionDir(dir, 0)
	bases, err := listSegments(pdir)
	if err != nil || len(bases) < 3 {
		t.Fatalf("%d segments, %v", len(bases), err)
	}
	seg := filepath.Join(pdir, segName(bases[1]))
	_, _, inSeg := segEnd(t, seg)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 0); err != nil { // the magic
		t.Fatal(err)
	}
	f.Close()

	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	recs := readAll(t, c)
	if len(recs) != 100-inSeg {
		t.Fatalf("read %d records, want %d", len(recs), 100-inSeg)
	}
	if n := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); n != 1 {
		t.Fatalf("corrupt count %d, want 1", n)
	}
	_, first, _ := parsePayload(recs[0].Data)
	_, next, _ := parsePayload(recs[(bases[1]-bases[0])/(recHeaderLen+4+200)].Data)
	if first != 0 || next != int((bases[2]-bases[0])/(recHeaderLen+4+200)) {
		t.Fatalf("records around the bad segment: first seq %d, after it %d", first, next)
	}
}
