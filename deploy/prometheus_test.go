package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// The labels the test's Prometheus gives every scraped series, as the
// PodMonitors of deploy/kubernetes/components/monitoring do: the dashboard
// filters on namespace and on the containers' names.
const (
	e2eNamespace = "preheat-e2e"
	e2eStream    = "preheat-e2e"
	e2eToken     = "e2e-token"
)

// expectedEmpty are the queries that return no data in
// TestQueriesOnRealPrometheus, by query key (see query.key; a rule's
// measures are "alert NAME / MEASURE"), each with why: what they show does
// not happen on a healthy loopback run of a tap, a cache, a warmer and a
// load test over kinesalite. Any other query that returns nothing fails the
// test, and so does an entry here that names no query.
var expectedEmpty = map[string]string{
	// The tap: nothing is dropped, the budget is never reached, every
	// upgrade succeeds.
	"panel Sessions per second / dropped: {{reason}}":                                                                              "no session is dropped: the capture buffer never reaches three quarters of --budget",
	"alert PreheatTapSessionsDropped / sum by (namespace, pod) (rate(preheat_tap_sessions_dropped_total[10m]))":                    "no session is dropped",
	"alert PreheatTapSessionsCutByBudget / sum by (namespace, pod) (rate(preheat_tap_sessions_cut_total{reason=\"budget\"}[10m]))": "sessions are cut only by --max-session-frames here, never by the budget",
	"panel Proxied connections / upgrade failures/s {{reason}}":                                                                    "every websocket upgrade succeeds",
	"panel Sessions per second / lost: {{reason}}":                                                                                 "no session is lost: the stream takes every batch",
	"alert PreheatTapSessionsLost / sum by (namespace, pod, reason) (rate(preheat_tap_sessions_lost_total[10m]))":                  "no session is lost",
	// The stream: kinesalite accepts every record and fails no call.
	"panel Throttling, retries and errors / retried {{reason}}":                                                "kinesalite accepts every record: no partial PutRecords failure to retry",
	"panel Throttling, retries and errors / errors {{op}}":                                                     "no Kinesis call fails",
	"alert PreheatStreamWritesRetried / sum by (namespace, pod) (rate(preheat_kinesis_put_retries_total[5m]))": "no partial PutRecords failure",
	"alert PreheatStreamErrors / sum by (namespace, pod, op) (rate(preheat_kinesis_errors_total[5m]))":         "no Kinesis call fails",
	// The warm-up: released warm, before its deadline, once.
	"alert PreheatWarmupsHitDeadline / count by (namespace) (preheat_readiness_outcomes_total{outcome=~\"deadline_open|deadline_closed\"} > 0)": "the warmer is released warm, not at its deadline",
	"alert PreheatWarmupReleasedSlowly / max by (namespace, pod) (preheat_readiness_release_seconds offset 1h)":                                 "no pod of this run was released an hour ago",
	"alert PreheatWarmTargetMetricsFailing / sum by (namespace, pod) (rate(preheat_readiness_scrape_errors_total[5m]))":                         "every scrape of the target's metrics succeeds",
	"panel Replayed sessions and errors / scrape errors {{reason}}":                                                                             "every scrape of the target's metrics succeeds",
	// The load test: every session succeeds.
	"panel Sessions failed by class / {{target}} {{class}}": "every load-test session succeeds against the echo server",
}

