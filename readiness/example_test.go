package readiness_test

import (
	"fmt"
	"time"

	"github.com/preheatdev/preheat/readiness"
)

func ExampleDetector() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := readiness.NewDetector(start, &readiness.Options{Window: 10 * time.Second, MinWarm: 20 * time.Second})
	for i := 0; ; i++ {
		now := start.Add(time.Duration(i) * time.Second)
		// Jitter falls from 250ms to 3ms and the JIT compiles hard for
		// the first 25 seconds (0s to 24s). The 10s window is clear of that at
		// 34s, and the signals are then held flat for a window.
		jitter, compile := 0.003, 0.0
		if i < 25 {
			jitter += 0.01 * float64(25-i)
			compile = 400
		}
		d.Add(readiness.Jitter, now, jitter)
		d.Add(readiness.Compile, now, compile)
		if dec := d.Decide(now); dec.Outcome != "" {
			fmt.Println(dec.Outcome, dec.At.Sub(start))
			break
		}
	}
	// Output: warm 44s
}
