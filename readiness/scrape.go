package readiness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// acceptHeader asks for the Prometheus text format, the only one parsed.
const acceptHeader = "text/plain;version=0.0.4"

// span is one histogram bucket, (lo, hi], whatever the exposition's style.
type span struct{ lo, hi float64 }

// exposition is what one scrape says about the warmth signals.
type exposition struct {
	// jitterHist holds the jitter histogram's non-cumulative bucket counts
	// since the process started; nil unless the family is a histogram.
	jitterHist map[span]float64
	// jitterValue is the jitter gauge (or summary quantile), when hasValue.
	jitterValue float64
	hasValue    bool
	// compile is the compile time counter, in ms, when hasCompile.
	compile    float64
	hasCompile bool
}

func (e *exposition) hasJitter() bool { return e.jitterHist != nil || e.hasValue }

// parseExposition reads a Prometheus text exposition and extracts the
// jitter and compile families named in o. Families it does not need are
// ignored; a body the text parser rejects is an error.
func parseExposition(body []byte, o *Options) (exposition, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return exposition{}, err
	}
	var e exposition
	if mf := fams[o.JitterMetric]; mf != nil {
		readJitter(&e, mf, o)
	} else if mf := fams[o.JitterMetric+"_bucket"]; mf != nil {
		e.jitterHist = vmHistogram(mf, o.JitterLabels)
	}
	for _, name := range compileNames(o.CompileMetric) {
		if mf := fams[name]; mf != nil {
			e.compile, e.hasCompile = sumValues(mf, o.CompileLabels)
			break
		}
	}
	return e, nil
}

// compileNames lists the names a counter may be exposed under: as
// configured, and with or without the _total suffix.
func compileNames(name string) []string {
	if base, ok := strings.CutSuffix(name, "_total"); ok {
		return []string{name, base}
	}
	return []string{name, name + "_total"}
}

func matches(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k {
				found = lp.GetValue() == v
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func readJitter(e *exposition, mf *dto.MetricFamily, o *Options) {
	switch mf.GetType() {
	case dto.MetricType_HISTOGRAM:
		e.jitterHist = map[span]float64{}
		for _, m := range mf.GetMetric() {
			if matches(m, o.JitterLabels) && m.GetHistogram() != nil {
				addClassic(e.jitterHist, m.GetHistogram())
			}
		}
		if len(e.jitterHist) == 0 {
			e.jitterHist = nil
		}
	case dto.MetricType_SUMMARY:
		for _, m := range mf.GetMetric() {
			if !matches(m, o.JitterLabels) {
				continue
			}
			best, dist := math.NaN(), math.Inf(1)
			for _, q := range m.GetSummary().GetQuantile() {
				if d := math.Abs(q.GetQuantile() - o.JitterQuantile); d < dist && !math.IsNaN(q.GetValue()) {
					best, dist = q.GetValue(), d
				}
			}
			if !math.IsNaN(best) && (!e.hasValue || best > e.jitterValue) {
				e.jitterValue, e.hasValue = best, true
			}
		}
	default:
		for _, m := range mf.GetMetric() {
			if !matches(m, o.JitterLabels) {
				continue
			}
			if v, ok := plainValue(m); ok && (!e.hasValue || v > e.jitterValue) {
				e.jitterValue, e.hasValue = v, true
			}
		}
	}
}

func plainValue(m *dto.Metric) (float64, bool) {
	var v float64
	switch {
	case m.GetGauge() != nil:
		v = m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		v = m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	default:
		return 0, false
	}
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

func sumValues(mf *dto.MetricFamily, want map[string]string) (float64, bool) {
	var sum float64
	found := false
	for _, m := range mf.GetMetric() {
		if v, ok := plainValue(m); ok && matches(m, want) {
			sum += v
			found = true
		}
	}
	return sum, found
}

// addClassic adds a classic (cumulative, le) histogram to h as
// non-cumulative spans. The first bucket's lower bound is 0 as in
// Prometheus' histogram_quantile; a missing +Inf bucket is made up from the
// sample count.
func addClassic(h map[span]float64, hist *dto.Histogram) {
	type bk struct{ le, cum float64 }
	var bs []bk
	for _, b := range hist.GetBucket() {
		c := b.GetCumulativeCountFloat()
		if c == 0 {
			c = float64(b.GetCumulativeCount())
		}
		if math.IsNaN(b.GetUpperBound()) || math.IsNaN(c) {
			continue
		}
		bs = append(bs, bk{b.GetUpperBound(), c})
	}
	slices.SortFunc(bs, func(a, b bk) int {
		if a.le < b.le {
			return -1
		} else if a.le > b.le {
			return 1
		}
		return 0
	})
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].le, 1) {
		total := hist.GetSampleCountFloat()
		if total == 0 {
			total = float64(hist.GetSampleCount())
		}
		bs = append(bs, bk{math.Inf(1), total})
	}
	lo, prev := math.Inf(-1), 0.0
	for i, b := range bs {
		if i == 0 && b.le > 0 {
			lo = 0
		}
		h[span{lo, b.le}] += max(b.cum-prev, 0)
		lo, prev = b.le, max(b.cum, prev)
	}
}

// vmHistogram reads a VictoriaMetrics histogram, whose <name>_bucket
// counters carry a vmrange="lo...hi" label; it returns nil if none does.
func vmHistogram(mf *dto.MetricFamily, want map[string]string) map[span]float64 {
	var h map[span]float64
	for _, m := range mf.GetMetric() {
		if !matches(m, want) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() != "vmrange" {
				continue
			}
			a, b, ok := strings.Cut(lp.GetValue(), "...")
			lo, err1 := strconv.ParseFloat(a, 64)
			hi, err2 := strconv.ParseFloat(b, 64)
			v, okv := plainValue(m)
			if !ok || err1 != nil || err2 != nil || !okv || !(lo <= hi) {
				break
			}
			if h == nil {
				h = map[span]float64{}
			}
			h[span{lo, hi}] += max(v, 0)
		}
	}
	return h
}

