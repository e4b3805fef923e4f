package main

import (
	"strings"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/demo"
)

func TestRequestsSurviveTheNeighbourProcessBoundary(t *testing.T) {
	at := time.Unix(1763800000, 123456789)
	l := &demo.Requests{}
	l.AddErrors(2)
	l.Add(demo.Request{Sent: at.Add(time.Millisecond), Latency: 3 * time.Millisecond, Write: true})
	l.Add(demo.Request{Sent: at, Latency: 1500 * time.Microsecond})
	var b strings.Builder
	writeRequests(&b, l)
	got, err := readRequests(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := l.InOrder()
	rs := got.InOrder()
	if got.Errors() != 2 || len(rs) != len(want) {
		t.Fatalf("read %d requests, %d errors, from:\n%s", len(rs), got.Errors(), b.String())
	}
	for i := range rs {
		if !rs[i].Sent.Equal(want[i].Sent) || rs[i].Latency != want[i].Latency || rs[i].Write != want[i].Write {
			t.Errorf("request %d: %+v, want %+v", i, rs[i], want[i])
		}
	}
	if _, err := readRequests(strings.NewReader("")); err == nil {
		t.Error("an empty file: no error")
	}
	if _, err := readRequests(strings.NewReader("errors 0\n1 2 maybe\n")); err == nil {
		t.Error("a bad line: no error")
	}
}
