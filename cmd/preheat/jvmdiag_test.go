package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A diagnostic of TestJVMFigures (PREHEAT_JVM_COMPILE_LOGS): what the JVM
// did around the slow requests among the first ones it served. It lines up
// three clocks: the client's send times, HotSpot's compilation log (stamps
// in seconds since the JVM started; the log's opening tag carries the
// start's Unix time in ms) and the GC log (uptime in seconds).

var (
	logStartRe = regexp.MustCompile(`<hotspot_log [^>]*time_ms='(\d+)'`)
	trapRe     = regexp.MustCompile(`<uncommon_trap thread='\d+' reason='([^']*)'[^>]*compile_id='(\d+)'[^>]*stamp='([\d.]+)'[^>]*>\s*<jvms bci='\d+' method='([^'(]*)`)
	attrRe     = regexp.MustCompile(`(\w+)='([^']*)'`)
	gcPauseRe  = regexp.MustCompile(`^\[([\d.]+)s\].*Pause.* ([\d.]+)ms$`)
)

// jvmEvent is one thing on the timeline: at is from the first request.
type jvmEvent struct {
	at   time.Duration
	what string
}

// jvmTimeline returns the slow requests among the first n of l (over 2.5
// times their median), and the uncommon traps, compiles of 2 ms or more and
// GC pauses from 200 ms before the first of them to 50 ms after the last,
// one a line, in time order. A trap names the innermost method of the code
// that failed its assumption, and the compile it threw away.
func jvmTimeline(compileLog, gcLog string, l *jvmLatencies, n int) (string, error) {
	rs := l.requests()
	rs = rs[:min(n, len(rs))]
	if len(rs) == 0 {
		return "", errors.New("no requests")
	}
	first, last := rs[0].sent, rs[len(rs)-1].sent.Sub(rs[0].sent)
	lats := make([]time.Duration, len(rs))
	for i, r := range rs {
		lats[i] = r.lat
	}
	slices.Sort(lats)
	med := lats[len(lats)/2]
	var evs []jvmEvent
	for _, r := range rs {
		if r.lat > med*5/2 {
			kind := "query"
			if r.write {
				kind = "write"
			}
			evs = append(evs, jvmEvent{r.sent.Sub(first), fmt.Sprintf("slow %s: %.1f ms", kind, r.lat.Seconds()*1000)})
		}
	}

	b, err := os.ReadFile(compileLog)
	if err != nil {
		return "", err
	}
	// The JVM merges its compiler threads' logs into the file as it exits;
	// a JVM that was killed leaves the header only.
	if !bytes.Contains(b, []byte("</hotspot_log>")) {
		return "", fmt.Errorf("%q is incomplete: the JVM did not exit cleanly", compileLog)
	}
	m := logStartRe.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%q: no hotspot_log start time", compileLog)
	}
	ms, _ := strconv.ParseInt(string(m[1]), 10, 64)
	// at converts a JVM stamp (seconds since its start) to the timeline.
	at := func(stamp string) (time.Duration, error) {
		s, err := strconv.ParseFloat(stamp, 64)
		if err != nil {
			return 0, fmt.Errorf("stamp %q: %w", stamp, err)
		}
		return time.UnixMilli(ms).Add(time.Duration(s * float64(time.Second))).Sub(first), nil
	}
	from, to := -200*time.Millisecond, last+50*time.Millisecond
	for _, m := range trapRe.FindAllSubmatch(b, -1) {
		if d, err := at(string(m[3])); err == nil && d >= from && d <= to {
			evs = append(evs, jvmEvent{d, fmt.Sprintf("trap %s in %s (compile %s)", m[1], methodName(string(m[4])), m[2])})
		}
	}
	// A compile task is <task ... stamp='S'> ... <task_done ... stamp='E'/>
	// </task>, in its compiler thread's section of the log.
	for rest := b; ; {
		i := bytes.Index(rest, []byte("<task "))
		if i < 0 {
			break
		}
		rest = rest[i:]
		end := bytes.IndexByte(rest, '>')
		if end < 0 {
			break
		}
		task := rest[:end]
		rest = rest[end:]
		body := rest
		// Up to its end, or the next task's start if the log lost its end.
		if close := bytes.Index(body, []byte("</task>")); close >= 0 {
			body = body[:close]
		}
		if next := bytes.Index(body, []byte("<task ")); next >= 0 {
			body = body[:next]
		}
		done := bytes.Index(body, []byte("<task_done "))
		if done < 0 {
			continue // a compile the JVM's exit cut short
		}
		doneTag := body[done:]
		if e := bytes.IndexByte(doneTag, '>'); e >= 0 {
			doneTag = doneTag[:e]
		}
		ta := attrs(task)
		start, err1 := at(ta["stamp"])
		stop, err2 := at(attrs(doneTag)["stamp"])
		if err1 != nil || err2 != nil || stop < from || start > to || stop-start < 2*time.Millisecond {
			continue
		}
		level := ta["level"]
		if level == "" {
			level = "4" // HotSpot leaves out C2's level
		}
		evs = append(evs, jvmEvent{start, fmt.Sprintf("compile %s: %.0f ms at level %s of %s",
			ta["compile_id"], (stop-start).Seconds()*1000, level, methodName(ta["method"]))})
	}
	f, err := os.Open(gcLog)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := gcPauseRe.FindStringSubmatch(sc.Text()); m != nil {
			if d, err := at(m[1]); err == nil && d >= from && d <= to {
				evs = append(evs, jvmEvent{d, "gc pause " + m[2] + " ms"})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %q: %w", gcLog, err)
	}
	slices.SortStableFunc(evs, func(a, b jvmEvent) int { return cmp.Compare(a.at, b.at) })
	var out strings.Builder
	fmt.Fprintf(&out, "first %d requests over %.0f ms, median %.2f ms:\n", len(rs), last.Seconds()*1000, med.Seconds()*1000)
	for _, e := range evs {
		fmt.Fprintf(&out, "  %+7.1f ms  %s\n", e.at.Seconds()*1000, e.what)
	}
	return out.String(), nil
}

