package warmup_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/preheatdev/preheat/readiness"
	"github.com/preheatdev/preheat/replaycache"
	"github.com/preheatdev/preheat/replayer"
	"github.com/preheatdev/preheat/warmup"
)

// A warm-up of a pod from a replay cache, with a readiness probe on :8099.
func Example() {
	ctx := context.Background()
	cache, err := replaycache.NewClient("http://replay-cache:8090", nil)
	if err != nil {
		log.Fatal(err)
	}
	src := replayer.NewCacheSource(cache, &replayer.CacheSourceOptions{
		Request: warmup.Select(replaycache.Coverage, replaycache.Filter{}),
	})
	w, err := warmup.New("ws://127.0.0.1:8080", "http://127.0.0.1:8080/metrics", src, &warmup.Options{
		Replay:  &replayer.Options{Rate: 400, Correlate: "id"},
		Release: &readiness.GateOptions{File: "/run/preheat/ready.json"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	// The pod's readiness probe asks GET /readyz.
	probe := &http.Server{Addr: ":8099", Handler: w.Handler()}
	served := make(chan error, 1)
	go func() { served <- probe.ListenAndServe() }()
	defer func() {
		probe.Shutdown(ctx)
		<-served
	}()
	res, err := w.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Decision.Outcome, res.Decision.Reason)
}
