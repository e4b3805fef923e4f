package loadtest_test

import (
	"fmt"

	"github.com/preheatdev/preheat/loadtest"
)

func ExampleParseThreshold() {
	for _, s := range []string{"p99<250ms", "p99[tasks.list] < 100ms", "errors<0.1%"} {
		th, err := loadtest.ParseThreshold(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s %q %s %g\n", th.Metric, th.Kind, th.Op, th.Value)
	}
	// Output:
	// p99 "" < 250
	// p99 "tasks.list" < 100
	// errors "" < 0.001
}