// TestQueriesOnRealPrometheus runs a tap, a replay cache, a warmer and a
// load test on loopback over a Kinesis stream (kinesalite), with clients
// talking through the tap to a websocket echo server, and has a real
// Prometheus scrape them every second and evaluate the alert rules. Then it
// evaluates every dashboard query (as Grafana does, over the run, with the
// variables set) and every rule's expression, and checks that:
//   - Prometheus accepts and evaluates each one without error, and reports
//     every rule healthy;
//   - each dashboard query returns data, and each measure a rule compares
//     (its expression with the comparisons and set operations taken apart)
//     does too, unless listed in expectedEmpty with the reason;
//   - no alert fires on this healthy run.
func TestQueriesOnRealPrometheus(t *testing.T) {
	promBin := needTool(t, "prometheus", "apt-get install prometheus")
	kinesis := startKinesalite(t)
	createStream(t, kinesis, e2eStream)
	dir := t.TempDir()
	env := []string{"PATH=/nonexistent", "HOME=" + dir,
		"AWS_ENDPOINT_URL_KINESIS=" + kinesis, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true"}

	echo := httptest.NewServer(http.HandlerFunc(echoWebsocket))
	t.Cleanup(echo.Close)
	echoURL := "ws" + strings.TrimPrefix(echo.URL, "http")
	jvm := fakeJVM()
	t.Cleanup(jvm.Close)

	// Sessions on /health are excluded from capture, and sessions over 40
	// messages cut, so that the skipped and cut series have data.
	tap := start(t, env, "tap", "--listen=127.0.0.1:0", "--upstream="+echoURL, "--stream=kinesis://"+e2eStream,
		"--admin-listen=127.0.0.1:0", "--admin-token="+e2eToken, "--exclude=/health", "--max-session-frames=40",
		"--shutdown-timeout=2s")
	tapAddr := tap.logAddr(t, "tap listening")
	tapAdmin := tap.logAddr(t, "admin listening")
	cache := start(t, env, "cache", "--stream=kinesis://"+e2eStream, "--listen=127.0.0.1:0", "--token="+e2eToken,
		"--window=10m", "--shutdown-timeout=2s")
	cacheAddr := cache.logAddr(t, "cache listening")
	readyAddr, loadAddr := freePort(t), freePort(t)

	prom := startPrometheus(t, promBin, []scrapeTarget{
		{"preheat-tap", "router-0", "preheat-tap", tapAdmin, e2eToken},
		{"preheat-cache", "preheat-cache-0", "preheat-cache", cacheAddr, e2eToken},
		{"preheat-warm", "sync-server-0", "preheat-warm", readyAddr, ""},
		{"preheat-loadtest", "preheat-loadtest-0", "preheat-loadtest", loadAddr, ""},
	})
	begin := time.Now()

	sessions := talkThroughTap(t, "ws://"+tapAddr)
	prom.waitFor(t, "the cache holding sessions", `preheat_cache_sessions >= 5`, 30*time.Second)

	warm := start(t, env, "warm", "--target="+echoURL, "--metrics="+jvm.URL+"/metrics", "--cache=http://"+cacheAddr,
		"--cache-token="+e2eToken, "--ready-addr="+readyAddr, "--window=10s", "--hold=2s", "--min-warm=0",
		"--min-responses=20", "--max-jitter=0.05", "--max-latency=1000", "--rate=100", "--deadline=2m")
	load := start(t, env, "loadtest", "--source=http://"+cacheAddr, "--source-token="+e2eToken, "--target="+echoURL,
		"--sessions=20", "--sessions-per-second=4", "--duration=10m", "--drain=1s", "--abort-after=0", "--progress=0",
		"--metrics-addr="+loadAddr)
	prom.waitFor(t, "the warmer's release", `preheat_readiness_release_seconds`, 60*time.Second, warm)
	prom.waitFor(t, "load-test sessions", `preheat_loadtest_sessions_started_total > 0`, 20*time.Second, load)
	// A few more scrapes and rule evaluations after the release.
	time.Sleep(3 * time.Second)
	end := time.Now()
	if n := sessions.Load(); n < 10 {
		t.Fatalf("only %d sessions went through the tap", n)
	}
	released := "?"
	if m := regexp.MustCompile(`msg="warm run ended".* elapsed=(\S+)`).FindStringSubmatch(warm.log()); m != nil {
		released = m[1]
	}
	t.Logf("run: %v of traffic, %d sessions through the tap, the warmer released after %s",
		end.Sub(begin).Round(time.Second), sessions.Load(), released)

	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s",
		"${namespace}", e2eNamespace, "$namespace", e2eNamespace)
	seen := map[string]bool{}
	check := func(key, expr string) {
		t.Helper()
		seen[key] = true
		n, err := prom.rangeQuery(expr, begin, end)
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", key, expr, err)
		case n == 0 && expectedEmpty[key] == "":
			t.Errorf("%s: %s returned no data, and is not listed in expectedEmpty", key, expr)
		case n == 0:
			t.Logf("%-100s empty, as expected: %s", key, expectedEmpty[key])
		case expectedEmpty[key] != "":
			t.Logf("%-100s %d series, though listed as expected empty", key, n)
		default:
			t.Logf("%-100s %d series", key, n)
		}
	}
	for _, q := range dashboardQueries(t) {
		check(q.key, vars.Replace(q.raw))
	}
	for _, q := range ruleQueries(t) {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.raw)
		if err != nil {
			t.Errorf("%s: %v", q.key, err)
			continue
		}
		firing, err := prom.instantQuery(q.raw, end)
		if err != nil {
			t.Errorf("%s: %s: %v", q.key, q.raw, err)
		} else if q.alert && firing > 0 {
			t.Errorf("%s fires on a healthy run (%d series): %s", q.key, firing, q.raw)
		}
		if !q.alert {
			check(q.key, q.raw)
			continue
		}
		for _, m := range measures(expr) {
			text := q.raw[m.PositionRange().Start:m.PositionRange().End]
			check(q.key+" / "+strings.Join(strings.Fields(text), " "), text)
		}
	}
	for key := range expectedEmpty {
		if !seen[key] {
			t.Errorf("expectedEmpty lists %q, which is no query of the dashboard or the rules", key)
		}
	}
	prom.checkRulesHealthy(t)
}

