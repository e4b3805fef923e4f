package capture

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// AdminOptions configure the admin handler.
type AdminOptions struct {
	// Token, when set, must be presented as "Authorization: Bearer TOKEN"
	// on every request but /healthz. Default none: bind the admin listener
	// to a private address.
	Token string
	// WriteMetrics writes Prometheus text exposition for /metrics; nil
	// serves the recorder's set only.
	WriteMetrics func(w io.Writer)
	// Reload, when set, is called by POST /reload to reload the config.
	Reload func() error
}

// AdminHandler serves the tap's control API, meant for a separate, private
// listener:
//
//	GET  /healthz                      200 while the process runs
//	GET  /metrics                      Prometheus metrics
//	GET  /status                       the recorder's Status as JSON
//	POST /capture/on, /capture/off     switch capture on or off
//	POST /capture/routes/off?route=P   switch capture off for route pattern P
//	POST /capture/routes/on?route=P    and back on
//	POST /reload                       reload the config file
//
// Changes apply to sessions that start afterwards and last until the process
// restarts; a config reload does not undo them.
func (r *Recorder) AdminHandler(opts *AdminOptions) http.Handler {
	o := AdminOptions{}
	if opts != nil {
		o = *opts
	}
	if o.WriteMetrics == nil {
		o.WriteMetrics = func(w io.Writer) { r.Metrics().WritePrometheus(w) }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		o.WriteMetrics(w)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Status()) })
	mux.HandleFunc("POST /capture/{state}", func(w http.ResponseWriter, req *http.Request) {
		switch req.PathValue("state") {
		case "on":
			r.SetEnabled(true)
		case "off":
			r.SetEnabled(false)
		default:
			http.NotFound(w, req)
			return
		}
		writeJSON(w, r.Status())
	})
	mux.HandleFunc("POST /capture/routes/{state}", func(w http.ResponseWriter, req *http.Request) {
		state := req.PathValue("state")
		if state != "on" && state != "off" {
			http.NotFound(w, req)
			return
		}
		if err := r.SetRouteEnabled(req.URL.Query().Get("route"), state == "on"); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, r.Status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, req *http.Request) {
		if o.Reload == nil {
			http.Error(w, "no config file to reload", http.StatusConflict)
			return
		}
		if err := o.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, r.Status())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if o.Token != "" && req.URL.Path != "/healthz" && !bearerOK(req, o.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="preheat"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// bearerOK reports whether req carries "Authorization: Bearer token".
func bearerOK(req *http.Request, token string) bool {
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
