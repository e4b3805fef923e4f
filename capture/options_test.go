package capture

import (
	"runtime"
	"testing"
)

// TestDefaultExporters: compression never gets every processor, so a proxy
// loop woken by the network finds one free.
func TestDefaultExporters(t *testing.T) {
	for _, c := range []struct{ procs, want int }{
		{1, 1}, {2, 1}, {3, 1}, {4, 2}, {7, 3}, {8, 4}, {64, 4},
	} {
		if got := defaultExporters(c.procs); got != c.want {
			t.Errorf("defaultExporters(%d) = %d, want %d", c.procs, got, c.want)
		}
		if c.procs > 1 && defaultExporters(c.procs) >= c.procs {
			t.Errorf("defaultExporters(%d) leaves no processor free", c.procs)
		}
	}
	// The option's default follows GOMAXPROCS (not set here: that would
	// turn off the runtime's own updates of it); an explicit value is kept.
	if got, want := (&RecorderOptions{}).withDefaults().Exporters, defaultExporters(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("default Exporters with GOMAXPROCS=%d: %d, want %d", runtime.GOMAXPROCS(0), got, want)
	}
	if got := (&RecorderOptions{Exporters: 3}).withDefaults().Exporters; got != 3 {
		t.Errorf("Exporters: 3 became %d", got)
	}
}