// measures returns the parts of a rule's expression that measure something:
// the operands of its comparisons and set operations, recursively, leaving
// out numbers and other scalars. A healthy system returns nothing for
// most alert expressions, but it has data for what they compare.
func measures(e parser.Expr) []parser.Expr {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return measures(n.Expr)
	case *parser.BinaryExpr:
		if n.Op.IsSetOperator() || (n.Op.IsComparisonOperator() && !n.ReturnBool) {
			return append(measures(n.LHS), measures(n.RHS)...)
		}
	}
	if e.Type() == parser.ValueTypeScalar || e.Type() == parser.ValueTypeString {
		return nil
	}
	return []parser.Expr{e}
}

// echoWebsocket sends every message back as it came.
func echoWebsocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, b); err != nil {
			return
		}
	}
}

// fakeJVM serves the warmth signals of a warm JVM: a steady scheduler
// jitter of 4 ms and JIT compiles trickling at 2 ms a second.
func fakeJVM() *httptest.Server {
	start := time.Now()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE jvm_scheduler_jitter_seconds gauge\njvm_scheduler_jitter_seconds 0.004\n")
		fmt.Fprintf(w, "# TYPE jvm_compilation_time_ms_total counter\njvm_compilation_time_ms_total %.3f\n", 2*time.Since(start).Seconds())
	}))
}

// talkThroughTap starts clients that open a session through the tap every
// 200 ms until the test ends: four reads and a delete (which warm-ups skip),
// echoed back; every fifth time also a session on an excluded route and one
// too long to record whole. It returns the count of sessions completed.
func talkThroughTap(t *testing.T, base string) *atomic.Int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	var wg sync.WaitGroup
	var failures atomic.Int64
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			err := talk(ctx, base+"/sync", i, 4)
			if i%5 == 0 && err == nil {
				err = errors.Join(talk(ctx, base+"/health", i, 1), talk(ctx, base+"/sync", i, 25))
			}
			if err == nil {
				done.Add(1)
			} else if ctx.Err() == nil && failures.Add(1) == 1 {
				t.Logf("a session through the tap failed: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &done
}

// talk is one client session: reads queries, each answered before the next,
// then a delete, then a normal close.
func talk(ctx context.Context, u string, i, reads int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", u, err)
	}
	defer c.CloseNow()
	msgs := make([]string, 0, reads+1)
	for j := range reads {
		msgs = append(msgs, fmt.Sprintf(`{"op":"getItems","id":%d,"page":%d}`, i*100+j, j))
	}
	msgs = append(msgs, fmt.Sprintf(`{"op":"deleteItem","id":%d}`, i*100+99))
	for _, m := range msgs {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, b, err := c.Read(ctx); err != nil || string(b) != m {
			return fmt.Errorf("read the echo of %s: %q, %v", m, b, err)
		}
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

// startKinesalite starts tools/kinesalite/server.js, an in-memory
// Kinesis-compatible server, on a free loopback port and returns its
// endpoint. The tool is installed by make kinesalite (make test).
func startKinesalite(t *testing.T) string {
	t.Helper()
	node := needTool(t, "node", "apt-get install nodejs")
	dir := filepath.Join(repoRoot, "tools", "kinesalite")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kinesalite not installed in %s; make kinesalite installs it", dir)
		}
		t.Skipf("kinesalite not installed in %s (make kinesalite); skipped outside CI", dir)
	}
	p := &process{cmd: exec.Command(node, "server.js", "0")}
	p.cmd.Dir = dir
	p.cmd.Stderr = p
	stdin, err := p.cmd.StdinPipe() // server.js exits when it closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		port, ok := strings.CutPrefix(strings.TrimSpace(s), "LISTENING ")
		if !ok {
			t.Fatalf("kinesalite: %q instead of LISTENING PORT:\n%s", s, p.log())
		}
		return "http://127.0.0.1:" + port
	case <-time.After(30 * time.Second):
		t.Fatalf("kinesalite did not listen within 30 s:\n%s", p.log())
	}
	return ""
}

