package dirlog_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/preheatdev/preheat/stream/dirlog"
)

// TestProducerKeepsLogPrivate checks that a new log's directories and files
// (metadata, writer lock, segments) are readable by their owner only:
// captured sessions hold what clients sent.
func TestProducerKeepsLogPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "log") // created by the producer, parents too
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{Partitions: 2, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := p.Put(context.Background(), string(rune('a'+i%4)), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(filepath.Dir(dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group or others", path, perm)
		}
		if !d.IsDir() {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 { // dirlog.json, writer.lock, a segment a partition at least
		t.Fatalf("checked %d files", files)
	}
}
