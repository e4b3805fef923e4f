// Package streamurl opens the stream a URL names, the way every preheat
// command names its stream: file:///DIR is a directory log (package
// stream/dirlog) and kinesis://STREAM or kinesis://ARN an Amazon Kinesis
// data stream (package stream/kinesis), reached through the AWS default
// configuration chain.
//
// A URL enters as a string (Parse); a stream.Consumer or stream.Producer
// of the named backend leaves (OpenConsumer, OpenProducer). Closing them is
// the caller's.
package streamurl

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

// URL is a parsed stream URL.
type URL struct {
	// Scheme is "file" or "kinesis".
	Scheme string
	// Path is the directory of a file URL, cleaned.
	Path string
	// Name is the stream name or ARN of a kinesis URL.
	Name string
}

// Parse parses a stream URL: file:///DIR (file://localhost/DIR too) or
// kinesis://STREAM or kinesis://ARN.
func Parse(raw string) (URL, error) {
	// A stream ARN holds colons url.Parse would take for a port.
	if name, ok := strings.CutPrefix(raw, "kinesis://"); ok {
		if name == "" || strings.ContainsAny(name, "?# ") {
			return URL{}, fmt.Errorf("parse stream URL %q: want kinesis://STREAM or kinesis://ARN", raw)
		}
		return URL{Scheme: "kinesis", Name: name}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("parse stream URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return URL{}, fmt.Errorf("parse stream URL %q: a file URL names a local directory: file:///path", raw)
		}
		if u.Path == "" {
			return URL{}, fmt.Errorf("parse stream URL %q: no directory", raw)
		}
		return URL{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case "kinesis":
		return URL{}, fmt.Errorf("parse stream URL %q: want kinesis://STREAM or kinesis://ARN", raw)
	case "":
		return URL{}, fmt.Errorf("parse stream URL %q: no scheme: use file:///path or kinesis://STREAM", raw)
	}
	return URL{}, fmt.Errorf("parse stream URL %q: unknown scheme %q: use file:///path or kinesis://STREAM", raw, u.Scheme)
}

// ConsumerOptions configure OpenConsumer. The zero value is usable.
type ConsumerOptions struct {
	// Logger is the consumer's. Default the backend's: slog.Default().
	Logger *slog.Logger
	// Metrics receives the consumer's metrics. Default the backend's: a
	// new set.
	Metrics *metrics.Set
}

// OpenConsumer opens a consumer of the stream raw names, reading from
// start. o may be nil.
func OpenConsumer(ctx context.Context, raw string, start stream.Start, o *ConsumerOptions) (stream.Consumer, error) {
	su, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if o == nil {
		o = &ConsumerOptions{}
	}
	switch su.Scheme {
	case "file":
		return dirlog.NewConsumer(su.Path, start, &dirlog.ConsumerOptions{Logger: o.Logger, Metrics: o.Metrics})
	default:
		client, err := kinesis.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		return kinesis.NewConsumer(client, su.Name, start, &kinesis.ConsumerOptions{Logger: o.Logger, Metrics: o.Metrics})
	}
}

// ProducerOptions configure OpenProducer. The zero value is usable.
type ProducerOptions struct {
	// Logger is the producer's. Default the backend's: slog.Default().
	Logger *slog.Logger
	// Metrics receives the producer's metrics. Default the backend's: a
	// new set.
	Metrics *metrics.Set
	// BufferBytes and DeliveryTimeout are those of a Kinesis producer
	// (kinesis.ProducerOptions); a directory log has neither. Default 0:
	// the Kinesis producer's defaults.
	BufferBytes     int64
	DeliveryTimeout time.Duration
}

// OpenProducer opens a producer for the stream raw names. o may be nil.
func OpenProducer(ctx context.Context, raw string, o *ProducerOptions) (stream.Producer, error) {
	su, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if o == nil {
		o = &ProducerOptions{}
	}
	switch su.Scheme {
	case "file":
		return dirlog.NewProducer(su.Path, &dirlog.ProducerOptions{Logger: o.Logger, Metrics: o.Metrics})
	default:
		client, err := kinesis.NewClient(ctx)
		if err != nil {
			return nil, err
		}
		return kinesis.NewProducer(client, su.Name, &kinesis.ProducerOptions{Logger: o.Logger, Metrics: o.Metrics,
			BufferBytes: o.BufferBytes, DeliveryTimeout: o.DeliveryTimeout})
	}
}
