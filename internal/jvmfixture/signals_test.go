package jvmfixture_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/internal/jvmfixture"
)

// TestSignalTrace logs, once a second, the warmth signals of a fresh JVM
// under steady real traffic and no warmer: its JIT compile time and rate
// over 10 s, its scheduler jitter p99 (the bucket bound holding it) and the
// client-measured request latency. It is how docs/benchmarks-jvm.md's
// signal shapes were measured:
//
//	PREHEAT_JVM_TRACE=1 [TRACE_FLAGS="-Xint"] [TRACE_RATE=600] [TRACE_FOR=60s] go test -run SignalTrace -v ./internal/jvmfixture/
func TestSignalTrace(t *testing.T) {
	if os.Getenv("PREHEAT_JVM_TRACE") == "" {
		t.Skip("PREHEAT_JVM_TRACE not set")
	}
	var flags []string
	if f := os.Getenv("TRACE_FLAGS"); f != "" {
		flags = strings.Fields(f)
	}
	d, err := time.ParseDuration(os.Getenv("TRACE_FOR"))
	if err != nil {
		d = time.Minute
	}
	rate, err := strconv.ParseFloat(os.Getenv("TRACE_RATE"), 64)
	if err != nil {
		rate = 600
	}
	s := jvmfixture.Start(t, &jvmfixture.Options{JVMFlags: flags})
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, deferred below
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()

	var mu sync.Mutex
	var lats []time.Duration
	const clients = 4
	for i := range clients {
		wg.Go(func() {
			g := corpus.New(uint64(100 + i))
			c, _, err := websocket.Dial(ctx, s.URL(), nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(8 << 20)
			if c.Write(ctx, websocket.MessageText, g.Connect()) != nil {
				return
			}
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
			tick := time.NewTicker(time.Duration(float64(time.Second) * clients / rate))
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				msg := g.Query(g.Kind())
				if n%10 == 9 {
					msg = g.Mutation()
				}
				start := time.Now()
				if c.Write(ctx, websocket.MessageText, msg) != nil {
					return
				}
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				mu.Lock()
				lats = append(lats, time.Since(start))
				mu.Unlock()
			}
		})
	}

	start := time.Now()
	var compile []float64
	var prevJitter []uint64
	for sec := 1; ; sec++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(time.Duration(sec) * time.Second))):
		}
		fams := scrapeFamilies(t, s)
		c := -1.0
		if f, ok := fams["jvm_compilation_time_ms_total"]; ok {
			c = f.GetMetric()[0].GetCounter().GetValue()
		}
		compile = append(compile, c)
		rate10 := "-"
		if n := len(compile); n > 10 && c >= 0 {
			rate10 = strconv.FormatFloat((c-compile[n-11])/10, 'f', 1, 64)
		}
		var bounds []float64
		var cum []uint64
		for _, b := range fams["jvm_scheduler_jitter_seconds"].GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
			cum = append(cum, b.GetCumulativeCount())
		}
		jitter := "-"
		if prevJitter != nil {
			total := cum[len(cum)-1] - prevJitter[len(cum)-1]
			for i := range cum {
				if float64(cum[i]-prevJitter[i]) >= 0.99*float64(total) {
					jitter = "<=" + strconv.FormatFloat(bounds[i], 'g', -1, 64) + "s"
					break
				}
			}
		}
		prevJitter = cum
		mu.Lock()
		l := slices.Clone(lats)
		lats = lats[:0]
		mu.Unlock()
		slices.Sort(l)
		q := func(q float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return l[min(len(l)-1, int(q*float64(len(l))))]
		}
		t.Logf("t=%3ds compile %7.0f ms, rate over 10s %6s ms/s; jitter p99 %8s; %4d requests p50 %6.2fms p99 %6.2fms",
			sec, c, rate10, jitter, len(l), float64(q(0.5))/1e6, float64(q(0.99))/1e6)
	}
}

func scrapeFamilies(t *testing.T, s *jvmfixture.Server) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(scrape(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}
