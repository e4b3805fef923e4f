package readiness

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/chart"
)

// htmlSampleReport returns a report shaped like a real warm run: jitter
// decaying from a second to a few milliseconds, JIT compilation in two
// waves, replay latency settling, a signal the target does not expose,
// marks and facts.
func htmlSampleReport() *Report {
	start := time.Date(2026, 11, 22, 19, 30, 0, 0, time.UTC)
	var jitter, compile, latency []Point
	for i := range 240 {
		t := float64(i) * 0.25
		wobble := 1 + 0.25*math.Sin(float64(i)*1.7)
		jitter = append(jitter, Point{T: t, V: (0.002 + 1.2*math.Exp(-t/6)) * wobble})
		wave1 := 900 * math.Exp(-math.Pow((t-6)/3, 2))
		wave2 := 500 * math.Exp(-math.Pow((t-27)/4, 2))
		compile = append(compile, Point{T: t, V: wave1 + wave2 + 3*wobble})
		latency = append(latency, Point{T: t, V: 12 + 180*math.Exp(-t/9)*wobble})
	}
	return &Report{
		Target:     "wss://chat-7f9c.pods.internal:8443/ws",
		MetricsURL: "http://10.4.2.17:9090/metrics",
		Started:    start,
		Ended:      start.Add(60 * time.Second),
		Outcome:    "warm",
		Released:   true,
		ReleasedAt: start.Add(58500 * time.Millisecond),
		Reason: "All signals flat for 15s: jitter p99 4.1 ms under 10 ms, " +
			"compile rate 3.2 ms/s under 20 ms/s, replay latency p50 12.4 ms.",
		Signals: []Series{
			{Name: "jitter_p99_seconds", Title: "Scheduler jitter p99", Unit: "s", Threshold: 0.01, FlatAt: 41.5, Points: jitter},
			{Name: "compile_ms_per_second", Title: "JIT compile rate", Unit: "ms/s", Threshold: 20, FlatAt: 43.5, Points: compile},
			{Name: "replay_latency_p50_ms", Title: "Replay latency p50", Unit: "ms", FlatAt: 38, Points: latency},
			{Name: "gc_pause_p99_seconds", Title: "GC pause p99", Unit: "s", FlatAt: -1, Missing: true},
		},
		Marks: []Mark{
			{T: 0.4, Label: "first session replayed"},
			{T: 1.1, Label: "replay at full rate"},
			{T: 41.5, Label: "jitter flat"},
			{T: 43.5, Label: "compile flat"},
		},
		Facts: []Fact{
			{Name: "Sessions replayed", Value: "1,284"},
			{Name: "Messages replayed", Value: "96,310"},
			{Name: "Messages skipped as mutating", Value: "2,017"},
			{Name: "Flat window", Value: "15s"},
			{Name: "Deadline", Value: "2m0s"},
		},
	}
}

func htmlRender(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
	return b.String()
}

// htmlPageElements are the elements WriteHTML emits; any other one in a page
// came from report text that was not escaped.
var htmlPageElements = map[string]bool{
	"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true,
	"header": true, "h1": true, "h2": true, "p": true, "span": true, "code": true, "strong": true,
	"section": true, "table": true, "tr": true, "th": true, "td": true, "figure": true, "figcaption": true,
	"svg": true, "rect": true, "line": true, "text": true, "path": true, "circle": true,
}

var htmlSVGFragment = regexp.MustCompile(`(?s)<svg[ >].*?</svg>`)

