package jvmfixture

import (
	"strings"
	"testing"
)

func TestSampleFindsTheNamedSampleOnly(t *testing.T) {
	const text = `# TYPE jvm_compilation_time_ms_total counter
jvm_compilation_time_ms_total 1234
sync_mutations_total_extra 7
sync_mutations_total 0
sync_rehearsals_total{form="sandbox"} 12
sync_rehearsals_total{form="dry_run"} 3
`
	f := func(name string, want float64) {
		t.Helper()
		got, err := sample(strings.NewReader(text), name)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", name, got, err, want)
		}
	}
	f("jvm_compilation_time_ms_total", 1234)
	f("sync_mutations_total", 0)
	f(`sync_rehearsals_total{form="sandbox"}`, 12)
	f(`sync_rehearsals_total{form="dry_run"}`, 3)
	f("sync_rehearsals_total", -1)
	f("jvm_scheduler_jitter_seconds", -1)
	if _, err := sample(strings.NewReader("x_total nope\n"), "x_total"); err == nil {
		t.Error("a value that is no number: no error")
	}
}
