#!/usr/bin/env python3
"""Replay the readiness hold over recorded JVM compile logs.

Usage: python3 bench/jvmhold.py FIGURES_LOG=COMPILE_LOG_DIR [...]

FIGURES_LOG is the standard output of
`go run ./bench/jvm figures --compile-logs COMPILE_LOG_DIR` (its run lines
and the warm-ups' "warm: starting" lines; docs/benchmarks-jvm.md), and
COMPILE_LOG_DIR holds the runs' HotSpot compilation logs, runN-V.xml. For
each run it rebuilds the warmed JVM's compile-time counter from HotSpot's
compilation log (each task's time, counted at its end, as
CompilationMXBean counts it), samples its rate over 10 s once a second from
the warm-up's start, and replays the detector's compile rule (window 10 s,
hold 10 s, min-warm 10 s, limit 20 ms/s) with the hold's tolerance at 1
(strict) and above. It prints, per run, the real settle and release, the
rebuilt ones, and the release each tolerance would have given, as a ratio
of the rebuilt settle. Standard library only.
"""
import bisect, datetime, os, re, sys

def parse_xml(path):
    """The JVM's start (Unix seconds) and its compile tasks' (end stamp, ms)."""
    start = None; done = []; cur = {}
    with open(path, errors='replace') as f:
        for line in f:
            if start is None:
                m = re.search(r"<hotspot_log .*time_ms='(\d+)'", line)
                if m: start = int(m.group(1)) / 1000.0
            if line.startswith('<task '):
                m = re.search(r"compile_id='(\d+)'.*?stamp='([\d.]+)'", line)
                if m: cur['t'] = float(m.group(2))
            elif line.startswith('<task_done'):
                m = re.search(r"stamp='([\d.]+)'", line)
                if m and 't' in cur:
                    done.append((float(m.group(1)), (float(m.group(1)) - cur['t']) * 1000))
                    cur = {}
    done.sort()
    return start, done

def runs_of(log):
    out = []; start = None
    for line in open(log, errors='replace'):
        m = re.search(r'time=(\S+) level=INFO msg="warm: starting"', line)
        if m:
            start = datetime.datetime.fromisoformat(m.group(1).replace('Z', '+00:00')).timestamp()
        m = re.search(r'run (\d+) \(([^)]*)\): (\w+) after ([\d.]+)s, compile settled at ([\d.]+)s', line)
        if m and start is not None:  # a run whose warm-up start was not logged is skipped
            out.append(dict(run=int(m.group(1)), variant=m.group(2), outcome=m.group(3),
                            release=float(m.group(4)), settled=float(m.group(5)), start=start))
    return out

def series(jstart, done, wstart, until):
    times = [d[0] for d in done]; cum = [0.0]
    for d in done: cum.append(cum[-1] + d[1])
    def C(t):  # compile ms done by warm-relative time t
        return cum[bisect.bisect_right(times, wstart - jstart + t)]
    pts = []
    for k in range(1, int(until) + 1):
        base = max(0, k - 10)
        pts.append((k, (C(k) - C(base)) / max(k - base, 1)))
    return pts

def settled(pts, limit=20, span=10):
    frm = None
    for i, (t, v) in enumerate(pts):
        if v > limit: frm = None; continue
        if frm is None: frm = i
        if t - pts[frm][0] >= span - 1 - 0.25: return t
    return None

def release(pts, tol, limit=20, window=10, hold=10, minwarm=10):
    since = None
    for i, (t, v) in enumerate(pts):
        if t < window: continue
        win = [p[1] for p in pts if t - window < p[0] <= t]
        lim = limit * (tol if since is not None else 1)
        flat = max(win) <= lim
        if not flat: since = None; continue
        if since is None: since = t
        if t - since >= hold and t >= minwarm: return t
    return None

tols = [1, 1.25, 1.5, 2, 3]
def ratio(a, b):
    return '%.2f' % (a / b) if a and b else '-'

if len(sys.argv) < 2 or any('=' not in a for a in sys.argv[1:]):
    sys.exit(__doc__)
for log, cdir in (a.split('=', 1) for a in sys.argv[1:]):
    runs = runs_of(log)
    variants = []
    for r in runs:
        if r['variant'] not in variants: variants.append(r['variant'])
    for r in runs:
        x = os.path.join(cdir, 'run%d-%d.xml' % (r['run'], variants.index(r['variant'])))
        if not os.path.exists(x): continue
        js, done = parse_xml(x)
        # A minute past the real release: from the release on, the JVM
        # takes the run's real traffic, so a rebuilt release later than
        # the real one is only an estimate.
        pts = series(js, done, r['start'], r['release'] + 60)
        s = settled(pts)
        rel = {tol: release(pts, tol) for tol in tols}
        print('%-16s run %d %-10s actual settled %5.0f release %5.0f (%s) | sim settled %s strict %s | ' % (
            os.path.basename(log), r['run'], r['variant'][:10], r['settled'], r['release'], ratio(r['release'], r['settled']), s, rel[1]) +
            ' '.join('tol %g: %s (%s)' % (t, rel[t], ratio(rel[t], s)) for t in tols[1:]))