// htmlCheckPage fails unless page parses as (lenient) markup with balanced
// elements, each SVG fragment parses as strict XML without NaN or Inf in
// it, and the page neither runs script nor refers to anything outside it.
// It returns the SVG fragments.
func htmlCheckPage(t *testing.T, page string) []string {
	t.Helper()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Errorf("page does not start with a doctype: %.40q", page)
	}
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	var stack []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("page does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if !htmlPageElements[tok.Name.Local] {
				t.Errorf("page has a <%s> element", tok.Name.Local)
			}
			for _, a := range tok.Attr {
				name := strings.ToLower(a.Name.Local)
				if name == "src" || name == "href" || strings.HasPrefix(name, "on") ||
					strings.Contains(strings.ToLower(a.Value), "url(") {
					t.Errorf("page has <%s %s=%q>", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
			stack = append(stack, tok.Name.Local)
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "style" {
				if css := strings.ToLower(string(tok)); strings.Contains(css, "url(") || strings.Contains(css, "@import") {
					t.Errorf("style sheet loads from elsewhere")
				}
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Name.Local {
				t.Fatalf("unbalanced </%s> inside %v", tok.Name.Local, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}

	if strings.Contains(strings.ToLower(page), "<script") {
		t.Errorf("page contains a script element")
	}

	svgs := htmlSVGFragment.FindAllString(page, -1)
	for i, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("svg %d is not well-formed XML: %v\n%s", i, err, s)
			}
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("svg %d contains NaN or Inf:\n%s", i, s)
		}
	}
	return svgs
}

func TestWriteHTML(t *testing.T) {
	r := htmlSampleReport()
	page := htmlRender(t, r)
	svgs := htmlCheckPage(t, page)

	if got, want := len(svgs), 3; got != want {
		t.Fatalf("got %d <svg> charts, want one per present series (%d)", got, want)
	}
	if got := strings.Count(page, `class="thr"`); got != 2 {
		t.Errorf("got %d threshold lines, want 2", got)
	}
	if !strings.Contains(svgs[0], "s (log scale)") {
		t.Errorf("jitter chart spanning three decades is not on a labelled log scale")
	}
	if !strings.Contains(svgs[1], "ms/s (log scale)") {
		t.Errorf("compile chart spanning 2.6 decades is not on a labelled log scale")
	}
	if strings.Contains(svgs[2], "log scale") {
		t.Errorf("latency chart spanning 1.3 decades is on a log scale")
	}
	for _, want := range []string{
		r.Target,
		`class="badge ok"`,
		"released after 58.5s",
		"threshold 0.01 s",
		"threshold 20 ms/s",
		"flat from 41.5 s",
		"Not exposed by the target",
		"first session replayed",
		"Messages skipped as mutating",
		"seconds since start",
		`class="release"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if i, j := strings.Index(page, "Sessions replayed"), strings.Index(page, "Deadline"); i < 0 || j < i {
		t.Errorf("facts are not in report order")
	}
	if got := strings.Count(svgs[0], `class="mark"`); got != len(r.Marks) {
		t.Errorf("got %d mark lines, want %d", got, len(r.Marks))
	}

	// The golden-ish example: a real file that reads back as the same page.
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != page {
		t.Errorf("rendering the same report twice gave different pages")
	}
}

func TestWriteHTMLEscapes(t *testing.T) {
	r := htmlSampleReport()
	r.Target = `wss://evil.example/ws?x="><script>alert(1)</script>`
	r.MetricsURL = `javascript:alert("m")`
	r.Reason = `<img src=x onerror=alert(2)>`
	r.Signals[0].Title = `<b onclick="x()">jitter</b>`
	r.Signals[0].Unit = `</text><script>`
	r.Marks = append(r.Marks, Mark{T: 5, Label: `"/><script>alert(3)</script>`})
	r.Facts = append(r.Facts, Fact{Name: `<th>`, Value: `</td></tr></table><script>`})
	page := htmlRender(t, r)
	htmlCheckPage(t, page)
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("target is not escaped")
	}
}

func TestWriteHTMLEdgeCases(t *testing.T) {
	ramp := func(n int, v func(i int) float64) []Point {
		pts := make([]Point, n)
		for i := range pts {
			pts[i] = Point{T: float64(i), V: v(i)}
		}
		return pts
	}
	nan, inf := math.NaN(), math.Inf(1)

	f := func(name string, s Series, want string) {
		t.Helper()
		r := htmlSampleReport()
		r.Signals = []Series{s}
		page := htmlRender(t, r)
		svgs := htmlCheckPage(t, page)
		switch want {
		case "chart":
			if len(svgs) != 1 {
				t.Errorf("%s: got %d charts, want 1", name, len(svgs))
			}
		default:
			if len(svgs) != 0 || !strings.Contains(page, want) {
				t.Errorf("%s: want only the note %q", name, want)
			}
		}
	}

	f("no points", Series{Name: "a", FlatAt: -1}, "No samples were recorded.")
	f("only NaN and Inf", Series{Name: "a", FlatAt: -1, Points: []Point{{0, nan}, {nan, 1}, {1, inf}, {2, math.Inf(-1)}}},
		"No finite samples were recorded (4 skipped")
	f("missing", Series{Name: "a", FlatAt: -1, Missing: true}, "Not exposed by the target")
	f("one point", Series{Name: "a", Unit: "ms", FlatAt: -1, Points: []Point{{3, 7}}}, "chart")
	f("one point at zero", Series{Name: "a", FlatAt: 0, Points: []Point{{0, 0}}}, "chart")
	f("all equal", Series{Name: "a", FlatAt: 2, Points: ramp(50, func(int) float64 { return 4.2 })}, "chart")
	f("all zero", Series{Name: "a", FlatAt: 2, Points: ramp(50, func(int) float64 { return 0 })}, "chart")
	f("all equal negative", Series{Name: "a", FlatAt: -1, Points: ramp(5, func(int) float64 { return -3 })}, "chart")
	f("some NaN and Inf", Series{Name: "a", FlatAt: nan, Threshold: inf, Points: ramp(20, func(i int) float64 {
		return []float64{1, nan, inf, 2}[i%4]
	})}, "chart")
	f("negative T", Series{Name: "a", FlatAt: 1, Points: []Point{{-20, 1}, {-5, 3}, {0, 2}, {10, 1}}}, "chart")
	f("unsorted", Series{Name: "a", FlatAt: -1, Points: []Point{{5, 1}, {1, 3}, {3, 2}}}, "chart")
	f("log with zeros", Series{Name: "a", FlatAt: -1, Points: ramp(20, func(i int) float64 { return math.Pow(10, -float64(i%5)) * float64(i%3) })}, "chart")
	f("tiny positive span", Series{Name: "a", FlatAt: -1, Points: ramp(20, func(i int) float64 { return 1e-12 * float64(i+1) })}, "chart")
	f("huge values", Series{Name: "a", FlatAt: -1, Points: []Point{{0, -math.MaxFloat64}, {1, math.MaxFloat64}, {2, 0}}}, "chart")
	f("values beyond float steps", Series{Name: "a", FlatAt: -1, Points: []Point{{0, 1e20}, {1, 1e20 + 1e4}}}, "chart")
	f("many decades", Series{Name: "a", FlatAt: -1, Points: []Point{{0, 1e-300}, {1, 1e300}}}, "chart")
	f("huge T", Series{Name: "a", FlatAt: -1, Points: []Point{{-math.MaxFloat64, 1}, {math.MaxFloat64, 2}}}, "chart")
	f("threshold only", Series{Name: "a", Threshold: 50, FlatAt: -1, Points: ramp(10, func(int) float64 { return 1 })}, "chart")
	f("flat beyond data", Series{Name: "a", FlatAt: 500, Points: ramp(10, func(int) float64 { return 1 })}, "chart")
	f("100k points", Series{Name: "a", FlatAt: 50000, Threshold: 2, Points: ramp(100_000, func(i int) float64 { return math.Sin(float64(i)) })}, "chart")

	var b bytes.Buffer
	if err := WriteHTML(&b, nil); err == nil {
		t.Errorf("WriteHTML(nil) returned no error")
	}
	empty := htmlRender(t, &Report{})
	htmlCheckPage(t, empty)
}

func TestWriteHTMLLargeSeriesIsBounded(t *testing.T) {
	pts := make([]Point, 100_000)
	for i := range pts {
		pts[i] = Point{T: float64(i) / 100, V: 1 + 0.1*math.Sin(float64(i))}
	}
	pts[73_421].V = 50
	r := htmlSampleReport()
	r.Signals = []Series{{Name: "spiky", Unit: "ms", FlatAt: -1, Points: pts}}
	page := htmlRender(t, r)
	svgs := htmlCheckPage(t, page)
	path := regexp.MustCompile(` d="([^"]*)"`).FindStringSubmatch(svgs[0])
	if path == nil {
		t.Fatal("no series path")
	}
	if n := strings.Count(path[1], "L") + 1; n > chartMaxPoints {
		t.Errorf("drew %d points, want at most %d", n, chartMaxPoints)
	}
	if got := strings.Count(svgs[0], "<circle"); got != 0 {
		t.Errorf("drew %d dots for a huge series", got)
	}
	if !strings.Contains(page, "max 50 ms") {
		t.Errorf("summary lacks the spike")
	}
}

func TestChartDownsampleKeepsSpikes(t *testing.T) {
	pts := make([]Point, 100_000)
	for i := range pts {
		pts[i] = Point{T: float64(i), V: math.Sin(float64(i) / 50)}
	}
	pts[73_421].V = 1000
	pts[12_345].V = -1000
	got := chartDownsample(pts, chartMaxPoints)
	if len(got) > chartMaxPoints {
		t.Fatalf("got %d points, want at most %d", len(got), chartMaxPoints)
	}
	if !slices.Contains(got, pts[73_421]) || !slices.Contains(got, pts[12_345]) {
		t.Errorf("the spike or the dip was dropped")
	}
	if !slices.IsSortedFunc(got, chartByT) {
		t.Errorf("downsampled points are out of time order")
	}
	if short := pts[:chartMaxPoints]; len(chartDownsample(short, chartMaxPoints)) != chartMaxPoints {
		t.Errorf("a series within the bound was reduced")
	}
}

func TestChartMarkLabelsDoNotOverlap(t *testing.T) {
	x := chart.Scale{Lo: 0, Hi: 60, P0: chartLeft, P1: chartWidth - chartRight}
	marks := []Mark{{T: 1, Label: "first session replayed"}, {T: 1.5, Label: "full rate"}, {T: 30, Label: "jitter flat"}}
	lines, rows := chartVLines(x, marks, 59.5)
	if rows != 2 {
		t.Errorf("got %d label rows, want 2", rows)
	}
	if lines[0].LY == lines[1].LY {
		t.Errorf("labels of marks half a second apart share a row")
	}
	if lines[2].LY != 0 {
		t.Errorf("a label with room in the first row was moved down")
	}
	if last := lines[len(lines)-1]; last.Label != "released" || last.Anchor != "end" {
		t.Errorf("release label at the right edge is %+v, want it anchored at its end", last)
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := htmlSampleReport()
	nan, inf := math.NaN(), math.Inf(1)
	r.Signals[0].Points = append(r.Signals[0].Points, Point{T: 60.25, V: nan}, Point{T: inf, V: 1}, Point{T: 60.5, V: 0.003})
	r.Signals[1].Threshold = nan
	r.Signals[2].FlatAt = math.Inf(-1)
	r.Marks = append(r.Marks, Mark{T: nan, Label: "lost"})
	before := len(r.Signals[0].Points)

	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var got Report
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("output does not decode: %v\n%s", err, b.String())
	}
	if len(r.Signals[0].Points) != before || !math.IsNaN(r.Signals[1].Threshold) {
		t.Errorf("WriteJSON changed its input")
	}

	want := htmlSampleReport()
	want.Signals[0].Points = append(want.Signals[0].Points, Point{T: 60.5, V: 0.003})
	want.Signals[1].Threshold = 0
	want.Signals[2].FlatAt = -1
	if !reflect.DeepEqual(&got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("round trip differs:\n got %s\nwant %s", gj, wj)
	}

	if err := WriteJSON(&b, nil); err == nil {
		t.Errorf("WriteJSON(nil) returned no error")
	}
}

// TestWriteSample writes the sample report to the path in
// PREHEAT_REPORT_SAMPLE, so a person can open it in a browser.
func TestWriteSample(t *testing.T) {
	path := os.Getenv("PREHEAT_REPORT_SAMPLE")
	if path == "" {
		t.Skip("PREHEAT_REPORT_SAMPLE is not set")
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, htmlSampleReport()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

func ExampleWriteJSON() {
	start := time.Date(2026, 11, 22, 19, 30, 0, 0, time.UTC)
	r := &Report{
		Target:  "wss://chat.example/ws",
		Started: start,
		Ended:   start.Add(30 * time.Second),
		Outcome: "canceled",
		Reason:  "Canceled by the operator.",
		Signals: []Series{{
			Name: "jitter_p99_seconds", Unit: "s", FlatAt: -1,
			Points: []Point{{T: 1, V: 0.5}, {T: 2, V: math.NaN()}},
		}},
	}
	if err := WriteJSON(os.Stdout, r); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {
	//   "target": "wss://chat.example/ws",
	//   "metrics_url": "",
	//   "started": "2026-11-22T19:30:00Z",
	//   "ended": "2026-11-22T19:30:30Z",
	//   "outcome": "canceled",
	//   "released": false,
	//   "reason": "Canceled by the operator.",
	//   "signals": [
	//     {
	//       "name": "jitter_p99_seconds",
	//       "title": "",
	//       "unit": "s",
	//       "flat_at": -1,
	//       "points": [
	//         {
	//           "t": 1,
	//           "v": 0.5
	//         }
	//       ]
	//     }
	//   ]
	// }
}
