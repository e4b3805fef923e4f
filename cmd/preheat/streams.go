package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
	"github.com/preheatdev/preheat/stream/kinesis"
)

// streamURL is a parsed --stream value.
type streamURL struct {
	scheme string // "file" or "kinesis"
	path   string // the directory, for file
	name   string // the stream name or ARN, for kinesis
}

func parseStreamURL(raw string) (streamURL, error) {
	// A stream ARN holds colons url.Parse would take for a port.
	if name, ok := strings.CutPrefix(raw, "kinesis://"); ok {
		if name == "" || strings.ContainsAny(name, "?# ") {
			return streamURL{}, fmt.Errorf("parse stream URL %q: want kinesis://STREAM or kinesis://ARN", raw)
		}
		return streamURL{scheme: "kinesis", name: name}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return streamURL{}, fmt.Errorf("parse stream URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return streamURL{}, fmt.Errorf("parse stream URL %q: a file URL names a local directory: file:///path", raw)
		}
		if u.Path == "" {
			return streamURL{}, fmt.Errorf("parse stream URL %q: no directory", raw)
		}
		return streamURL{scheme: "file", path: filepath.Clean(u.Path)}, nil
	case "kinesis":
		return streamURL{}, fmt.Errorf("parse stream URL %q: want kinesis://STREAM or kinesis://ARN", raw)
	case "":
		return streamURL{}, fmt.Errorf("parse stream URL %q: no scheme: use file:///path or kinesis://STREAM", raw)
	}
	return streamURL{}, fmt.Errorf("parse stream URL %q: unknown scheme %q: use file:///path or kinesis://STREAM", raw, u.Scheme)
}

// openConsumer opens a consumer of the stream at raw, registering its
// metrics in set.
func openConsumer(ctx context.Context, raw string, start stream.Start, log *slog.Logger, set *metrics.Set) (stream.Consumer, error) {
	su, err := parseStreamURL(raw)
	if err != nil {
		return nil, err
	}
	switch su.scheme {
	case "file":
		return dirlog.NewConsumer(su.path, start, &dirlog.ConsumerOptions{Logger: log, Metrics: set})
	default:
		client, err := kinesis.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		return kinesis.NewConsumer(client, su.name, start, &kinesis.ConsumerOptions{Logger: log, Metrics: set})
	}
}

// producerLimits are the tap's settings for a Kinesis producer; zero
// fields keep the producer's defaults.
type producerLimits struct {
	bufferBytes     int64
	deliveryTimeout time.Duration
}

// openProducer opens a producer for the stream at raw, registering its
// metrics in set. lim may be nil.
func openProducer(ctx context.Context, raw string, log *slog.Logger, set *metrics.Set, lim *producerLimits) (stream.Producer, error) {
	su, err := parseStreamURL(raw)
	if err != nil {
		return nil, err
	}
	switch su.scheme {
	case "file":
		return dirlog.NewProducer(su.path, &dirlog.ProducerOptions{Logger: log, Metrics: set})
	default:
		client, err := kinesis.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		po := &kinesis.ProducerOptions{Logger: log, Metrics: set}
		if lim != nil {
			po.BufferBytes, po.DeliveryTimeout = lim.bufferBytes, lim.deliveryTimeout
		}
		return kinesis.NewProducer(client, su.name, po)
	}
}
