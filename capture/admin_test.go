package capture_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/capture"
)

// TestAdminBoundsRoutePatterns checks that the admin API keeps at most
// MaxRoutesOff patterns of at most MaxRouteBytes: every new session is
// matched against each, so without a bound an admin client could slow every
// admission. Requests past the bounds get 400 and are counted.
func TestAdminBoundsRoutePatterns(t *testing.T) {
	rec, _ := recorderOnly(t, nil)
	srv := httptest.NewServer(rec.AdminHandler(&capture.AdminOptions{MaxRoutesOff: 3, MaxRouteBytes: 64}))
	defer srv.Close()
	f := func(state, pattern string, want int) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/capture/routes/"+state+"?route="+url.QueryEscape(pattern), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("routes/%s %.20q: %d, want %d", state, pattern, resp.StatusCode, want)
		}
	}
	for i := range 3 {
		f("off", fmt.Sprintf("/r%d*", i), http.StatusOK)
	}
	f("off", "/r3*", http.StatusBadRequest) // a fourth
	f("off", "/r1*", http.StatusOK)         // already off: no new pattern
	f("on", "/r0*", http.StatusOK)          // room again
	f("off", "/r3*", http.StatusOK)
	f("off", "/r4*", http.StatusBadRequest)
	f("off", "/"+strings.Repeat("a", 64), http.StatusBadRequest)
	f("on", "/"+strings.Repeat("a", 64), http.StatusBadRequest)
	f("off", "no-slash", http.StatusBadRequest)

	if n := len(rec.Status().RoutesOff); n != 3 {
		t.Errorf("%d patterns off, want 3", n)
	}
	for reason, want := range map[string]float64{"too_many_routes": 2, "route_too_long": 2, "bad_route": 1} {
		if got := counter(t, rec, `preheat_tap_admin_requests_refused_total{reason="`+reason+`"}`); got != want {
			t.Errorf("refused %s: %v, want %v", reason, got, want)
		}
	}
}
