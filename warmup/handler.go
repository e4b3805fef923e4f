package warmup

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/readiness"
)

// Handler serves a ready server for the run:
//
//	GET /readyz       503 while warming, 200 once released (readiness.Gate)
//	GET /healthz      200 "ok"
//	GET /status       the signals, the decision so far, the replay's counters and
//	                  the canary phase's state and verdict, as JSON
//	GET /report       the warm report as an HTML page
//	GET /report.json  the warm report as JSON
//	GET /metrics      the replay's, Options.Metrics', the watcher's, the gate's
//	                  and the canary's metric sets and the process's, in
//	                  Prometheus text
func (w *Warmup) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", w.gate)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { io.WriteString(rw, "ok\n") })
	mux.HandleFunc("GET /status", w.serveStatus)
	mux.HandleFunc("GET /report.json", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = readiness.WriteJSON(rw, w.currentReport())
	})
	mux.HandleFunc("GET /report", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = readiness.WriteHTML(rw, w.currentReport())
	})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
		sets := append([]*metrics.Set{w.cfg.replay.Metrics}, w.cfg.metrics...)
		sets = append(sets, w.cfg.readiness.Metrics, w.cfg.release.Metrics)
		if w.canaryMetrics != nil {
			sets = append(sets, w.canaryMetrics)
		}
		for _, s := range sets {
			s.WritePrometheus(rw)
		}
		metrics.WriteProcessMetrics(rw)
	})
	return mux
}

// statusSignal is one signal in /status.
type statusSignal struct {
	Name    string  `json:"name"`
	Present bool    `json:"present"`
	Flat    bool    `json:"flat"`
	Value   float64 `json:"value"` // -1 for NaN, which JSON cannot hold
	Why     string  `json:"why"`
}

func (w *Warmup) serveStatus(rw http.ResponseWriter, _ *http.Request) {
	ws := w.watcher.Status()
	var sigs []statusSignal
	for _, s := range ws.Signals {
		v := s.Value
		if v != v {
			v = -1
		}
		sigs = append(sigs, statusSignal{s.Signal.String(), s.Present, s.Flat, v, s.Why})
	}
	status := map[string]any{
		"elapsed_seconds":  ws.Elapsed.Seconds(),
		"ready":            w.gate.Ready(),
		"flat_for_seconds": ws.FlatFor.Seconds(),
		"signals":          sigs,
		"decision":         ws.Decision,
		"replay":           w.replay.Stats(),
		"scrapes":          ws.Scrapes,
		"scrape_errors":    ws.ScrapeErrors,
	}
	w.mu.Lock()
	if w.result != nil {
		status["decision"] = w.result.Decision // the canary's may have changed the watcher's
	}
	w.mu.Unlock()
	if w.canary != nil {
		status["canary"] = w.canary.Status()
	}
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(status)
}
