package readiness

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/preheatdev/preheat/internal/chart"
)

// WriteJSON writes r as indented JSON.
//
// encoding/json cannot represent NaN or ±Inf, so WriteJSON encodes a cleaned
// copy and leaves r untouched: points whose T or V is not finite are dropped,
// as are marks whose T is not finite; a non-finite Threshold is written as 0
// (no threshold) and a non-finite FlatAt as -1 (never flat). The output
// decodes back into a Report with json.Unmarshal.
func WriteJSON(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("write report json: nil report")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(finiteReport(r)); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

// finiteReport returns a copy of r without non-finite numbers, as described
// on WriteJSON. Slices are copied, never shared with r.
func finiteReport(r *Report) Report {
	c := *r
	c.Signals = nil
	if r.Signals != nil {
		c.Signals = make([]Series, 0, len(r.Signals))
	}
	for _, s := range r.Signals {
		if !chart.Finite(s.Threshold) {
			s.Threshold = 0
		}
		if !chart.Finite(s.FlatAt) {
			s.FlatAt = -1
		}
		if s.Points != nil {
			pts := make([]Point, 0, len(s.Points))
			for _, p := range s.Points {
				if chart.Finite(p.T) && chart.Finite(p.V) {
					pts = append(pts, p)
				}
			}
			s.Points = pts
		}
		c.Signals = append(c.Signals, s)
	}
	if r.Marks != nil {
		c.Marks = make([]Mark, 0, len(r.Marks))
		for _, m := range r.Marks {
			if chart.Finite(m.T) {
				c.Marks = append(c.Marks, m)
			}
		}
	}
	c.Facts = slices.Clone(r.Facts)
	return c
}

// WriteHTML writes r as a single self-contained HTML page: a header with the
// target, the outcome and the reason, the facts table, and one SVG chart per
// signal. The page loads nothing from elsewhere (no scripts, fonts or
// stylesheets), so it can be archived with a deploy, opened offline and
// printed. All text taken from the report is escaped.
//
// The charts share one time axis in seconds since Started. Each shows the
// threshold as a dashed line, the moment the signal was judged flat as a
// shaded band, the marks and the release as vertical lines. The value axis
// turns logarithmic when all values are positive and span more than two
// decades. Non-finite samples are skipped, and series longer than 2,000
// samples are drawn from the lowest and highest sample of each of 1,000
// buckets, so spikes stay visible.
func WriteHTML(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("write report html: nil report")
	}
	if err := reportPage.Execute(w, newHTMLPage(r)); err != nil {
		return fmt.Errorf("write report html: %w", err)
	}
	return nil
}

// chartMaxPoints bounds the samples drawn per chart.
const chartMaxPoints = 2000

// chartMaxDots is the longest series whose samples are also drawn as dots
// with a hover tooltip each; longer series are drawn as a bare line.
const chartMaxDots = 150

// Chart geometry in SVG user units. The height grows with the number of
// rows the mark labels need above the plot.
const (
	chartWidth    = 960.0
	chartLeft     = 72.0
	chartRight    = 24.0
	chartPlotH    = 220.0
	chartBottom   = 40.0
	chartLabelRow = 13.0
	chartMaxRows  = 4
	chartCharW    = 6.2 // average width of an 11px label character
)

// htmlPage is what the page template renders: the report's text as it
// should read, and each chart laid out in SVG coordinates.
type htmlPage struct {
	Target       string
	MetricsURL   string
	Outcome      string
	OutcomeClass string
	Reason       string
	Started      string
	Ended        string
	RunFor       string
	ReleaseText  string
	Facts        []Fact
	Charts       []htmlChart
}

