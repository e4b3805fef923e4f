package nodetool

import (
	"fmt"
	"strings"
	"testing"
)

var tool = Tool{Name: "sometool", DirEnv: "PREHEAT_TEST_SOMETOOL_DIR", Packages: []string{"left-pad"}}

func TestDirOverride(t *testing.T) {
	t.Setenv(tool.DirEnv, "/nonexistent/sometool")
	if dir, err := tool.Dir(); err != nil || dir != "/nonexistent/sometool" {
		t.Fatalf("Dir = %q, %v", dir, err)
	}
	t.Setenv(tool.DirEnv, "")
	if dir, err := tool.Dir(); err != nil || !strings.HasSuffix(dir, "/tools/sometool") {
		t.Fatalf("Dir = %q, %v; want tools/sometool under the module", dir, err)
	}
}

// stopTB records Skipf and Fatalf and stops the caller by panicking, in
// place of the real runtime.Goexit.
type stopTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (s *stopTB) Helper() {}
func (s *stopTB) Skipf(format string, args ...any) {
	s.skipped = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (s *stopTB) Fatalf(format string, args ...any) {
	s.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func TestRequireSkipsWhenNotInstalledUnlessCI(t *testing.T) {
	t.Setenv(tool.DirEnv, t.TempDir())
	run := func(ci string) *stopTB {
		t.Setenv("CI", ci)
		tb := &stopTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(stopped); !ok {
						panic(r)
					}
				}
			}()
			tool.Require(tb)
		}()
		return tb
	}
	if tb := run(""); !strings.Contains(tb.skipped, "npm ci --prefix tools/sometool") || tb.failed != "" {
		t.Errorf("outside CI: skipped %q, failed %q", tb.skipped, tb.failed)
	}
	if tb := run("true"); tb.failed == "" || tb.skipped != "" {
		t.Errorf("in CI: skipped %q, failed %q", tb.skipped, tb.failed)
	}
}
