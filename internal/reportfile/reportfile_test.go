package reportfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteBothFiles: the JSON and the HTML file are written whole into a
// directory made for them, and their paths are returned JSON first.
func TestWriteBothFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	paths, err := Write(dir, "run-report", 42,
		func(w io.Writer, n int) error { _, err := fmt.Fprintf(w, `{"n":%d}`, n); return err },
		func(w io.Writer, n int) error { _, err := fmt.Fprintf(w, "<p>%d</p>", n); return err })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "run-report.json"), filepath.Join(dir, "run-report.html")}
	for i, body := range []string{`{"n":42}`, "<p>42</p>"} {
		if paths[i] != want[i] {
			t.Fatalf("paths = %q, want %q", paths, want)
		}
		got, err := os.ReadFile(paths[i])
		if err != nil || string(got) != body {
			t.Fatalf("%s = %q, %v; want %q", paths[i], got, err, body)
		}
	}
}

// TestWriteNamesTheFileThatFailed: a writer's error is returned with the
// path of its file, and no paths.
func TestWriteNamesTheFileThatFailed(t *testing.T) {
	dir := t.TempDir()
	ok := func(w io.Writer, _ string) error { _, err := io.WriteString(w, "{}"); return err }
	bad := func(io.Writer, string) error { return errors.New("template failed") }
	paths, err := Write(dir, "r", "x", ok, bad)
	if err == nil || paths != nil || !strings.Contains(err.Error(), filepath.Join(dir, "r.html")) || !strings.Contains(err.Error(), "template failed") {
		t.Fatalf("Write = %q, %v; want no paths and an error naming r.html", paths, err)
	}
	if _, err := Write(filepath.Join(dir, "r.json", "sub"), "r", "x", ok, ok); err == nil {
		t.Fatal("a directory under a file was made")
	}
}
