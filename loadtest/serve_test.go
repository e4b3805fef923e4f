package loadtest_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/loadtest"
)

// TestServeMetricsUntilStopped checks that ServeMetrics serves the run's
// metrics, the replayer's and the process's, and stops serving when told.
func TestServeMetricsUntilStopped(t *testing.T) {
	r, err := loadtest.New(&loadtest.Corpus{Sessions: sessions(2, 1, 1)}, "ws://127.0.0.1:1", &loadtest.Options{
		SessionsPerSecond: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := r.ServeMetrics(ln)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + ln.Addr().String() + "/metrics"
	resp, err := client.Get(url)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"preheat_loadtest_arrivals_total", `preheat_loadtest_sessions_active{target="target"}`, "preheat_replay_", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("/metrics still served after stop: %s", resp.Status)
	}
}
