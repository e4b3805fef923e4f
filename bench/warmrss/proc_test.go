package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	const status = "Name:\tpreheat\nVmPeak:\t 1266420 kB\nVmHWM:\t   61284 kB\nVmRSS:\t   40960 kB\nRssAnon:\t   30000 kB\n"
	m, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if m.HWM != 61284<<10 || m.RSS != 40<<20 {
		t.Errorf("parseStatus = %+v, want HWM %d and RSS %d", m, 61284<<10, 40<<20)
	}
	// A zombie's status has no memory lines.
	if _, err := parseStatus("Name:\tpreheat\nState:\tZ (zombie)\n"); err == nil {
		t.Error("parseStatus of a zombie: no error")
	}
}

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	f := func(stat string, want time.Duration) {
		t.Helper()
		got, err := parseStat(stat)
		if err != nil {
			t.Fatalf("parseStat(%q): %v", stat, err)
		}
		if got != want {
			t.Errorf("parseStat(%q) = %v, want %v", stat, got, want)
		}
	}
	f("4242 (preheat) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 37 0 0 20 0 9 0 100 0 0", 2870*time.Millisecond)
	f("4242 (a) b (c)) R 1 4242 4242 0 -1 4194560 1500 0 0 0 1 2 0 0 20 0 9 0 100 0 0", 30*time.Millisecond)
	if _, err := parseStat("4242 preheat S 1"); err == nil {
		t.Error("parseStat without a command name: no error")
	}
}

func TestReadOwnProcess(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("readMemory = %+v: want 0 < RSS <= HWM", m)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
}

func TestLogAddr(t *testing.T) {
	f := func(line, want string) {
		t.Helper()
		if got := logAddr(line); got != want {
			t.Errorf("logAddr(%q) = %q, want %q", line, got, want)
		}
	}
	f(`time=2026-01-01T00:00:00Z level=INFO msg="cache listening" addr=127.0.0.1:40123 stream=file:///tmp/x`, "127.0.0.1:40123")
	f(`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"warm: serving /readyz","addr":"127.0.0.1:8099"}`, "127.0.0.1:8099")
	f(`{"msg":"warm: starting","target":"ws://127.0.0.1:1/sync"}`, "")
}
