package demo

import (
	"log/slog"
	"testing"

	"github.com/preheatdev/preheat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var discard = slog.New(slog.DiscardHandler)
