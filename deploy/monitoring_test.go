package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "prometheus/preheat-rules.yaml"
	dashboardFile = "grafana/preheat.json"
)

// targetLabels are the labels Prometheus adds to every scraped series: the
// Prometheus Operator's PodMonitors set these, and annotation-based scrape
// configs usually set namespace and pod.
var targetLabels = map[string]bool{
	"job": true, "instance": true, "namespace": true, "pod": true,
	"container": true, "endpoint": true, "service": true, "node": true,
}

// syntheticSeries are the series Prometheus itself writes for each target.
var syntheticSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "scrape_series_added"}

// inventory maps each metric name the components export to its label names.
type inventory map[string]map[string]bool

func (inv inventory) add(name string, labels ...string) {
	if inv[name] == nil {
		inv[name] = map[string]bool{}
	}
	for _, l := range labels {
		inv[name][l] = true
	}
}

var (
	sourceLit = regexp.MustCompile("[`\"](preheat_[a-z0-9_]+)")
	labelDecl = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)=(?:\\?"|%q|%s|` + "`)")
	histDecl  = regexp.MustCompile("(?:NewHistogram|GetOrCreateHistogram)\\(\\s*(?:fmt\\.Sprintf\\(\\s*)?[`\"](preheat_[a-z0-9_]+)")
)

// sourceInventory reads the metric names and label names the code declares:
// string literals naming a preheat_ metric in the non-test Go files of the
// repository, with the labels written after them up to the literal's
// closing brace. A VictoriaMetrics histogram exports NAME_bucket{vmrange},
// NAME_sum and NAME_count.
func sourceInventory(t *testing.T) inventory {
	t.Helper()
	inv := inventory{}
	skip := map[string]bool{"deploy": true, "tools": true, "bench": true, "node_modules": true, ".git": true}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skip[d.Name()] && path != repoRoot {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, m := range sourceLit.FindAllStringSubmatchIndex(line, -1) {
				name := line[m[2]:m[3]]
				rest := line[m[3]:]
				var labels []string
				if strings.HasPrefix(rest, "{") {
					end := strings.Index(rest, "}")
					if end < 0 {
						end = len(rest)
					}
					for _, l := range labelDecl.FindAllStringSubmatch(rest[:end], -1) {
						labels = append(labels, l[1])
					}
				}
				inv.add(name, labels...)
			}
			for _, m := range histDecl.FindAllStringSubmatch(line, -1) {
				base := m[1]
				labels := sortedKeys(inv[base])
				inv.add(base+"_bucket", append(labels, "vmrange")...)
				inv.add(base+"_sum", labels...)
				inv.add(base+"_count", labels...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) < 50 {
		t.Fatalf("found only %d metric names in the source: the extraction is broken", len(inv))
	}
	return inv
}

// parseExposition reads Prometheus text exposition into an inventory.
func parseExposition(r io.Reader) inventory {
	inv := inventory{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		name := line[:end]
		var labels []string
		if line[end] == '{' {
			for _, l := range labelDecl.FindAllStringSubmatch(line[end:strings.LastIndex(line, "}")], -1) {
				labels = append(labels, l[1])
			}
		}
		inv.add(name, labels...)
	}
	return inv
}

// process is a preheat command run for a test, stopped at cleanup.
type process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// start runs preheat with args and stops it (SIGTERM, then kill) when the
// test ends.
func start(t *testing.T, env []string, a ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(preheatBinary(t), a...)}
	p.cmd.Env = env
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// logAddr waits for a log line with msg and returns its addr attribute.
func (p *process) logAddr(t *testing.T, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `" addr=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.log()); m != nil {
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %q log line in 30 s:\n%s", msg, p.log())
	return ""
}

// scrape fetches /metrics, with a bearer token when one is given, retrying
// until the listener answers.
func scrape(t *testing.T, base, token string) inventory {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return parseExposition(bytes.NewReader(body))
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape %s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	runningOnce sync.Once
	runningInv  inventory
	runningErr  string
)

// runningInventory starts a tap, a cache and a warmer on loopback over a
// directory-log stream, scrapes each one's /metrics once they are up, and
// returns what they export.
func runningInventory(t *testing.T) inventory {
	t.Helper()
	runningOnce.Do(func() {
		runningInv = inventory{}
		dir := t.TempDir()
		stream := "file://" + filepath.Join(dir, "stream")
		if err := os.MkdirAll(filepath.Join(dir, "stream"), 0o755); err != nil {
			t.Fatal(err)
		}
		env := []string{"PATH=/nonexistent", "HOME=" + dir}
		const token = "deploy-test-token"

		tap := start(t, env, "tap", "--listen=127.0.0.1:0", "--upstream=ws://127.0.0.1:9/", "--stream="+stream,
			"--admin-listen=127.0.0.1:0", "--admin-token="+token)
		tapAdmin := tap.logAddr(t, "admin listening") // the tap has created the log by then
		cache := start(t, env, "cache", "--stream="+stream, "--listen=127.0.0.1:0", "--token="+token)
		cacheAddr := cache.logAddr(t, "cache listening")
		ready := freePort(t)
		warm := start(t, env, "warm", "--target=ws://127.0.0.1:9/sync", "--no-jit", "--min-responses=0",
			"--cache=http://"+cacheAddr, "--cache-token="+token, "--ready-addr="+ready, "--deadline=2m")
		_ = warm
		for _, s := range []struct {
			base, token string
		}{
			{"http://" + tapAdmin, token},
			{"http://" + cacheAddr, token},
			{"http://" + ready, ""},
		} {
			for name, labels := range scrape(t, s.base, s.token) {
				runningInv.add(name, sortedKeys(labels)...)
			}
		}
	})
	if len(runningInv) == 0 {
		t.Fatal("the running components exported nothing")
	}
	return runningInv
}

// TestSourceInventoryCoversRunningComponents checks the extraction from the
// source against what a running tap, cache and warmer really export: every
// preheat_ series they serve, with its labels, is in the source inventory.
func TestSourceInventoryCoversRunningComponents(t *testing.T) {
	src := sourceInventory(t)
	run := runningInventory(t)
	n := 0
	for name, labels := range run {
		if !strings.HasPrefix(name, "preheat_") {
			continue
		}
		n++
		if src[name] == nil {
			t.Errorf("%s is exported but not found in the source", name)
			continue
		}
		for l := range labels {
			if !src[name][l] {
				t.Errorf("%s{%s} is exported but the label is not found in the source", name, l)
			}
		}
	}
	if n < 20 {
		t.Errorf("the running components exported only %d preheat_ series", n)
	}
}

// query is one PromQL expression and where it is written.
type query struct {
	where string
	expr  string // with the dashboard's variables interpolated (grafanaVars)
	// raw is the expression as written, variables and all; key names it
	// in an allow-list: "alert NAME" or "record NAME" for a rule,
	// "panel TITLE / LEGEND" for a dashboard query, "variable NAME".
	raw, key string
	// alert is set for an alerting rule.
	alert bool
}

// ruleQueries returns the expression of every rule in the rules file.
func ruleQueries(t *testing.T) []query {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Record      string            `json:"record"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict([]byte(readRepoFile(t, "deploy/"+rulesFile)), &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: alert %s needs a severity, a summary and a description", rulesFile, r.Alert)
				}
			}
			key := "alert " + r.Alert
			if r.Record != "" {
				key = "record " + r.Record
			}
			qs = append(qs, query{where: fmt.Sprintf("%s: %s %s%s", rulesFile, g.Name, r.Alert, r.Record), expr: r.Expr,
				raw: r.Expr, key: key, alert: r.Alert != ""})
		}
	}
	return qs
}

