package loadtest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/loadtest"
)

func TestWriteReportWritesJSONAndHTML(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	res := summaryResults()[0]
	paths, err := loadtest.WriteReport(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "loadtest-report.json"), filepath.Join(dir, "loadtest-report.html")}; len(paths) != 2 || paths[0] != want[0] || paths[1] != want[1] {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	js, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	var back loadtest.Result
	if err := json.Unmarshal(js, &back); err != nil || back.Aborted != res.Aborted || len(back.Targets) != 2 {
		t.Errorf("JSON report does not hold the result: %v", err)
	}
	html, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(html), "<!DOCTYPE html>") || !strings.Contains(string(html), "<title>preheat loadtest: ws://staging:8080</title>") {
		t.Errorf("HTML report is not the result's page:\n%.300s", html)
	}
}

func TestWriteReportIntoAFileFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadtest.WriteReport(file, summaryResults()[1]); err == nil || !strings.Contains(err.Error(), "report directory") {
		t.Errorf("WriteReport into a file: %v, want a report directory error", err)
	}
}