// kinesisCall calls a Kinesis API operation on endpoint with its JSON
// protocol. kinesalite checks that a request is signed, not the signature.
func kinesisCall(endpoint, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest("POST", endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s: %s", op, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// createStream creates a one-shard stream and waits until it is active.
func createStream(t *testing.T, endpoint, name string) {
	t.Helper()
	if err := kinesisCall(endpoint, "CreateStream", map[string]any{"StreamName": name, "ShardCount": 1}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out struct {
			StreamDescriptionSummary struct{ StreamStatus string }
		}
		err := kinesisCall(endpoint, "DescribeStreamSummary", map[string]any{"StreamName": name}, &out)
		if err == nil && out.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not active in 20 s: %s, %v", name, out.StreamDescriptionSummary.StreamStatus, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrapeTarget is one component Prometheus scrapes, labelled as the
// PodMonitors label it.
type scrapeTarget struct {
	job, pod, container, addr, token string
}

// prometheus is a Prometheus server run for a test.
type prometheus struct {
	*process
	base string
}

// startPrometheus runs Prometheus on a free loopback port, scraping targets
// every second and evaluating the alert rules every second, with its
// storage in a temporary directory, and waits until it is ready.
func startPrometheus(t *testing.T, bin string, targets []scrapeTarget) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []any
	for _, tg := range targets {
		job := map[string]any{
			"job_name": tg.job,
			"static_configs": []any{map[string]any{
				"targets": []string{tg.addr},
				"labels":  map[string]string{"namespace": e2eNamespace, "pod": tg.pod, "container": tg.container},
			}},
		}
		if tg.token != "" {
			job["authorization"] = map[string]string{"credentials": tg.token}
		}
		jobs = append(jobs, job)
	}
	cfg, err := yaml.Marshal(map[string]any{
		"global":         map[string]string{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{rules},
		"scrape_configs": jobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	p := &prometheus{process: &process{cmd: exec.Command(bin, "--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")},
		base: "http://" + addr}
	p.cmd.Stderr = p.process
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready in 30 s: %v\n%s", err, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api calls a Prometheus HTTP API endpoint and decodes its data.
func (p *prometheus) api(path string, params url.Values, data any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status   string          `json:"status"`
		Error    string          `json:"error"`
		Data     json.RawMessage `json:"data"`
		Warnings []string        `json:"warnings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	if len(r.Warnings) > 0 {
		return fmt.Errorf("%s: warnings %q", path, r.Warnings)
	}
	return json.Unmarshal(r.Data, data)
}

func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// rangeQuery evaluates expr from start to end at 1 s steps, as a Grafana
// time series panel does, and returns how many series have a sample that
// is a number (not NaN).
func (p *prometheus) rangeQuery(expr string, start, end time.Time) (int, error) {
	var data struct {
		Result []struct {
			Values [][2]any `json:"values"`
		} `json:"result"`
	}
	err := p.api("/api/v1/query_range", url.Values{"query": {expr}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"1"}}, &data)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range data.Result {
		for _, v := range s.Values {
			if f, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64); err == nil && !math.IsNaN(f) {
				n++
				break
			}
		}
	}
	return n, nil
}

// instantQuery evaluates expr at at, as the rule evaluator does, and
// returns how many series (or 1 for a scalar) it returned.
func (p *prometheus) instantQuery(expr string, at time.Time) (int, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}, "time": {promTime(at)}}, &data); err != nil {
		return 0, err
	}
	if data.ResultType != "vector" {
		return 1, nil
	}
	var v []json.RawMessage
	if err := json.Unmarshal(data.Result, &v); err != nil {
		return 0, err
	}
	return len(v), nil
}

// waitFor waits until expr returns data, failing after timeout with the
// logs of the processes given.
func (p *prometheus) waitFor(t *testing.T, what, expr string, timeout time.Duration, logs ...*process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := p.instantQuery(expr, time.Now())
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l.log())
			}
			t.Fatalf("waiting for %s (%s): nothing in %v (%v)\n%s", what, expr, timeout, err, b.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkRulesHealthy checks that Prometheus loaded every rule of the rules
// file and evaluated each without error.
func (p *prometheus) checkRulesHealthy(t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", nil, &data); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %q, last error %q", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(ruleQueries(t)); len(names) != want {
		sort.Strings(names)
		t.Errorf("prometheus loaded %d rules, the file has %d: %v", len(names), want, names)
	}
}