// grafanaVars stand in for the dashboard's variables, as Grafana
// interpolates them before sending a query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$namespace", ".*", "${namespace}", ".*")

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// dashboardQueries returns every panel's queries and the variables'
// label_values queries, with the variables interpolated.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr   string `json:"expr"`
				Legend string `json:"legendFormat"`
			} `json:"targets"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(readRepoFile(t, "deploy/"+dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var qs []query
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q does not use the datasource variable", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `namespace=~"$namespace"`) {
				t.Errorf("%s: panel %q: %s ignores the namespace variable", dashboardFile, p.Title, tg.Expr)
			}
			qs = append(qs, query{where: fmt.Sprintf("%s: panel %q", dashboardFile, p.Title), expr: grafanaVars.Replace(tg.Expr),
				raw: tg.Expr, key: fmt.Sprintf("panel %s / %s", p.Title, tg.Legend)})
		}
	}
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil {
			continue // a datasource variable's query is its type
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", dashboardFile, v.Name, q.Query)
			continue
		}
		qs = append(qs, query{where: fmt.Sprintf("%s: variable %s", dashboardFile, v.Name), expr: m[1], raw: m[1], key: "variable " + v.Name})
	}
	if len(qs) < 20 {
		t.Fatalf("%s: only %d queries", dashboardFile, len(qs))
	}
	return qs
}

// TestRulesPassPromtool runs Prometheus' own checker on the rules file.
func TestRulesPassPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "apt-get install prometheus")
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestDashboardQueriesPassPromtool writes every dashboard query as a
// recording rule and has promtool check them, so that the PromQL of the
// Prometheus release .ci/run installs accepts each one.
func TestDashboardQueriesPassPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "apt-get install prometheus")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		rules = append(rules, rule{fmt.Sprintf("preheat:dashboard_query_%d", i), q.expr})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

// TestQueriesNameExportedMetrics parses every rule and dashboard query with
// Prometheus' PromQL parser and checks each series it selects: the metric is
// one the components export (in the source, or served by a running
// component, such as the process metrics), and each label it matches or
// groups by is one that metric has or that scraping adds.
func TestQueriesNameExportedMetrics(t *testing.T) {
	inv := sourceInventory(t)
	for name, labels := range runningInventory(t) {
		inv.add(name, sortedKeys(labels)...)
	}
	for _, s := range syntheticSeries {
		inv.add(s)
	}
	literals := sourceLiterals(t)
	containers := map[string]bool{}
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			containers[c.Name] = true
		}
	}
	used := map[string]bool{}
	for _, q := range append(ruleQueries(t), dashboardQueries(t)...) {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %s: %v", q.where, q.expr, err)
			continue
		}
		// The labels every selected series of the query may carry.
		have := map[string]bool{"__name__": true}
		for l := range targetLabels {
			have[l] = true
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			if vs.Name == "" {
				t.Errorf("%s: %s: a selector without a metric name", q.where, q.expr)
				return nil
			}
			used[vs.Name] = true
			labels, ok := inv[vs.Name]
			if !ok {
				t.Errorf("%s: %s: no component exports %s", q.where, q.expr, vs.Name)
				return nil
			}
			for l := range labels {
				have[l] = true
			}
			for _, m := range vs.LabelMatchers {
				if m.Name != "__name__" && !labels[m.Name] && !targetLabels[m.Name] {
					t.Errorf("%s: %s: %s has no label %s", q.where, q.expr, vs.Name, m.Name)
				}
				// A value matched literally must be one the code writes (a
				// label of the metric) or a container of the manifests.
				values := matchedValues(m.Type, m.Value)
				for _, v := range values {
					switch {
					case m.Name == "container":
						if !containers[v] {
							t.Errorf("%s: %s: no rendered container is named %s", q.where, q.expr, v)
						}
					case labels[m.Name] && !literals[v]:
						t.Errorf("%s: %s: %s=%q: the code never writes that value", q.where, q.expr, m.Name, v)
					}
				}
			}
			return nil
		})
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			var grouping []string
			switch v := n.(type) {
			case *parser.AggregateExpr:
				grouping = v.Grouping
			case *parser.BinaryExpr:
				if v.VectorMatching != nil {
					grouping = append(v.VectorMatching.MatchingLabels, v.VectorMatching.Include...)
				}
			}
			for _, l := range grouping {
				if !have[l] {
					t.Errorf("%s: %s: no series here has the label %s", q.where, q.expr, l)
				}
			}
			return nil
		})
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d metrics used: %s", len(names), strings.Join(names, " "))
}

var (
	goLiteral       = regexp.MustCompile("\"((?:[^\"\\\\\n]|\\\\.)*)\"|`([^`]*)`")
	simpleAlternate = regexp.MustCompile(`^[a-zA-Z0-9_-]+(\|[a-zA-Z0-9_-]+)*$`)
)

// matchedValues returns the values an equality matcher, or a regexp matcher
// that is a plain alternation (a|b), matches; nil for any other matcher.
func matchedValues(typ labels.MatchType, v string) []string {
	switch {
	case typ == labels.MatchEqual:
		return []string{v}
	case typ == labels.MatchRegexp && simpleAlternate.MatchString(v):
		return strings.Split(v, "|")
	}
	return nil
}

// sourceLiterals returns every string literal of the non-test Go files of
// the components, the label values among them.
func sourceLiterals(t *testing.T) map[string]bool {
	t.Helper()
	lits := map[string]bool{}
	for _, dir := range []string{"capture", "replaycache", "replayer", "readiness", "loadtest", "stream", "warmup", "protocol", "cmd"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range goLiteral.FindAllStringSubmatch(string(b), -1) {
				lits[m[1]+m[2]] = true
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return lits
}

// TestMetricCheckCatchesUnknownNames shows the check above fails on a
// metric no component exports and on a label a metric lacks.
func TestMetricCheckCatchesUnknownNames(t *testing.T) {
	inv := sourceInventory(t)
	for _, bad := range []string{"preheat_tap_sessions_vanished_total", "preheat_cache_sessions_held"} {
		if inv[bad] != nil {
			t.Errorf("%s is in the inventory", bad)
		}
	}
	if inv["preheat_tap_sessions_cut_total"] == nil || !inv["preheat_tap_sessions_cut_total"]["reason"] {
		t.Error("preheat_tap_sessions_cut_total{reason} is missing from the inventory")
	}
	if inv["preheat_cache_sessions"]["reason"] {
		t.Error("preheat_cache_sessions has no reason label, yet the inventory says so")
	}
	if inv["preheat_loadtest_sessions_failed_total"] == nil || !inv["preheat_loadtest_sessions_failed_total"]["class"] {
		t.Error("a label after a concatenation (class) is missing from the inventory")
	}
	if inv["preheat_replay_response_seconds_sum"] == nil {
		t.Error("a histogram's _sum series is missing from the inventory")
	}
}
