package dirlog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/preheatdev/preheat/stream"
)

const (
	helperDirEnv  = "DIRLOG_TEST_HELPER_DIR"
	helperTornEnv = "DIRLOG_TEST_HELPER_TORN"
	helperKeys    = 16
)

// TestHelperWriter is the writer process of TestCrossProcess, not a test of
// its own. It puts records and reports on stdout, after each Flush, how
// many it has put. With helperTornEnv it stops after that many records,
// leaves half a record at the end of a partition as a write cut short by a
// crash would, reports "torn" and waits to be killed; otherwise it writes
// until it is killed.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrossProcess")
	}
	p, err := NewProducer(dir, &ProducerOptions{SegmentBytes: 16 << 10, FlushInterval: time.Millisecond, Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	stopAt, _ := strconv.Atoi(os.Getenv(helperTornEnv))
	seq := map[string]int{}
	for n := 1; ; n++ {
		key := fmt.Sprintf("s%d", n%helperKeys)
		if err := p.Put(context.Background(), key, payload(key, seq[key], n%900)); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		seq[key]++
		if n%25 == 0 || n == stopAt {
			if err := p.Flush(context.Background()); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			fmt.Println("flushed", n)
		}
		if n == stopAt {
			key := fmt.Sprintf("s%d", (n+1)%helperKeys)
			rec := appendRecord(nil, time.Now().UnixNano(), key, payload(key, seq[key], 500))
			wp := p.parts[partitionOf(key, len(p.parts))]
			if _, err := wp.f.Write(rec[:len(rec)/2]); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			fmt.Println("torn")
			select {}
		}
	}
}

// TestCrossProcess reads the log while a writer in another process
// appends to it, kills the writer with SIGKILL, reopens the log for
// writing and checks that every record the writer had flushed is read,
// nothing else, and that reading follows on across the repair.
func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	for _, torn := range []bool{true, false} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) { testCrossProcess(t, torn) })
	}
}

func testCrossProcess(t *testing.T, torn bool) {
	dir := t.TempDir()
	openProducer(t, dir, &ProducerOptions{Partitions: 8}).Close(context.Background())

	const stopAt = 1500
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	if torn {
		cmd.Env = append(cmd.Env, helperTornEnv+"="+strconv.Itoa(stopAt))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
	}
	defer kill()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	defer func() {
		kill()
		for range lines { // the reader goroutine ends with the pipe
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := openConsumer(t, dir, stream.Start{}, nil)
	ck := newChecker(t, 8)
	flushed, read, sawTorn := 0, 0, false
	handle := func(l string, ok bool) {
		t.Helper()
		switch n, err := strconv.Atoi(strings.TrimPrefix(l, "flushed ")); {
		case !ok:
			t.Fatal("writer exited")
		case l == "torn":
			sawTorn = true
		case err == nil:
			flushed = n
		default:
			t.Fatalf("writer: %s", l)
		}
	}
	// Read concurrently with the writer until we have read what it had
	// flushed when we were 500 records in; in the torn case, until it has
	// left its torn write and we have read everything before it.
	goal := 0
	for read < 500 || read < goal || (torn && !sawTorn) {
	drain:
		for {
			select {
			case l, ok := <-lines:
				handle(l, ok)
			default:
				break drain
			}
		}
		if torn || read < 500 {
			goal = flushed
		}
		if torn && read == stopAt {
			if !sawTorn {
				select {
				case l, ok := <-lines:
					handle(l, ok)
				case <-ctx.Done():
					cmd.Process.Signal(syscall.SIGQUIT) // the writer's stacks, to stderr
					t.Fatalf("no torn write reported; %d flushed", flushed)
				}
			}
			continue
		}
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d records (%d flushed): %v", read, flushed, err)
		}
		ck.check(r)
		read++
	}
	kill()
	for l := range lines {
		if n, err := strconv.Atoi(strings.TrimPrefix(l, "flushed ")); err == nil {
			flushed = n
		}
	}

	// Reopen for writing: the torn tail is cut, and what the writer had
	// flushed is all there.
	p := openProducer(t, dir, &ProducerOptions{FlushInterval: time.Millisecond})
	cut := counter(p.Metrics(), "preheat_dirlog_torn_tails_cut_total")
	if torn && cut != 1 {
		t.Fatalf("torn tails cut: %d, want 1", cut)
	}
	t.Logf("writer flushed %d, read %d concurrently, torn tails cut %d", flushed, read, cut)

	// The consumer that was waiting at the torn tail goes on with what is
	// written after the repair, and reads nothing else.
	seq := map[string]int{}
	for k, v := range ck.next {
		seq[k] = v
	}
	all := newChecker(t, 8)
	c2 := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	for _, r := range readAll(t, c2) {
		all.check(r)
	}
	total := 0
	for _, n := range all.next {
		total += n
	}
	if total < flushed {
		t.Fatalf("log holds %d records, writer flushed %d", total, flushed)
	}
	for k, v := range all.next {
		seq[k] = v
	}
	for k := range helperKeys {
		key := fmt.Sprintf("s%d", k)
		if err := p.Put(ctx, key, payload(key, seq[key], 100)); err != nil {
			t.Fatal(err)
		}
	}
	for read < total+helperKeys {
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after the repair, %d of %d: %v", read, total+helperKeys, err)
		}
		ck.check(r)
		read++
	}
	if got := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); got != 0 {
		t.Fatalf("consumer counted %d corrupt records", got)
	}
}

