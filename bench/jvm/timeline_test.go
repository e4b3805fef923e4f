package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
)

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
	var rs []demo.Request
	for i := range 200 {
		d := time.Millisecond
		if i == 150 {
			d = 5 * time.Millisecond
		}
		rs = append(rs, demo.Request{Sent: first.Add(time.Duration(i) * 1600 * time.Microsecond), Latency: d, Write: i == 150})
	}
	got, err := jvmTimeline(clog, gclog, rs)
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