// histDelta returns cur minus prev, bucket by bucket. If any bucket went
// down, the process restarted and cur is returned whole.
func histDelta(prev, cur map[span]float64) map[span]float64 {
	d := make(map[span]float64, len(cur))
	for k, c := range cur {
		v := c - prev[k]
		if v < 0 {
			return cur
		}
		d[k] = v
	}
	return d
}

// histQuantile returns the q-quantile of the non-cumulative histogram h,
// interpolating linearly inside the bucket the rank falls in, as
// Prometheus' histogram_quantile does. It returns false when h is empty.
func histQuantile(h map[span]float64, q float64) (float64, bool) {
	spans := make([]span, 0, len(h))
	var total float64
	for k, c := range h {
		if c > 0 {
			spans = append(spans, k)
			total += c
		}
	}
	if total <= 0 || math.IsInf(total, 0) || math.IsNaN(total) {
		return 0, false
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo):
			return -1
		case a.hi > b.hi || (a.hi == b.hi && a.lo > b.lo):
			return 1
		}
		return 0
	})
	rank := q * total
	var cum float64
	for i, s := range spans {
		c := h[s]
		if cum+c < rank && i < len(spans)-1 {
			cum += c
			continue
		}
		switch {
		case math.IsInf(s.hi, 1):
			if math.IsInf(s.lo, -1) {
				return 0, false
			}
			return s.lo, true
		case math.IsInf(s.lo, -1):
			return s.hi, true
		}
		f := min(max((rank-cum)/c, 0), 1)
		return s.lo + (s.hi-s.lo)*f, true
	}
	return 0, false
}

// scrapeError is a failed scrape with the reason it is counted under.
type scrapeError struct {
	reason string
	err    error
}

func (e *scrapeError) Error() string { return e.err.Error() }
func (e *scrapeError) Unwrap() error { return e.err }

// fetch GETs the exposition at url and parses it.
func fetch(ctx context.Context, url string, o *Options) (exposition, error) {
	fail := func(reason string, err error) (exposition, error) {
		if ctx.Err() != nil && reason != "parse" {
			reason = "timeout"
		}
		return exposition{}, &scrapeError{reason, fmt.Errorf("scrape %s: %w", url, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail("request", err)
	}
	for k, vs := range o.Header {
		req.Header[k] = slices.Clone(vs)
	}
	req.Header.Set("Accept", acceptHeader)
	if o.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.BearerToken)
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return fail("connect", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fail("status", fmt.Errorf("status %s", resp.Status))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "text/plain" {
			return fail("format", fmt.Errorf("unsupported exposition format %q, want %s", ct, acceptHeader))
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, o.MaxBodyBytes+1))
	if err != nil {
		return fail("read", err)
	}
	if int64(len(body)) > o.MaxBodyBytes {
		return fail("too_large", fmt.Errorf("body exceeds %d bytes", o.MaxBodyBytes))
	}
	e, err := parseExposition(body, o)
	if err != nil {
		return fail("parse", err)
	}
	return e, nil
}

// signals turns consecutive scrapes into signal values: the jitter quantile
// over the interval's bucket deltas (or the gauge as is), and the compile
// rate in ms/s, a counter reset counting from zero. ok* report which were
// computable; the first scrape yields only a gauge jitter.
func signals(prev *exposition, prevAt time.Time, cur *exposition, at time.Time, q float64) (jitter float64, okJitter bool, compile float64, okCompile bool) {
	switch {
	case cur.hasValue:
		jitter, okJitter = cur.jitterValue, true
	case cur.jitterHist != nil && prev != nil && prev.jitterHist != nil:
		jitter, okJitter = histQuantile(histDelta(prev.jitterHist, cur.jitterHist), q)
	}
	dt := at.Sub(prevAt).Seconds()
	if cur.hasCompile && prev != nil && prev.hasCompile && dt > 0 {
		d := cur.compile - prev.compile
		if d < 0 {
			d = cur.compile
		}
		compile, okCompile = d/dt, true
	}
	return jitter, okJitter, compile, okCompile
}

// errorReason returns the metric label for a scrape error.
func errorReason(err error) string {
	if se, ok := errors.AsType[*scrapeError](err); ok {
		return se.reason
	}
	return "other"
}
