package canary_test

import (
	"context"
	"fmt"
	"log"

	"github.com/preheatdev/preheat/canary"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
)

// A canary of a warm pod against the version in service, from a replay
// cache's sessions, at the defaults: at most 50 msg/s to each for a
// minute.
func Example() {
	cache, err := replaycache.NewClient("http://replay-cache:8090", nil)
	if err != nil {
		log.Fatal(err)
	}
	src := replayer.NewCacheSource(cache, nil)
	c, err := canary.New("ws://127.0.0.1:8080/sync", "ws://sync-server:8080/sync", &canary.Options{
		Replay: &replayer.Options{Correlate: "id"},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Run(context.Background(), src)
	if err != nil {
		log.Fatal(err)
	}
	// "regression: candidate is 14% slower at p99 on tasks.search, 99% CI +9% to +19%"
	fmt.Printf("%s: %s\n", res.Outcome, res.Finding)
}