// TestTornTail cuts a segment short in the middle of a record and appends
// garbage to another, as crashes would leave them, and checks that opening
// a producer cuts both back to the last whole record.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 2, SegmentBytes: 8 << 10})
	seq := map[string]int{}
	putSeq(t, p, seq, 200, 4, 150)
	p.Close(context.Background())

	lastSeg := func(part int) string {
		bases, err := listSegments(partitionDir(dir, part))
		if err != nil || len(bases) < 2 {
			t.Fatalf("partition %d: %d segments, %v", part, len(bases), err)
		}
		return filepath.Join(partitionDir(dir, part), segName(bases[len(bases)-1]))
	}
	seg0, seg1 := lastSeg(0), lastSeg(1)
	fi, err := os.Stat(seg0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg0, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(seg1, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("\x40\x00\x00\x00garbage that is no record"))
	f.Close()

	// Readers before the repair stop at the last whole record.
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	before := readAll(t, c)
	if len(before) != 199 {
		t.Fatalf("read %d records before the repair, want 199", len(before))
	}

	p = openProducer(t, dir, nil)
	if got := counter(p.Metrics(), "preheat_dirlog_torn_tails_cut_total"); got != 2 {
		t.Fatalf("torn tails cut %d, want 2", got)
	}
	if fi2, _ := os.Stat(seg0); fi2.Size() >= fi.Size()-5 {
		t.Fatalf("segment not cut: %d bytes", fi2.Size())
	}
	ck := newChecker(t, 2)
	for _, r := range before {
		ck.check(r)
	}
	// The record lost to the cut is written again and follows on.
	for k, v := range ck.next {
		seq[k] = v
	}
	putSeq(t, p, seq, 4, 4, 150)
	p.Close(context.Background())
	c = openConsumer(t, dir, stream.Start{After: c.Positions(), StopAtEnd: true}, nil)
	after := readAll(t, c)
	if len(after) != 4 {
		t.Fatalf("read %d records after the repair, want 4", len(after))
	}
	for _, r := range after {
		ck.check(r)
	}
}

// TestTornHeader checks a segment left without a whole header, as a crash
// while rolling would leave it.
func TestTornHeader(t *testing.T) {
	dir := t.TempDir()
	p := openProducer(t, dir, &ProducerOptions{Partitions: 1})
	putSeq(t, p, map[string]int{}, 10, 1, 100)
	p.Close(context.Background())
	pdir := partitionDir(dir, 0)
	end, _, _ := segEnd(t, filepath.Join(pdir, segName(0)))
	next := filepath.Join(pdir, segName(end-segHeaderLen))
	if err := os.WriteFile(next, []byte("PHD"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	if recs := readAll(t, c); len(recs) != 10 {
		t.Fatalf("read %d records, want 10", len(recs))
	}
	p = openProducer(t, dir, nil)
	putSeq(t, p, map[string]int{"key0": 10}, 1, 1, 100)
	p.Close(context.Background())
	c = openConsumer(t, dir, stream.Start{StopAtEnd: true}, nil)
	if recs := readAll(t, c); len(recs) != 11 {
		t.Fatalf("read %d records, want 11", len(recs))
	}
	if got := counter(c.Metrics(), "preheat_dirlog_corrupt_records_skipped_total"); got != 0 {
		t.Fatalf("corrupt records: %d", got)
	}
}

func segEnd(t *testing.T, path string) (end, last int64, count int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end, last, count, err = scanSegment(f)
	if err != nil {
		t.Fatal(err)
	}
	return end, last, count
}
