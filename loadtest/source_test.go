package loadtest_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/preheatdev/preheat/loadtest"
)

// TestLoadReadsEverySourceKind: Load reads a corpus file by path and as
// file://, standard input as "-", and a directory log by path and as
// file:// (all of an old log by default, only its recent sessions with a
// Window); a source of another scheme is a *SourceError naming it.
func TestLoadReadsEverySourceKind(t *testing.T) {
	in := mixedCorpus(t)
	want := checkReadCorpus(t, in)
	file := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{file, "file://" + file, "-"} {
		c, err := loadtest.Load(t.Context(), src, &loadtest.SourceOptions{Stdin: bytes.NewReader(in), Logger: quiet})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if len(c.Sessions) != len(want.Sessions) || c.Dropped != want.Dropped {
			t.Fatalf("%s: %d sessions, %d dropped; want %d, %d", src, len(c.Sessions), c.Dropped, len(want.Sessions), want.Dropped)
		}
	}

	dir := t.TempDir()
	const n = 8
	writeOldLog(t, dir, time.Now().Add(-3*time.Hour).Truncate(time.Microsecond), n)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src    string
		window time.Duration
		want   int
	}{{dir, 0, n}, {"file://" + dir, 0, n}, {dir, time.Hour, 0}, {rel, 0, n}} {
		c, err := loadtest.Load(t.Context(), tc.src, &loadtest.SourceOptions{Window: tc.window, Logger: quiet})
		if err != nil {
			t.Fatalf("%s, window %v: %v", tc.src, tc.window, err)
		}
		if len(c.Sessions) != tc.want {
			t.Fatalf("%s, window %v: %d sessions, want %d", tc.src, tc.window, len(c.Sessions), tc.want)
		}
	}

	for _, src := range []string{"s3://bucket/x", "http://[::1"} {
		_, err := loadtest.Load(t.Context(), src, nil)
		var se *loadtest.SourceError
		if !errors.As(err, &se) || se.Source != src {
			t.Fatalf("%s: %v, want a *SourceError naming it", src, err)
		}
	}
	if _, err := loadtest.Load(t.Context(), filepath.Join(t.TempDir(), "missing"), nil); err == nil || errors.As(err, new(*loadtest.SourceError)) {
		t.Fatalf("a missing file: %v, want an error reading it, not a *SourceError", err)
	}
}
