package kinesis

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/stream"
)

// TestNewClientFromEnv configures a client only through the environment
// variables AWS users set, pointed at kinesalite, and round-trips a record.
func TestNewClientFromEnv(t *testing.T) {
	srv := kinesalite.Start(t)
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.Endpoint())
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateStream(ctx, &awskinesis.CreateStreamInput{
		StreamName: aws.String("env"), ShardCount: aws.Int32(1),
	}); err != nil {
		t.Fatalf("create stream through the env-configured client: %v", err)
	}
	kinesalite.WaitActive(t, cl, "env")

	p := newProducer(t, cl, "env", testProducerOptions(t))
	if err := p.Put(ctx, "k", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, cl, "env", stream.Start{StopAtEnd: true}, testConsumerOptions(t))
	got := readAll(t, c)
	if len(got) != 1 || string(got[0].Data) != "hello" || got[0].Key != "k" {
		t.Fatalf("read %+v", got)
	}
}

func TestNewClientNeedsRegion(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	if _, err := NewClient(context.Background()); err == nil {
		t.Fatal("NewClient without a region succeeded")
	}
}
