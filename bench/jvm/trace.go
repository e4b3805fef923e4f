package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/preheatdev/preheat/internal/demo"
	"github.com/preheatdev/preheat/internal/jvmfixture"
	"github.com/preheatdev/preheat/readiness"
)

// jitterMetric is the JVM fixture's scheduler jitter histogram.
const jitterMetric = "jvm_scheduler_jitter_seconds"

// trace prints, once a second, the warmth signals of a fresh JVM under
// steady real traffic and no warmer: its JIT compile time and that time's
// rate over 10 s, its scheduler jitter p99 over the second (the bucket
// bound holding it) and the latency of the requests answered in the
// second. It is how the signal shapes of docs/benchmarks-jvm.md ("The
// warmth signals of this JVM") are measured; --jvm-flags -Xint or
// -XX:TieredStopAtLevel=1 traces the controls.
func trace(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	jvmFlags := fs.String("jvm-flags", "", `flags for the JVM, space-separated, such as "-Xint" (default the fixture's, "-Xms256m -Xmx512m")`)
	rate := fs.Float64("rate", 600, "requests per second of all the clients together")
	clients := fs.Int("clients", 4, "clients connected at once")
	d := fs.Duration("for", time.Minute, "how long the trace runs")
	if err := parse(fs, out, args); err != nil {
		return err
	}
	if *rate <= 0 || *clients <= 0 || *d <= 0 {
		return usagef("trace: --rate, --clients and --for must be positive")
	}
	s, err := launch(ctx, &jvmfixture.Options{JVMFlags: strings.Fields(*jvmFlags)})
	if err != nil {
		return err
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(ctx, *d)
	reqs := &demo.Requests{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		demo.Pace(ctx, s.URL(), &demo.PaceOptions{Clients: *clients, Rate: *rate, Record: reqs}, 100)
	}()
	defer func() {
		cancel()
		<-done
	}()

	var tr signalTrace
	start := time.Now()
	for sec := 1; ; sec++ {
		if err := sleep(ctx, time.Until(start.Add(time.Duration(sec)*time.Second))); err != nil {
			if n := reqs.Errors(); n > 0 {
				return fmt.Errorf("trace: %d client sessions failed", n)
			}
			return nil
		}
		fams, err := scrapeFamilies(ctx, s.MetricsURL())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("trace: %w", err)
		}
		now := time.Now()
		fmt.Fprintln(out, tr.second(sec, fams, answered(reqs, now.Add(-time.Second), now)))
	}
}

// signalTrace is what one second's line of a trace needs of the seconds
// before it.
type signalTrace struct {
	compile    []float64 // compile time in ms at each second, -1 if absent
	prevJitter []uint64  // the jitter histogram's cumulative counts a second ago
}

// second returns the line for second sec from the metric families scraped
// then and the latencies of the requests answered in the second.
func (tr *signalTrace) second(sec int, fams map[string]*dto.MetricFamily, lats []time.Duration) string {
	c := -1.0
	if f, ok := fams[readiness.DefaultCompileMetric]; ok && len(f.GetMetric()) > 0 {
		c = f.GetMetric()[0].GetCounter().GetValue()
	}
	tr.compile = append(tr.compile, c)
	rate10 := "-"
	if n := len(tr.compile); n > 10 && c >= 0 && tr.compile[n-11] >= 0 {
		rate10 = strconv.FormatFloat((c-tr.compile[n-11])/10, 'f', 1, 64)
	}
	var bounds []float64
	var cum []uint64
	if f, ok := fams[jitterMetric]; ok && len(f.GetMetric()) > 0 {
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
			cum = append(cum, b.GetCumulativeCount())
		}
	}
	jitter := "-"
	if len(cum) > 0 && len(tr.prevJitter) == len(cum) {
		total := cum[len(cum)-1] - tr.prevJitter[len(cum)-1]
		for i := range cum {
			if total > 0 && float64(cum[i]-tr.prevJitter[i]) >= 0.99*float64(total) {
				jitter = "<=" + strconv.FormatFloat(bounds[i], 'g', -1, 64) + "s"
				break
			}
		}
	}
	tr.prevJitter = cum
	lats = slices.Sorted(slices.Values(lats))
	q := func(q float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(q*float64(len(lats))))]
	}
	return fmt.Sprintf("t=%3ds compile %7.0f ms, rate over 10s %6s ms/s; jitter p99 %8s; %4d requests p50 %6.2fms p99 %6.2fms",
		sec, c, rate10, jitter, len(lats), float64(q(0.5))/1e6, float64(q(0.99))/1e6)
}

// answered returns the latencies of the requests of l answered in
// [from, to).
func answered(l *demo.Requests, from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, r := range l.InOrder() {
		if at := r.Sent.Add(r.Latency); !at.Before(from) && at.Before(to) {
			out = append(out, r.Latency)
		}
	}
	return out
}

// scrapeFamilies reads the Prometheus text at url.
func scrapeFamilies(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return fams, nil
}
