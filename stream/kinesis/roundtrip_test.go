package kinesis

import (
	"testing"

	"github.com/preheatdev/preheat/stream"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 4} {
		t.Run(map[int]string{1: "one shard", 4: "four shards"}[shards], func(t *testing.T) {
			t.Parallel()
			srv, name := newStream(t, shards)
			cl := srv.Client(t)
			po := testProducerOptions(t)
			p := newProducer(t, cl, name, po)
			var s sent
			putMany(t, p, &s, 40, 30, 3000, 1)
			if err := p.Flush(ctxTimeout(t, 10e9)); err != nil {
				t.Fatal(err)
			}
			co := testConsumerOptions(t)
			c := newConsumer(t, cl, name, stream.Start{StopAtEnd: true}, co)
			got := readAll(t, c)
			checkExactly(t, &s, got)

			users := counter(po.Metrics, "preheat_kinesis_user_records_put_total")
			recs := counter(po.Metrics, "preheat_kinesis_records_put_total")
			if users != uint64(s.total()) || recs == 0 || recs >= users {
				t.Errorf("metrics: %d user records in %d Kinesis records, put %d", users, recs, s.total())
			}
			if n := counter(co.Metrics, "preheat_kinesis_user_records_read_total"); n != uint64(s.total()) {
				t.Errorf("read metric %d, want %d", n, s.total())
			}
			parts := map[string]bool{}
			for _, r := range got {
				parts[r.Partition] = true
			}
			if len(parts) != shards {
				t.Errorf("records came from %d shards, want %d", len(parts), shards)
			}
			t.Logf("%d user records in %d Kinesis records", users, recs)
		})
	}
}
