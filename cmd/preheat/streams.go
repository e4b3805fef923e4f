package main

import (
	"context"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/streamurl"
)

// openConsumer opens a consumer of the stream at raw, registering its
// metrics in set.
func openConsumer(ctx context.Context, raw string, start stream.Start, log *slog.Logger, set *metrics.Set) (stream.Consumer, error) {
	return streamurl.OpenConsumer(ctx, raw, start, &streamurl.ConsumerOptions{Logger: log, Metrics: set})
}
