package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"html"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
)

// A diagnostic of figures (--compile-logs): what the JVM did around the
// slow requests among the first ones it served. It lines up three clocks:
// the client's send times, HotSpot's compilation log (stamps in seconds
// since the JVM started; the log's opening tag carries the start's Unix
// time in ms) and the GC log (uptime in seconds).

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

// jvmTimeline returns the slow requests among rs, the first requests a JVM
// answered in send order (over 2.5 times their median), and the uncommon
// traps, compiles of 2 ms or more and GC pauses from 200 ms before the
// first of them to 50 ms after the last, one a line, in time order. A trap
// names the innermost method of the code that failed its assumption, and
// the compile it threw away.
func jvmTimeline(compileLog, gcLog string, rs []demo.Request) (string, error) {
	if len(rs) == 0 {
		return "", errors.New("no requests")
	}
	first, last := rs[0].Sent, rs[len(rs)-1].Sent.Sub(rs[0].Sent)
	lats := make([]time.Duration, len(rs))
	for i, r := range rs {
		lats[i] = r.Latency
	}
	slices.Sort(lats)
	med := lats[len(lats)/2]
	var evs []jvmEvent
	for _, r := range rs {
		if r.Latency > med*5/2 {
			evs = append(evs, jvmEvent{r.Sent.Sub(first), fmt.Sprintf("slow %s: %.1f ms", kind(r), r.Latency.Seconds()*1000)})
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

// kind names a request's kind: "query" or "write".
func kind(r demo.Request) string {
	if r.Write {
		return "write"
	}
	return "query"
}

// dumpRequests writes rs, the first requests a JVM answered in send order,
// to path: a header line with the first request's send time in Unix ms,
// then one line a request with its send time in ms after the first, its
// latency in ms, and its kind (a diagnostic of what makes a first-200
// p99).
func dumpRequests(path string, rs []demo.Request) error {
	var b strings.Builder
	if len(rs) > 0 {
		fmt.Fprintf(&b, "# first request sent at Unix ms %d\n", rs[0].Sent.UnixMilli())
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "%.2f %.3f %s\n", r.Sent.Sub(rs[0].Sent).Seconds()*1000, r.Latency.Seconds()*1000, kind(r))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
