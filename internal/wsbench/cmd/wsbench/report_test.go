package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := `{"round":1,"target":"nginx","sat":{"mode":"closed","conns":64,"seconds":10,"messages_per_sec":20000,"total":220000},"sat_cpu_s":4.4,"fixed":{"mode":"open","conns":64,"rate":2000,"seconds":10,"total":22000,"rtt":{"p50_us":300,"p99_us":2000}},"fixed_cpu_s":1.1,"idle_conns":2000,"rss_before_kb":20000,"rss_idle_kb":56000}
{"round":1,"target":"tap-off","sat":{"mode":"closed","conns":64,"seconds":10,"messages_per_sec":19000,"total":209000},"sat_cpu_s":6.27,"fixed":{"mode":"open","conns":64,"rate":2000,"seconds":10,"total":22000,"rtt":{"p50_us":320,"p99_us":2100}},"fixed_cpu_s":2.2,"idle_conns":2000,"rss_before_kb":14000,"rss_idle_kb":44000}
{"round":1,"target":"tap-on","sat":{"mode":"closed","conns":64,"seconds":10,"messages_per_sec":18000,"total":198000},"sat_cpu_s":6.93,"sat_frames":396000,"fixed":{"mode":"open","conns":64,"rate":2000,"seconds":10,"total":22000,"rtt":{"p50_us":330,"p99_us":2400}},"fixed_cpu_s":2.42,"fixed_frames":44000,"idle_conns":2000,"rss_before_kb":14000,"rss_idle_kb":46000}
`
	var out strings.Builder
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| nginx | 20000 | 1.00× | 300 | 2000 | 1.00× |",
		"| tap-on | 18000 | 0.90× | 330 | 2400 | 1.20× |",
		"20.0 | 18.0 |", // nginx: CPU µs/msg at saturation, KiB per idle connection
		// (35 - 30 µs/msg) / 2 frames per message at saturation.
		"2.50 µs (5.0 µs/msg more than capture off, 2.00 frames recorded per message) at saturation",
		"messages/s 0.90× nginx's (aim ≥ 0.9×): met",
		"p99 round trip 1.20× nginx's (aim ≤ 1.1×): MISSED",
		"16.0 KiB per idle connection (aim ≤ 16 KiB): met",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
