package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/coder/websocket"

	"github.com/preheatdev/preheat/internal/kinesalite"
	"github.com/preheatdev/preheat/internal/wsecho"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
)

// startCommand runs a long-lived preheat command in-process until the test
// ends, and returns the address its log line names.
func startCommand(t *testing.T, addrLog string, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, stderr) }()
	addr = waitFor(t, stderr, `msg="`+addrLog+`" addr=(\S+)`)
	stopped := false
	code := 0
	stop = func() int {
		if stopped {
			return code
		}
		stopped = true
		cancel()
		select {
		case code = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop:\n%s", args[0], stderr.String())
		}
		return code
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out := stderr.String()
			t.Logf("%s log (last 4000 bytes):\n%s", args[0], out[max(0, len(out)-4000):])
		}
	})
	return addr, stop
}

// talkSession runs one client session through the tap: messages of
// distinct kinds, each echoed back.
func talkSession(t *testing.T, addr string, i int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/sync", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	var sent []string
	for j := range 5 {
		m := fmt.Sprintf(`{"type":"query","op":"op%d","id":%d,"client":%d}`, (i+j)%7, j, i)
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != m {
			t.Fatalf("echo: %q %v", got, err)
		}
		sent = append(sent, m)
	}
	c.Close(websocket.StatusNormalClosure, "")
	return sent
}

// TestEndToEndKinesis captures sessions through 'preheat tap' into a
// Kinesis stream (kinesalite) whose shard splits midway, serves them with
// 'preheat cache', and reads them back with the cache's client: every
// session whole, from its connect, once, equal to what its client sent and
// got back. Then the cache is killed and restarted: it serves them all
// again from the stream.
func TestEndToEndKinesis(t *testing.T) {
	ks := kinesalite.Start(t)
	ks.CreateStream(t, "e2e", 1)
	home := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", ks.Endpoint())
	t.Setenv("AWS_REGION", kinesalite.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))

	up := wsecho.Start(t, nil)
	tapAddr, stopTap := startCommand(t, "tap listening", "tap", "--listen", "127.0.0.1:0", "--admin-listen", "",
		"--upstream", up.URL, "--stream", "kinesis://e2e", "--shutdown-timeout", "2s")
	cacheArgs := []string{"cache", "--listen", "127.0.0.1:0", "--stream", "kinesis://e2e", "--token", "tok", "--window", "10m"}
	cacheAddr, stopCache := startCommand(t, "cache listening", cacheArgs...)

	want := map[string][]string{} // client messages, keyed by their first
	const before, after = 8, 8
	for i := range before {
		sent := talkSession(t, tapAddr, i)
		want[sent[0]] = sent
	}
	// Split the only shard while more sessions are captured.
	kc := ks.Client(t)
	if _, err := kc.SplitShard(context.Background(), &awskinesis.SplitShardInput{
		StreamName:         aws.String("e2e"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	}); err != nil {
		t.Fatalf("split shard: %v", err)
	}
	for i := before; i < before+after; i++ {
		sent := talkSession(t, tapAddr, i)
		want[sent[0]] = sent
	}
	if code := stopTap(); code != 0 {
		t.Fatalf("tap exited %d", code)
	}

	check := func(addr string) {
		t.Helper()
		client, err := replaycache.NewClient("http://"+addr, &replaycache.ClientOptions{Token: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var last replaycache.Status
		var lastErr error
		for {
			st, err := client.Status(ctx)
			if err == nil && st.Sessions == len(want) && st.Live == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cache holds %+v, %v; want %d complete sessions", last, lastErr, len(want))
			}
			last, lastErr = st, err
			time.Sleep(100 * time.Millisecond)
		}
		r, err := client.Select(ctx, replaycache.SelectRequest{Filter: replaycache.Filter{Limit: 100}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		seen := map[session.ID]bool{}
		for {
			s, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if seen[s.ID] {
				t.Fatalf("session %s served twice in one request", s.ID)
			}
			seen[s.ID] = true
			if !s.Complete || s.Truncated || s.Events[0].Kind != session.KindOpen {
				t.Fatalf("session %s: complete %v truncated %v first %v", s.ID, s.Complete, s.Truncated, s.Events[0].Kind)
			}
			var client, server []string
			for _, e := range s.Events {
				if e.Kind == session.KindFrame {
					if e.Direction == session.ClientToServer {
						client = append(client, string(e.Payload))
					} else {
						server = append(server, string(e.Payload))
					}
				}
			}
			w := want[client[0]]
			if !slices.Equal(client, w) || !slices.Equal(server, w) {
				t.Fatalf("session %s: client %q server %q, want %q", s.ID, client, server, w)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("served %d sessions, want %d", len(seen), len(want))
		}
	}
	check(cacheAddr)
	if code := stopCache(); code != 0 {
		t.Fatalf("cache exited %d", code)
	}
	restarted, _ := startCommand(t, "cache listening", cacheArgs...)
	check(restarted)
}
