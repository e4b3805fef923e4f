package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/preheatdev/preheat/internal/chart"
	"github.com/preheatdev/preheat/internal/reportfile"
)

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	if r == nil {
		return errors.New("write report json: nil result")
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		_, err = w.Write(append(b, '\n'))
	}
	if err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

// WriteReport writes r to dir as loadtest-report.json (WriteJSON) and
// loadtest-report.html (WriteHTML), creating dir if need be, and returns
// their paths, JSON first.
func WriteReport(dir string, r *Result) ([]string, error) {
	return reportfile.Write(dir, "loadtest-report", r, WriteJSON, WriteHTML)
}

// WriteHTML writes r as one self-contained HTML page: the run's settings
// and outcome, the threshold verdicts, the comparison, a summary and the
// per-kind latency of each target, and SVG charts of latency over time,
// throughput and errors over time, and the latency distribution by
// percentile. It loads nothing from elsewhere; all text is escaped.
func WriteHTML(w io.Writer, r *Result) error {
	if r == nil {
		return errors.New("write report html: nil result")
	}
	if err := reportPage.Execute(w, newPage(r)); err != nil {
		return fmt.Errorf("write report html: %w", err)
	}
	return nil
}

// Chart geometry in SVG user units.
const (
	svgWidth  = 960.0
	svgLeft   = 72.0
	svgRight  = 150.0 // room for the legend
	svgTop    = 12.0
	svgPlotH  = 240.0
	svgBottom = 40.0
	maxPoints = 2000
)

// palette colours the series: the target in blue, the compared target in
// orange; a second quantile of each is dashed.
var palette = []string{"#0969da", "#d1620f"}

type page struct {
	R          *Result
	Title      string
	Started    string
	Schedule   string
	Passed     bool
	HasVerdict bool
	Charts     []svgChart
}

type svgChart struct {
	Title          string
	Note           string
	H              float64
	X0, X1, Y0, Y1 float64
	PlotW, PlotH   float64
	XMid, YMid     float64
	XTickY, YTickX float64
	XLabelY        float64
	XLabel, YLabel string
	YLabelXform    string
	XTicks, YTicks []chart.Tick
	XPos, YPos     []float64
	Series         []svgSeries
}

type svgSeries struct {
	Label, Color, Dash string
	Path               string
	LX, LY             float64
}

// series is a chart's data before layout.
type series struct {
	label string
	color string
	dash  bool
	pts   [][2]float64 // x, y
}

func newPage(r *Result) page {
	p := page{R: r, Started: r.Started.UTC().Format(time.RFC3339)}
	if len(r.Targets) > 0 {
		p.Title = r.Targets[0].URL
	}
	if r.Model == "closed" {
		p.Schedule = fmt.Sprintf("closed model: %d sessions at once", r.Concurrency)
	} else {
		p.Schedule = fmt.Sprintf("open model: %.4g sessions/s", r.Rate)
		if r.RecordedRate > 0 {
			p.Schedule += fmt.Sprintf(" (%.3gx the recorded %.4g/s)", r.Rate/r.RecordedRate, r.RecordedRate)
		}
	}
	p.Schedule += fmt.Sprintf(" for %gs", r.Duration)
	if r.RampUp > 0 || r.RampDown > 0 {
		p.Schedule += fmt.Sprintf(", ramp up %gs, down %gs", r.RampUp, r.RampDown)
	}
	p.HasVerdict = len(r.Thresholds) > 0
	p.Passed = true
	for _, v := range r.Thresholds {
		p.Passed = p.Passed && v.Pass
	}

	var lat, thr, pct []series
	for i, t := range r.Targets {
		col := palette[i%len(palette)]
		var p50, p99, started, errs []([2]float64)
		for _, iv := range t.Intervals {
			mid := iv.T + iv.Seconds/2
			if iv.Responses > 0 {
				p50 = append(p50, [2]float64{mid, iv.P50})
				p99 = append(p99, [2]float64{mid, iv.P99})
			}
			if iv.Seconds > 0 {
				started = append(started, [2]float64{mid, float64(iv.Started) / iv.Seconds})
				errs = append(errs, [2]float64{mid, float64(iv.Failed+iv.Timeouts+iv.Closed) / iv.Seconds})
			}
		}
		lat = append(lat, series{label: t.Name + " p50", color: col, pts: p50}, series{label: t.Name + " p99", color: col, dash: true, pts: p99})
		thr = append(thr, series{label: t.Name + " sessions/s", color: col, pts: started}, series{label: t.Name + " errors/s", color: col, dash: true, pts: errs})
		var q []([2]float64)
		for _, pq := range t.Percentiles {
			if pq.Q < 100 {
				q = append(q, [2]float64{nines(pq.Q), pq.MS})
			}
		}
		pct = append(pct, series{label: t.Name, color: col, pts: q})
	}
	p.Charts = append(p.Charts,
		layout("Latency over time", "seconds since start", "ms", lat, false),
		layout("Sessions started and errors per second", "seconds since start", "per second", thr, false),
		layout("Latency by percentile", "percentile", "ms", pct, true),
	)
	return p
}

