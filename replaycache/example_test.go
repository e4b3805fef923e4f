package replaycache_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
	"github.com/preheatdev/preheat/stream/dirlog"
)

func ExampleCache() {
	dir, _ := os.MkdirTemp("", "replaycache")
	defer os.RemoveAll(dir)

	// A tap would put these: one session of two queries.
	p, _ := dirlog.NewProducer(dir, nil)
	evs := opSession(time.Now().Truncate(time.Microsecond), "/sync?client=web", "tasks.list", "user.me")
	data, _ := session.AppendBatch(nil, evs)
	p.Put(context.Background(), evs[0].Session.String(), data)
	p.Close(context.Background())

	window := 15 * time.Minute
	cons, _ := dirlog.NewConsumer(dir, stream.Start{Time: time.Now().Add(-window), StopAtEnd: true}, nil)
	defer cons.Close()
	// A kind counts for coverage once this many sessions hold it (default
	// 3); this log holds one session.
	c := replaycache.New(cons, &replaycache.Options{Window: window, MinKindSessions: 1})
	if err := c.Run(context.Background()); err != nil { // returns at the end of the log
		fmt.Println(err)
		return
	}

	for _, ref := range c.Select(replaycache.SelectRequest{Mode: replaycache.Coverage, Covered: []string{"user.me"}}) {
		v, _ := c.Get(ref.ID)
		fmt.Println(v.Route, v.Events, "events, complete:", v.Complete, "adds", ref.NewKinds)
		fmt.Println(len(v.Batches), "batch, kinds", v.Kinds)
	}
	// Output:
	// /sync?client=web 6 events, complete: true adds [tasks.list]
	// 1 batch, kinds [{tasks.list 1} {user.me 1}]
}
