package kinesalite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestStart(t *testing.T) {
	s := Start(t)
	s.CreateStream(t, "s", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := s.Client(t).ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(out.Shards))
	}
}

func TestToolsDirOverride(t *testing.T) {
	t.Setenv(DirEnv, "/nonexistent/kinesalite")
	dir, err := toolsDir()
	if err != nil || dir != "/nonexistent/kinesalite" {
		t.Fatalf("toolsDir = %q, %v", dir, err)
	}
}

// stopTB records Skipf and Fatalf and stops Start by panicking, in place of
// the real runtime.Goexit.
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

func TestStartWithoutKinesalite(t *testing.T) {
	t.Setenv(DirEnv, t.TempDir())
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
			Start(tb)
		}()
		return tb
	}
	if tb := run(""); !strings.Contains(tb.skipped, "npm ci --prefix tools/kinesalite") || tb.failed != "" {
		t.Errorf("outside CI: skipped %q, failed %q", tb.skipped, tb.failed)
	}
	if tb := run("true"); tb.failed == "" || tb.skipped != "" {
		t.Errorf("in CI: skipped %q, failed %q", tb.skipped, tb.failed)
	}
}
