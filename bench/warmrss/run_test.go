package main

import (
	"strings"
	"testing"
	"time"
)

func TestSpecVary(t *testing.T) {
	base := spec{Sessions: 1000, Queries: 20, Concurrency: 16, Rate: 200, Duration: 30 * time.Second}
	f := func(v string, want spec, wantErr string) {
		t.Helper()
		got, err := base.vary(v)
		switch {
		case wantErr != "":
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("vary(%q): error %v, want one containing %q", v, err, wantErr)
			}
		case err != nil:
			t.Errorf("vary(%q): %v", v, err)
		case got != want:
			t.Errorf("vary(%q) = %+v, want %+v", v, got, want)
		}
	}
	with := func(change func(*spec)) spec { s := base; change(&s); return s }
	f("concurrency=64", with(func(s *spec) { s.Concurrency = 64 }), "")
	f("queries=40, pad=150000,sessions=60", with(func(s *spec) { s.Queries, s.Pad, s.Sessions = 40, 150000, 60 }), "")
	f("rate=1000,duration=3m", with(func(s *spec) { s.Rate, s.Duration = 1000, 3*time.Minute }), "")
	f("threads=4", spec{}, `unknown key "threads"`)
	f("concurrency", spec{}, "want KEY=VALUE")
	f("concurrency=many", spec{}, "invalid syntax")
	f("concurrency=0", spec{}, "must be positive")
	f("pad=-1", spec{}, "must not be negative")
}

func TestMedian(t *testing.T) {
	f := func(v []int64, want int64) {
		t.Helper()
		if got := median(v); got != want {
			t.Errorf("median(%v) = %d, want %d", v, got, want)
		}
	}
	f(nil, 0)
	f([]int64{5}, 5)
	f([]int64{9, 1, 5}, 5)
	f([]int64{4, 1, 3, 2}, 2)
}