// methodName is a log's method attribute without its signature: the class
// and the method's name.
func methodName(m string) string {
	m = html.UnescapeString(m)
	if i := strings.IndexByte(m, '('); i >= 0 {
		m = m[:i]
	}
	return strings.TrimSpace(m)
}

// attrs returns the name='value' attributes of an XML tag.
func attrs(tag []byte) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllSubmatch(tag, -1) {
		out[string(m[1])] = string(m[2])
	}
	return out
}

func TestJVMTimeline(t *testing.T) {
	dir := t.TempDir()
	start := time.UnixMilli(1_700_000_000_000)
	// The first request is sent 10 s after the JVM started.
	first := start.Add(10 * time.Second)
	log := `<?xml version='1.0' encoding='UTF-8'?>
<hotspot_log version='160 1' process='1' time_ms='1700000000000'>
<uncommon_trap thread='7' reason='class_check' action='maybe_recompile' debug_id='0' compile_id='9' compiler='c2' level='4' stamp='10.060'>
<jvms bci='5' method='java.util.concurrent.ConcurrentHashMap computeIfAbsent (Ljava/lang/Object;)V' bytecode='185'/>
</uncommon_trap>
<uncommon_trap thread='7' reason='unstable_if' action='reinterpret' stamp='3.000'>
<jvms bci='1' method='Early before'/>
</uncommon_trap>
<compilation_log thread='8'>
<task compile_id='40' method='java.util.concurrent.ConcurrentHashMap computeIfAbsent (Ljava/lang/Object;)V' bytes='576' count='5000' stamp='10.270'>
<task_done success='1' nmsize='100' stamp='10.295'/>
</task>
<task compile_id='41' method='Tiny m ()V' level='3' stamp='10.100'>
<task_done success='1' stamp='10.101'/>
</task>
<task compile_id='42' method='Cut m ()V' stamp='10.200'>
</compilation_log>
<compilation_log thread='9'>
<task compile_id='39' method='Long &lt;init&gt; ()V' stamp='9.700'>
<task_done success='1' stamp='10.150'/>
</task>
</compilation_log>
</hotspot_log>
`
	gc := "[10.252s][info][gc] GC(21) Pause Young (Normal) (G1 Evacuation Pause) 171M->19M(258M) 2.419ms\n[2.000s][info][gc] GC(1) Pause Young (Normal) 1.0ms\n"
	clog, gclog := filepath.Join(dir, "c.xml"), filepath.Join(dir, "gc.log")
	if err := os.WriteFile(clog, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gclog, []byte(gc), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &jvmLatencies{}
	for i := range 200 {
		d := time.Millisecond
		if i == 150 {
			d = 5 * time.Millisecond
		}
		l.record(first.Add(time.Duration(i)*1600*time.Microsecond), d, i == 150)
	}
	got, err := jvmTimeline(clog, gclog, l, 200)
	if err != nil {
		t.Fatal(err)
	}
	want := `first 200 requests over 318 ms, median 1.00 ms:
   -300.0 ms  compile 39: 450 ms at level 4 of Long <init>
    +60.0 ms  trap class_check in java.util.concurrent.ConcurrentHashMap computeIfAbsent (compile 9)
   +240.0 ms  slow write: 5.0 ms
   +252.0 ms  gc pause 2.419 ms
   +270.0 ms  compile 40: 25 ms at level 4 of java.util.concurrent.ConcurrentHashMap computeIfAbsent
`
	if got != want {
		t.Errorf("timeline:\n%s\nwant:\n%s", got, want)
	}
}
