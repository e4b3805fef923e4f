package demo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestStartCaptureFailingStopsWhatItStarted: a tap that cannot start (its
// upstream is not a websocket URL) leaves nothing running: the stream
// writer and the recorder it started before the failure are closed, or the
// leak check of TestMain finds the recorder's goroutines.
func TestStartCaptureFailingStopsWhatItStarted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stream")
	if _, err := startCapture("ftp://upstream", dir, discard, metrics.NewSet()); err == nil {
		t.Fatal("a tap of ftp://upstream started")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the failure came before the stream was opened, so it tests no shutdown: %v", err)
	}
}

// TestStartCacheCloseTwice: the tap's and the cache's close may be called
// twice, as the demo's deferred close follows its own.
func TestStartCacheCloseTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stream")
	tap, err := startCapture("ws://127.0.0.1:1", dir, discard, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	tap.close()
	tap.close()
	c, err := startCache(dir, 0, discard, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	c.close()
	c.close()
	if _, err := startCache(filepath.Join(t.TempDir(), "none"), 0, discard, metrics.NewSet()); err == nil {
		t.Fatal("a cache of a log that does not exist started")
	}
}
