package streamurl_test

import (
	"context"
	"strings"
	"testing"

	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/streamurl"
)

func TestParse(t *testing.T) {
	f := func(raw string, want streamurl.URL, wantErr string) {
		t.Helper()
		got, err := streamurl.Parse(raw)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("Parse(%q) error = %v, want it to mention %q", raw, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	f("file:///var/lib/preheat", streamurl.URL{Scheme: "file", Path: "/var/lib/preheat"}, "")
	f("file:///var/lib/preheat/../x/", streamurl.URL{Scheme: "file", Path: "/var/lib/x"}, "")
	f("file://localhost/tmp/s", streamurl.URL{Scheme: "file", Path: "/tmp/s"}, "")
	f("kinesis://sessions", streamurl.URL{Scheme: "kinesis", Name: "sessions"}, "")
	f("kinesis://arn:aws:kinesis:us-east-1:123456789012:stream/sessions", streamurl.URL{Scheme: "kinesis", Name: "arn:aws:kinesis:us-east-1:123456789012:stream/sessions"}, "")
	f("file://host/tmp/s", streamurl.URL{}, "local directory")
	f("file://", streamurl.URL{}, "no directory")
	f("kinesis://", streamurl.URL{}, "want kinesis://STREAM")
	f("kinesis:sessions", streamurl.URL{}, "want kinesis://STREAM")
	f("/var/lib/preheat", streamurl.URL{}, "no scheme")
	f("s3://bucket", streamurl.URL{}, `unknown scheme "s3"`)
}

// TestOpenFileURL puts a record through a producer and a consumer opened
// by the same file URL.
func TestOpenFileURL(t *testing.T) {
	ctx := t.Context()
	raw := "file://" + t.TempDir()
	p, err := streamurl.OpenProducer(ctx, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(ctx, "key", []byte("batch")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := streamurl.OpenConsumer(ctx, raw, stream.Start{StopAtEnd: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec, err := c.Next(ctx)
	if err != nil || rec.Key != "key" || string(rec.Data) != "batch" {
		t.Fatalf("Next = %+v, %v; want the record put", rec, err)
	}
}

func TestOpenRefusesABadURL(t *testing.T) {
	ctx := context.Background()
	if _, err := streamurl.OpenConsumer(ctx, "s3://bucket", stream.Start{}, nil); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Errorf("OpenConsumer(s3://bucket): %v", err)
	}
	if _, err := streamurl.OpenProducer(ctx, "/no/scheme", nil); err == nil || !strings.Contains(err.Error(), "no scheme") {
		t.Errorf("OpenProducer(/no/scheme): %v", err)
	}
}