// nines maps a percentile onto the distribution chart's x axis: 90% is 1,
// 99% 2, 99.9% 3.
func nines(q float64) float64 { return -math.Log10(1 - q/100) }

// layout places series on a chart. With percentiles, the x axis is in
// nines and labelled as percentiles.
func layout(title, xlabel, ylabel string, ss []series, percentiles bool) svgChart {
	c := svgChart{Title: title, XLabel: xlabel, YLabel: ylabel}
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.pts {
			if chart.Finite(pt[0]) && chart.Finite(pt[1]) {
				xlo, xhi = min(xlo, pt[0]), max(xhi, pt[0])
				ylo, yhi = min(ylo, pt[1]), max(yhi, pt[1])
			}
		}
	}
	if math.IsInf(xlo, 0) {
		c.Note = "Nothing was measured."
		return c
	}
	c.X0, c.X1, c.Y0 = svgLeft, svgWidth-svgRight, svgTop
	c.Y1 = c.Y0 + svgPlotH
	c.PlotW, c.PlotH = c.X1-c.X0, svgPlotH
	c.H = c.Y1 + svgBottom
	c.XMid, c.YMid = chart.Round((c.X0+c.X1)/2), chart.Round((c.Y0+c.Y1)/2)
	c.XTickY, c.XLabelY, c.YTickX = c.Y1+15, c.Y1+32, c.X0-6
	c.YLabelXform = fmt.Sprintf("rotate(-90 16 %g)", c.YMid)

	x := chart.Scale{Lo: min(xlo, 0), Hi: max(xhi, xlo+1), P0: c.X0, P1: c.X1}
	if percentiles {
		x.Lo, x.Hi = 0, math.Max(math.Ceil(xhi), 1)
		for k := 0; float64(k) <= x.Hi; k++ {
			c.XTicks = append(c.XTicks, chart.Tick{Pos: float64(k), Label: strconv.FormatFloat(100-100*math.Pow(10, -float64(k)), 'f', -1, 64) + "%"})
		}
	} else {
		c.XTicks = chart.LinearTicks(x.Lo, x.Hi, 8)
	}
	y := chart.Scale{P0: c.Y1, P1: c.Y0}
	if ylo > 0 && yhi/ylo > 100 {
		c.YTicks, y.Lo, y.Hi = chart.LogTicks(ylo, yhi)
		y.Log = true
		c.YLabel += " (log scale)"
	} else {
		y.Lo, y.Hi = min(ylo, 0), max(yhi, 0)
		if y.Hi == y.Lo {
			y.Hi = y.Lo + 1
		}
		c.YTicks = chart.LinearTicks(y.Lo, y.Hi, 5)
		if step := c.YTicks[1].Pos - c.YTicks[0].Pos; chart.Finite(step) && step > 0 {
			if top := math.Ceil(y.Hi/step) * step; top > y.Hi {
				c.YTicks = append(c.YTicks, chart.Tick{Pos: top, Label: chart.Number(top, step)})
				y.Hi = top
			}
		}
	}
	for i := range c.XTicks {
		c.XTicks[i].Pos = x.Pos(c.XTicks[i].Pos)
	}
	for i := range c.YTicks {
		c.YTicks[i].Pos = y.Pos(c.YTicks[i].Pos)
	}
	for i, s := range ss {
		out := svgSeries{Label: s.label, Color: s.color, LX: c.X1 + 12, LY: c.Y0 + 10 + float64(i)*16}
		if s.dash {
			out.Dash = "6 4"
		}
		var b strings.Builder
		for _, pt := range chart.Downsample(s.pts, maxPoints, func(p [2]float64) float64 { return p[1] }) {
			if !chart.Finite(pt[0]) || !chart.Finite(pt[1]) {
				continue
			}
			if b.Len() == 0 {
				b.WriteByte('M')
			} else {
				b.WriteByte('L')
			}
			b.WriteString(strconv.FormatFloat(x.Pos(pt[0]), 'f', -1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y.Pos(pt[1]), 'f', -1, 64))
		}
		out.Path = b.String()
		c.Series = append(c.Series, out)
	}
	return c
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":  func(v float64) string { return chart.Value(v, "ms") },
	"pct": func(v float64) string { return strconv.FormatFloat(100*v, 'f', 3, 64) + "%" },
	"num": func(v float64) string { return chart.Value(v, "") },
}).Parse(reportPageHTML))

const reportPageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>preheat loadtest: {{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #fff; max-width: 1000px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.meta { color: #57606a; margin: 0 0 4px; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 11px; font-weight: 600; color: #fff; margin-right: 8px; }
.ok { background: #1a7f37; } .bad { background: #cf222e; } .muted { background: #6e7781; }
table { border-collapse: collapse; margin-bottom: 8px; }
th, td { text-align: left; vertical-align: top; padding: 3px 16px 3px 0; border-bottom: 1px solid #eaeef2; }
th { font-weight: 500; color: #57606a; }
td { font-variant-numeric: tabular-nums; }
.fail { color: #cf222e; font-weight: 600; } .pass { color: #1a7f37; }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: #57606a; }
.plot { fill: #fff; stroke: #d0d7de; } .grid { stroke: #eaeef2; }
.note { color: #57606a; font-style: italic; }
</style>
</head>
<body>
<h1>preheat load test</h1>
{{range .R.Targets}}<p class="meta">{{.Name}}: <code>{{.URL}}</code></p>
{{end}}<p class="meta">{{.Schedule}} · started {{.Started}} · ran {{printf "%.1f" .R.Seconds}}s · {{.R.Corpus}} corpus sessions, {{.R.Scheduled}} arrivals{{if .R.Dropped}}, {{.R.Dropped}} dropped at the in-flight bound{{end}}</p>
{{if .R.Aborted}}<p><span class="badge bad">aborted</span>{{.R.Aborted}}</p>{{end}}
{{if .HasVerdict}}<p>{{if .Passed}}<span class="badge ok">thresholds passed</span>{{else}}<span class="badge bad">thresholds failed</span>{{end}}</p>
<table><tr><th>Threshold</th><th>Target</th><th>Measured</th><th></th></tr>
{{range .R.Thresholds}}<tr><td><code>{{.Threshold}}</code></td><td>{{.Target}}</td><td>{{if eq .Unit "fraction"}}{{pct .Actual}}{{else if eq .Unit "ms"}}{{ms .Actual}}{{else}}{{num .Actual}} {{.Unit}}{{end}}{{if .Note}} ({{.Note}}){{end}}</td><td>{{if .Pass}}<span class="pass">pass</span>{{else}}<span class="fail">FAIL</span>{{end}}</td></tr>
{{end}}</table>{{end}}
{{with .R.Comparison}}<h2>Comparison</h2>
<p class="meta">candidate <code>{{.Candidate}}</code> against baseline <code>{{.Baseline}}</code>; {{.Method}}; a finding needs at least {{pct .MinEffect}} of change. {{.Findings}} findings.</p>
<table><tr><th>Metric</th><th>Baseline</th><th>Candidate</th><th>Change</th><th>Intervals</th><th></th></tr>
{{range .Metrics}}<tr><td>{{.Metric}}</td><td>{{num .Baseline}} {{.Unit}}</td><td>{{num .Candidate}} {{.Unit}}</td><td>{{.Summary}}</td><td>{{.Pairs}}</td><td>{{if .Worse}}<span class="fail">worse</span>{{else if .Finding}}<span class="pass">better</span>{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Summary</h2>
<table><tr><th></th>{{range .R.Targets}}<th>{{.Name}}</th>{{end}}</tr>
<tr><th>Sessions started / completed / failed / cut</th>{{range .R.Targets}}<td>{{.Sessions.Started}} / {{.Sessions.Completed}} / {{.Sessions.Failed}} / {{.Sessions.Cut}}</td>{{end}}</tr>
<tr><th>Messages sent</th>{{range .R.Targets}}<td>{{.Sent}}</td>{{end}}</tr>
<tr><th>Requests awaiting an answer: answered / timed out / closed while waiting</th>{{range .R.Targets}}<td>{{.Requests}}: {{.Responses}} / {{.Timeouts}} / {{.Closed}}{{if .ClosedCut}} ({{.ClosedCut}} by the cut at the end){{end}}</td>{{end}}</tr>
<tr><th>Messages not sent (safety and filters)</th>{{range .R.Targets}}<td>{{range $k, $v := .Skipped}}{{$k}} {{$v}} {{end}}</td>{{end}}</tr>
<tr><th>Not sent, by kind</th>{{range .R.Targets}}<td>{{range $r, $m := .SkippedByKind}}{{$r}}: {{range $k, $v := $m}}{{if $k}}{{$k}}{{else}}(no kind){{end}} {{$v}} {{end}}<br>{{end}}</td>{{end}}</tr>
<tr><th>Throughput</th>{{range .R.Targets}}<td>{{num .SessionsPerSecond}} sessions/s, {{num .MessagesPerSecond}} msg/s</td>{{end}}</tr>
<tr><th>Latency p50 / p90 / p99 / p99.9 / max</th>{{range .R.Targets}}<td>{{ms .Latency.P50}} / {{ms .Latency.P90}} / {{ms .Latency.P99}} / {{ms .Latency.P999}} / {{ms .Latency.Max}}</td>{{end}}</tr>
<tr><th>Error rate</th>{{range .R.Targets}}<td>{{pct .ErrorRate}}</td>{{end}}</tr>
<tr><th>Errors by class</th>{{range .R.Targets}}<td>{{range $k, $v := .Errors}}{{$k}} {{$v}}<br>{{end}}</td>{{end}}</tr>
<tr><th>Generator lag p99 / max</th><td>{{ms .R.Lag.P99}} / {{ms .R.Lag.Max}}</td></tr>
</table>
<h2>Charts</h2>
{{range $c := .Charts}}<figure>
<figcaption><strong>{{$c.Title}}</strong></figcaption>
{{if $c.Note}}<p class="note">{{$c.Note}}</p>{{else}}<svg viewBox="0 0 960 {{$c.H}}" role="img" aria-label="{{$c.Title}}">
<rect class="plot" x="{{$c.X0}}" y="{{$c.Y0}}" width="{{$c.PlotW}}" height="{{$c.PlotH}}" />
{{range $c.YTicks}}<line class="grid" x1="{{$c.X0}}" x2="{{$c.X1}}" y1="{{.Pos}}" y2="{{.Pos}}" /><text x="{{$c.YTickX}}" y="{{.Pos}}" dy="3.5" text-anchor="end">{{.Label}}</text>
{{end}}{{range $c.XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$c.Y0}}" y2="{{$c.Y1}}" /><text x="{{.Pos}}" y="{{$c.XTickY}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range $c.Series}}<path d="{{.Path}}" fill="none" stroke="{{.Color}}" stroke-width="1.5"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}}><title>{{.Label}}</title></path>
<text x="{{.LX}}" y="{{.LY}}" dy="3.5" style="fill: {{.Color}}">{{.Label}}</text>
{{end}}<text x="{{$c.XMid}}" y="{{$c.XLabelY}}" text-anchor="middle">{{$c.XLabel}}</text>
<text x="16" y="{{$c.YMid}}" transform="{{$c.YLabelXform}}" text-anchor="middle">{{$c.YLabel}}</text>
</svg>{{end}}
</figure>
{{end}}{{range .R.Targets}}<h2>Latency by message kind: {{.Name}}</h2>
<table><tr><th>Kind</th><th>Responses</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>
{{range .Kinds}}<tr><td><code>{{.Kind}}</code></td><td>{{.Latency.Count}}</td><td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P90}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.Max}}</td></tr>
{{end}}</table>
{{end}}</body>
</html>
`