// htmlChart is one signal's chart with every position precomputed, so the
// template only places elements. A chart with a Note has nothing to draw.
type htmlChart struct {
	Name    string
	Title   string
	Note    string // shown instead of the plot when there is nothing to draw
	Summary string

	H              float64
	X0, X1, Y0, Y1 float64 // plot area: X0 < X1, Y0 (top) < Y1 (bottom)
	PlotW, PlotH   float64
	XMid, YMid     float64
	XLabelY        float64
	XTickY         float64
	YTickX         float64
	YLabel         string
	YLabelXform    string

	XTicks, YTicks []chart.Tick
	Path           string
	Dots           []chartDot
	LineTip        string
	Threshold      *chartHLine
	Flat           *chartFlat
	Lines          []chartVLine // marks and release
}

type chartDot struct {
	X, Y, R float64
	Tip     string
}

type chartHLine struct {
	Y, LX, LY float64
	Label     string
}

type chartFlat struct {
	X, W, LX, LY float64
	Anchor       string
	Label        string
}

// chartVLine is a vertical line across the plot (a mark or the release)
// with its label above the plot at (LX, LY).
type chartVLine struct {
	X          float64
	Class      string
	LabelClass string
	Label      string
	Tip        string
	LX, LY     float64
	Anchor     string
}

// chartOutcomeClass gives the badge colour class of each Outcome; unknown
// outcomes are shown as "muted".
var chartOutcomeClass = map[string]string{
	"warm":            "ok",
	"deadline_open":   "warn",
	"deadline_closed": "bad",
	"failed":          "bad",
	"held":            "bad",
	"canceled":        "muted",
}

func newHTMLPage(r *Report) htmlPage {
	p := htmlPage{
		Target:       r.Target,
		MetricsURL:   r.MetricsURL,
		Outcome:      r.Outcome,
		OutcomeClass: chartOutcomeClass[r.Outcome],
		Reason:       r.Reason,
		Facts:        r.Facts,
		ReleaseText:  "not released",
	}
	if p.OutcomeClass == "" {
		p.OutcomeClass = "muted"
	}
	if p.Outcome == "" {
		p.Outcome = "unknown"
	}
	if !r.Started.IsZero() {
		p.Started = r.Started.UTC().Format(time.RFC3339)
	}
	if !r.Ended.IsZero() {
		p.Ended = r.Ended.UTC().Format(time.RFC3339)
		if !r.Started.IsZero() {
			p.RunFor = chartDuration(r.Ended.Sub(r.Started))
		}
	}

	release := math.NaN()
	if r.Released {
		p.ReleaseText = "released"
		if !r.ReleasedAt.IsZero() && !r.Started.IsZero() {
			d := r.ReleasedAt.Sub(r.Started)
			p.ReleaseText = "released after " + chartDuration(d)
			release = d.Seconds()
		}
	}

	var ended float64
	if !r.Started.IsZero() && r.Ended.After(r.Started) {
		ended = r.Ended.Sub(r.Started).Seconds()
	}
	x := chartXScale(r, release, ended)
	for _, s := range r.Signals {
		p.Charts = append(p.Charts, newHTMLChart(s, x, r.Marks, release))
	}
	return p
}

// chartDuration formats d for a reader, to a tenth of a second.
func chartDuration(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}

// chartXScale returns the time axis shared by all charts: from the earliest
// to the latest moment anything in the report refers to, and never starting
// after 0.
func chartXScale(r *Report, release, ended float64) chart.Scale {
	lo, hi := 0.0, ended
	see := func(t float64) {
		if chart.Finite(t) {
			lo, hi = min(lo, t), max(hi, t)
		}
	}
	see(release)
	for _, s := range r.Signals {
		if s.FlatAt >= 0 {
			see(s.FlatAt)
		}
		for _, pt := range s.Points {
			if chart.Finite(pt.V) {
				see(pt.T)
			}
		}
	}
	for _, m := range r.Marks {
		see(m.T)
	}
	if hi <= lo {
		hi = lo + 1
	}
	return chart.Scale{Lo: lo, Hi: hi, P0: chartLeft, P1: chartWidth - chartRight}
}

