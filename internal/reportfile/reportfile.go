// Package reportfile writes a report as the files a command leaves behind:
// the same result as JSON, for scripts, and as one HTML page, for people.
// It owns the files' names and their creation, not the formats (the warm
// report's are package readiness's, the load test's package loadtest's).
package reportfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes r into dir (created if missing, mode 0755) as base.json
// with writeJSON and base.html with writeHTML, and returns the two paths in
// that order. A file that cannot be written whole is an error naming it;
// files already written stay.
func Write[R any](dir, base string, r R, writeJSON, writeHTML func(io.Writer, R) error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	paths := []string{filepath.Join(dir, base+".json"), filepath.Join(dir, base+".html")}
	for i, write := range []func(io.Writer, R) error{writeJSON, writeHTML} {
		f, err := os.Create(paths[i])
		if err == nil {
			err = errors.Join(write(f, r), f.Close())
		}
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", paths[i], err)
		}
	}
	return paths, nil
}
