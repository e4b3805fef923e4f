package capture_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
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

// TestAdmin drives the admin API over HTTP.
func TestAdmin(t *testing.T) {
	rec, _ := recorderOnly(t, nil)
	reloads := 0
	srv := httptest.NewServer(rec.AdminHandler(&capture.AdminOptions{Token: "s3cret", Reload: func() error { reloads++; return nil }}))
	defer srv.Close()
	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("GET", "/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("status without a token: %d", code)
	}
	if code, _ := do("GET", "/status", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("status with a wrong token: %d", code)
	}
	if code, _ := do("GET", "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	if code, body := do("POST", "/capture/off", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"enabled": false`) {
		t.Fatalf("capture off: %d %s", code, body)
	}
	if code, body := do("POST", "/capture/routes/off?route=/sync*", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"/sync*"`) {
		t.Fatalf("route off: %d %s", code, body)
	}
	if code, _ := do("POST", "/capture/routes/off?route=nope", "s3cret"); code != http.StatusBadRequest {
		t.Fatalf("bad route: %d", code)
	}
	if code, _ := do("POST", "/reload", "s3cret"); code != http.StatusOK || reloads != 1 {
		t.Fatalf("reload: %d, %d reloads", code, reloads)
	}
	code, body := do("GET", "/status", "s3cret")
	var st capture.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s %v", code, body, err)
	}
	if st.Enabled || !reflect.DeepEqual(st.RoutesOff, []string{"/sync*"}) || st.BudgetBytes == 0 {
		t.Fatalf("status = %+v", st)
	}
	if code, body := do("GET", "/metrics", "s3cret"); code != http.StatusOK || !strings.Contains(body, "preheat_tap_capture_enabled 0") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
}