func newHTMLChart(s Series, x chart.Scale, marks []Mark, release float64) htmlChart {
	c := htmlChart{Name: s.Name, Title: s.Title}
	if c.Title == "" {
		c.Title = s.Name
	}
	if s.Missing {
		c.Note = "Not exposed by the target, so it did not take part in the decision."
		return c
	}
	pts := make([]Point, 0, len(s.Points))
	for _, p := range s.Points {
		if chart.Finite(p.T) && chart.Finite(p.V) {
			pts = append(pts, p)
		}
	}
	skipped := len(s.Points) - len(pts)
	if len(pts) == 0 {
		c.Note = "No samples were recorded."
		if skipped > 0 {
			c.Note = fmt.Sprintf("No finite samples were recorded (%d skipped as NaN or infinite).", skipped)
		}
		return c
	}
	if !slices.IsSortedFunc(pts, chartByT) {
		slices.SortStableFunc(pts, chartByT)
	}
	threshold := s.Threshold
	if !chart.Finite(threshold) || threshold <= 0 {
		threshold = 0
	}

	// Lay out the labels above the plot first: their rows set its top.
	lines, rows := chartVLines(x, marks, release)
	c.Y0 = chart.Round(8 + float64(rows)*chartLabelRow + 6)
	c.Y1 = c.Y0 + chartPlotH
	c.X0, c.X1 = chartLeft, chartWidth-chartRight
	c.PlotW, c.PlotH = c.X1-c.X0, chartPlotH
	c.H = c.Y1 + chartBottom
	c.XMid = chart.Round((c.X0 + c.X1) / 2)
	c.YMid = chart.Round((c.Y0 + c.Y1) / 2)
	c.XTickY = c.Y1 + 15
	c.XLabelY = c.Y1 + 32
	c.YTickX = c.X0 - 6
	for i := range lines {
		lines[i].LY = chart.Round(8 + 10 + lines[i].LY*chartLabelRow)
	}
	c.Lines = lines

	for _, t := range chart.LinearTicks(x.Lo, x.Hi, 8) {
		c.XTicks = append(c.XTicks, chart.Tick{Pos: x.Pos(t.Pos), Label: t.Label})
	}

	y, yticks := chartYScale(pts, threshold)
	y.P0, y.P1 = c.Y1, c.Y0
	for _, t := range yticks {
		c.YTicks = append(c.YTicks, chart.Tick{Pos: y.Pos(t.Pos), Label: t.Label})
	}
	c.YLabel = s.Unit
	if y.Log {
		c.YLabel = strings.TrimSpace(s.Unit + " (log scale)")
	}
	c.YLabelXform = fmt.Sprintf("rotate(-90 16 %g)", c.YMid)

	drawn := chartDownsample(pts, chartMaxPoints)
	var b strings.Builder
	for i, p := range drawn {
		if i == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte('L')
		}
		b.WriteString(strconv.FormatFloat(x.Pos(p.T), 'f', -1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y.Pos(p.V), 'f', -1, 64))
	}
	if len(drawn) > 1 {
		c.Path = b.String()
	}
	if len(drawn) <= chartMaxDots {
		for _, p := range drawn {
			c.Dots = append(c.Dots, chartDot{
				X:   x.Pos(p.T),
				Y:   y.Pos(p.V),
				R:   2.5,
				Tip: chart.Value(p.T, "s") + ": " + chart.Value(p.V, s.Unit),
			})
			if len(drawn) == 1 {
				c.Dots[0].R = 4
			}
		}
	}

	if threshold > 0 {
		ty := y.Pos(threshold)
		c.Threshold = &chartHLine{Y: ty, LX: c.X1 - 4, LY: ty - 4, Label: "threshold " + chart.Value(threshold, s.Unit)}
		if ty-c.Y0 < 14 {
			c.Threshold.LY = ty + 12
		}
	}
	if chart.Finite(s.FlatAt) && s.FlatAt >= 0 {
		fx := x.Pos(s.FlatAt)
		c.Flat = &chartFlat{X: fx, W: chart.Round(c.X1 - fx), LX: fx + 4, LY: c.Y0 + 13, Anchor: "start", Label: "flat from " + chart.Value(s.FlatAt, "s")}
		if float64(utf8.RuneCountInString(c.Flat.Label))*chartCharW > c.X1-fx-8 {
			c.Flat.LX, c.Flat.Anchor = fx-4, "end"
		}
	}

	lo, hi := pts[0].V, pts[0].V
	for _, p := range pts {
		lo, hi = min(lo, p.V), max(hi, p.V)
	}
	last := pts[len(pts)-1]
	var sum []string
	sum = append(sum, chartCount(len(pts), "sample"))
	sum = append(sum, "last "+chart.Value(last.V, s.Unit)+" at "+chart.Value(last.T, "s"))
	sum = append(sum, "min "+chart.Value(lo, s.Unit), "max "+chart.Value(hi, s.Unit))
	if threshold > 0 {
		sum = append(sum, "threshold "+chart.Value(threshold, s.Unit))
	}
	if chart.Finite(s.FlatAt) && s.FlatAt >= 0 {
		sum = append(sum, "flat from "+chart.Value(s.FlatAt, "s"))
	} else {
		sum = append(sum, "never judged flat")
	}
	if len(drawn) < len(pts) {
		sum = append(sum, fmt.Sprintf("drawn from the min and max of %d buckets", len(drawn)/2))
	}
	if skipped > 0 {
		sum = append(sum, chartCount(skipped, "non-finite sample")+" skipped")
	}
	c.Summary = strings.Join(sum, " · ")
	c.LineTip = c.Title + ": " + c.Summary
	return c
}

