package kpl_test

import (
	"fmt"

	"github.com/preheatdev/preheat/stream/kinesis/kpl"
)

func Example() {
	var a kpl.Aggregator
	for _, key := range []string{"session-a", "session-b", "session-a"} {
		// SizeWith tells whether a record still fits under a limit, such
		// as the 1 MiB of a Kinesis record, before adding it.
		if a.SizeWith(key, "", 5) > 1<<20 {
			break
		}
		a.Add(key, "", []byte("batch"))
	}
	data := a.Encode(nil)
	fmt.Println(len(data) == a.Size(), kpl.IsAggregated(data))

	recs, err := kpl.Deaggregate(data)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Println(r.PartitionKey, string(r.Data))
	}
	// Output:
	// true true
	// session-a batch
	// session-b batch
	// session-a batch
}
