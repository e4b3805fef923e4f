package capture

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
	// MaxRoutesOff bounds the route patterns switched off through the
	// handler: every new session is matched against each of them, so past
	// it POST /capture/routes/off is refused with 400 until some are
	// switched back on. Default 256.
	MaxRoutesOff int
	// MaxRouteBytes bounds the length of a route pattern in bytes; a
	// longer one is refused with 400. Default 1024.
	MaxRouteBytes int
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
// restarts; a config reload does not undo them. Route patterns are bounded
// in number and length (AdminOptions); requests past the bounds are refused
// with 400 and counted in preheat_tap_admin_requests_refused_total.
func (r *Recorder) AdminHandler(opts *AdminOptions) http.Handler {
	o := AdminOptions{}
	if opts != nil {
		o = *opts
	}
	if o.WriteMetrics == nil {
		o.WriteMetrics = func(w io.Writer) { r.Metrics().WritePrometheus(w) }
	}
	if o.MaxRoutesOff <= 0 {
		o.MaxRoutesOff = 256
	}
	if o.MaxRouteBytes <= 0 {
		o.MaxRouteBytes = 1024
	}
	refused := func(reason string) {
		r.Metrics().GetOrCreateCounter(`preheat_tap_admin_requests_refused_total{reason="` + reason + `"}`).Inc()
	}
	var routesMu sync.Mutex // one route switch at a time, so that the bound holds
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
		pattern := req.URL.Query().Get("route")
		if len(pattern) > o.MaxRouteBytes {
			refused("route_too_long")
			http.Error(w, fmt.Sprintf("route pattern of %d bytes: at most %d", len(pattern), o.MaxRouteBytes), http.StatusBadRequest)
			return
		}
		if !strings.HasPrefix(pattern, "/") { // as SetRouteEnabled says, before the count
			refused("bad_route")
			http.Error(w, fmt.Sprintf("route pattern %q: want a path starting with /", pattern), http.StatusBadRequest)
			return
		}
		routesMu.Lock()
		defer routesMu.Unlock()
		if n, has := r.routesOff(pattern); state == "off" && !has && n >= o.MaxRoutesOff {
			refused("too_many_routes")
			http.Error(w, fmt.Sprintf("%d route patterns are off already, the most this tap keeps: switch some back on first", n), http.StatusBadRequest)
			return
		}
		if err := r.SetRouteEnabled(pattern, state == "on"); err != nil {
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

// routesOff returns how many route patterns are switched off and whether
// pattern is one of them.
func (r *Recorder) routesOff(pattern string) (n int, has bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.off), r.off[pattern]
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