func chartByT(a, b Point) int {
	switch {
	case a.T < b.T:
		return -1
	case a.T > b.T:
		return 1
	}
	return 0
}

func chartCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// chartYScale picks the value axis for pts and the threshold (0 for none):
// logarithmic when every value is positive and they span more than two
// decades, otherwise linear and including zero. The domain is widened to
// the outer ticks.
func chartYScale(pts []Point, threshold float64) (chart.Scale, []chart.Tick) {
	lo, hi := pts[0].V, pts[0].V
	for _, p := range pts {
		lo, hi = min(lo, p.V), max(hi, p.V)
	}
	if threshold > 0 {
		lo, hi = min(lo, threshold), max(hi, threshold)
	}
	if lo > 0 && hi/lo > 100 {
		ticks, dlo, dhi := chart.LogTicks(lo, hi)
		return chart.Scale{Lo: dlo, Hi: dhi, Log: true}, ticks
	}
	lo, hi = min(lo, 0), max(hi, 0)
	if lo == hi {
		hi = 1
	}
	ticks := chart.LinearTicks(lo, hi, 5)
	if step := ticks[1].Pos - ticks[0].Pos; chart.Finite(step) && step > 0 {
		if dlo := math.Floor(lo/step) * step; dlo < lo && chart.Finite(dlo) {
			ticks = append([]chart.Tick{{Pos: dlo, Label: chart.Number(dlo, step)}}, ticks...)
			lo = dlo
		}
		if dhi := math.Ceil(hi/step) * step; dhi > hi && chart.Finite(dhi) {
			ticks = append(ticks, chart.Tick{Pos: dhi, Label: chart.Number(dhi, step)})
			hi = dhi
		}
	}
	return chart.Scale{Lo: lo, Hi: hi}, ticks
}

