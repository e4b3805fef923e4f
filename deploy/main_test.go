// Package deploy_test checks the deployment artifacts under deploy/ and the
// Dockerfile against the code they deploy: every kustomize overlay rendered
// and decoded strictly into Kubernetes API types, every preheat container's
// arguments parsed by preheat itself, ports, probes and Secrets cross-checked,
// the alert rules and dashboard queries checked against the metrics the
// components export and evaluated by a real Prometheus scraping a running
// tap, cache, warmer and load test, and the image built and run.
//
// It is a module of its own (deploy/go.mod) so that kustomize and the
// Kubernetes API types stay out of preheat's module graph; run it with
// `cd deploy && go test ./...` (make test does).
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// repoRoot is the preheat repository, the parent of this module.
const repoRoot = ".."

// needTool returns the path of an external program a test needs. Outside CI
// a missing one skips the test with the reason; under CI (CI=true) it fails,
// since .ci/run installs every one.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found; .ci/run installs it (%s)", name, install)
	}
	t.Skipf("%s not found (%s); skipped outside CI", name, install)
	return ""
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
	buildDir  string
)

// preheatBinary builds cmd/preheat from this working tree once per test
// binary and returns its path. PREHEAT_BINARY names a binary to test
// instead, such as the one in a built image.
func preheatBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PREHEAT_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "preheat-deploy-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "preheat")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/preheat")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/preheat: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// readRepoFile reads a file of the repository by its slash path.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