// chartVLines places the marks and the release on the time axis and
// assigns each label a row above the plot so that neighbouring labels do
// not overlap; the LY of each line holds its row number. It returns the
// lines, ordered by time, and the number of rows used.
func chartVLines(x chart.Scale, marks []Mark, release float64) ([]chartVLine, int) {
	var lines []chartVLine
	for _, m := range marks {
		if !chart.Finite(m.T) || (m.Label == "released" && chart.Finite(release)) {
			continue // the release line below says it
		}
		label := m.Label
		if utf8.RuneCountInString(label) > 40 {
			label = string([]rune(label)[:39]) + "…"
		}
		lines = append(lines, chartVLine{
			X: x.Pos(m.T), Class: "mark", LabelClass: "marklabel",
			Label: label, Tip: m.Label + " at " + chart.Value(m.T, "s"),
		})
	}
	if chart.Finite(release) {
		lines = append(lines, chartVLine{
			X: x.Pos(release), Class: "release", LabelClass: "releaselabel",
			Label: "released", Tip: "released to traffic at " + chart.Value(release, "s"),
		})
	}
	slices.SortStableFunc(lines, func(a, b chartVLine) int {
		switch {
		case a.X < b.X:
			return -1
		case a.X > b.X:
			return 1
		}
		return 0
	})

	var ends []float64 // right edge of the last label in each row
	for i := range lines {
		l := &lines[i]
		w := float64(utf8.RuneCountInString(l.Label)) * chartCharW
		l.Anchor, l.LX = "start", l.X+3
		start := l.X + 3
		if l.X+3+w > x.P1 {
			l.Anchor, l.LX = "end", l.X-3
			start = l.X - 3 - w
		}
		row := -1
		for r, end := range ends {
			if end+6 <= start {
				row = r
				break
			}
		}
		if row < 0 && len(ends) < chartMaxRows {
			ends = append(ends, math.Inf(-1))
			row = len(ends) - 1
		}
		if row < 0 {
			row = slices.Index(ends, slices.Min(ends))
		}
		ends[row] = start + w
		l.LY = float64(row)
	}
	return lines, max(1, len(ends))
}

// chartDownsample reduces pts, sorted by T, to at most n points, keeping
// the lowest and the highest sample of each of n/2 buckets, so spikes and
// dips survive.
func chartDownsample(pts []Point, n int) []Point {
	return chart.Downsample(pts, n, func(p Point) float64 { return p.V })
}

var reportPage = template.Must(template.New("report").Parse(reportPageHTML))

const reportPageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>preheat {{.Outcome}}: {{.Target}}</title>
<style>
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #fff; max-width: 1000px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
code, .target { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.target { font-size: 15px; word-break: break-all; margin: 0 0 10px; }
.status { margin: 0 0 8px; font-size: 15px; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 11px; font-weight: 600; color: #fff; margin-right: 8px; }
.ok { background: #1a7f37; } .warn { background: #bf8700; } .bad { background: #cf222e; } .muted { background: #6e7781; }
.reason { font-size: 15px; margin: 0 0 10px; }
.meta { color: #57606a; margin: 0; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 3px 16px 3px 0; border-bottom: 1px solid #eaeef2; }
th { font-weight: 500; color: #57606a; }
td { font-variant-numeric: tabular-nums; word-break: break-word; }
figure { margin: 0 0 26px; break-inside: avoid; page-break-inside: avoid; }
figcaption { margin-bottom: 2px; }
figcaption code { color: #57606a; font-size: 12px; margin-left: 6px; }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: #57606a; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.plot { fill: #fff; stroke: #d0d7de; }
.grid { stroke: #eaeef2; }
.series { fill: none; stroke: #0969da; stroke-width: 1.5; stroke-linejoin: round; }
.dot { fill: #0969da; }
.thr { stroke: #cf222e; stroke-width: 1.2; stroke-dasharray: 6 4; }
svg text.thrlabel, svg text.flatlabel { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg text.thrlabel { fill: #cf222e; }
.flat { fill: #1a7f37; fill-opacity: 0.1; }
.flatline { stroke: #1a7f37; stroke-width: 1.2; }
svg text.flatlabel { fill: #1a7f37; }
.mark { stroke: #6e7781; stroke-dasharray: 2 3; }
.release { stroke: #8250df; stroke-width: 1.6; }
svg text.releaselabel { fill: #8250df; font-weight: 600; }
.note { color: #57606a; font-style: italic; margin: 4px 0 0; }
.legend { color: #57606a; font-size: 12px; margin: 2px 0 0; }
@media print {
  body { margin: 0; max-width: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
</head>
<body>
<header>
<h1>preheat warm run</h1>
<p class="target">{{.Target}}</p>
<p class="status"><span class="badge {{.OutcomeClass}}">{{.Outcome}}</span>{{.ReleaseText}}</p>
{{if .Reason}}<p class="reason">{{.Reason}}</p>{{end}}
<p class="meta">{{if .Started}}Started {{.Started}}{{end}}{{if .Ended}} · ended {{.Ended}}{{end}}{{if .RunFor}} · ran {{.RunFor}}{{end}}{{if .MetricsURL}} · metrics from <code>{{.MetricsURL}}</code>{{end}}</p>
</header>
{{if .Facts}}
<section>
<h2>Facts</h2>
<table>
{{range .Facts}}<tr><th scope="row">{{.Name}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
</section>
{{end}}
{{if .Charts}}
<section>
<h2>Signals</h2>
{{range $c := .Charts}}<figure>
<figcaption><strong>{{$c.Title}}</strong>{{if ne $c.Name $c.Title}}<code>{{$c.Name}}</code>{{end}}</figcaption>
{{if $c.Note}}<p class="note">{{$c.Note}}</p>
{{else}}<svg viewBox="0 0 960 {{$c.H}}" role="img" aria-label="{{$c.Title}}">
<title>{{$c.LineTip}}</title>
<rect class="plot" x="{{$c.X0}}" y="{{$c.Y0}}" width="{{$c.PlotW}}" height="{{$c.PlotH}}" />
{{range $c.YTicks}}<line class="grid" x1="{{$c.X0}}" x2="{{$c.X1}}" y1="{{.Pos}}" y2="{{.Pos}}" /><text x="{{$c.YTickX}}" y="{{.Pos}}" dy="3.5" text-anchor="end">{{.Label}}</text>
{{end}}{{range $c.XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$c.Y0}}" y2="{{$c.Y1}}" /><text x="{{.Pos}}" y="{{$c.XTickY}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{with $c.Flat}}<rect class="flat" x="{{.X}}" y="{{$c.Y0}}" width="{{.W}}" height="{{$c.PlotH}}"><title>{{.Label}}</title></rect>
<line class="flatline" x1="{{.X}}" x2="{{.X}}" y1="{{$c.Y0}}" y2="{{$c.Y1}}" />
<text class="flatlabel" x="{{.LX}}" y="{{.LY}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}{{with $c.Threshold}}<line class="thr" x1="{{$c.X0}}" x2="{{$c.X1}}" y1="{{.Y}}" y2="{{.Y}}"><title>{{.Label}}</title></line>
<text class="thrlabel" x="{{.LX}}" y="{{.LY}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range $c.Lines}}<line class="{{.Class}}" x1="{{.X}}" x2="{{.X}}" y1="{{.LY}}" y2="{{$c.Y1}}"><title>{{.Tip}}</title></line>
<text class="{{.LabelClass}}" x="{{.LX}}" y="{{.LY}}" text-anchor="{{.Anchor}}">{{.Label}}<title>{{.Tip}}</title></text>
{{end}}{{if $c.Path}}<path class="series" d="{{$c.Path}}"><title>{{$c.LineTip}}</title></path>
{{end}}{{range $c.Dots}}<circle class="dot" cx="{{.X}}" cy="{{.Y}}" r="{{.R}}"><title>{{.Tip}}</title></circle>
{{end}}<text x="{{$c.XMid}}" y="{{$c.XLabelY}}" text-anchor="middle">seconds since start</text>
<text x="16" y="{{$c.YMid}}" transform="{{$c.YLabelXform}}" text-anchor="middle">{{$c.YLabel}}</text>
</svg>
<p class="legend">{{$c.Summary}}</p>
{{end}}</figure>
{{end}}</section>
{{end}}
</body>
</html>
`
