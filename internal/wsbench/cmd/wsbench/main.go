// Command wsbench drives websocket proxy benchmarks on loopback.
//
//	wsbench echo --listen 127.0.0.1:18000
//	wsbench load --url ws://127.0.0.1:18080/sync --conns 64 --duration 10s            # saturation
//	wsbench load --url ws://127.0.0.1:18080/sync --conns 64 --rate 2000 --duration 10s # fixed rate
//	wsbench idle --url ws://127.0.0.1:18080/sync --conns 2000 --hold 20s
//
// load and idle print one JSON object on stdout and a human line on stderr;
// idle also prints "holding N connections" on stderr once they are all
// open. Every address must be on loopback.
//
//	wsbench report < records.jsonl
//
// turns bench/tap.sh's records into markdown tables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/preheatdev/preheat/internal/wsbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

const usage = `usage: wsbench echo|load|idle [flags]   (wsbench MODE -h for the flags)
       wsbench report < records.jsonl`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	if args[0] == "report" {
		return report(os.Stdin, os.Stdout)
	}
	fs := flag.NewFlagSet("wsbench "+args[0], flag.ContinueOnError)
	var (
		listen      = fs.String("listen", "127.0.0.1:18000", "echo: loopback address to listen on")
		target      = fs.String("url", "", "load, idle: ws:// URL of the target on loopback; required")
		conns       = fs.Int("conns", 64, "load, idle: connections")
		rate        = fs.Float64("rate", 0, "load: aggregate messages per second (open loop); 0 = closed loop, as fast as echoes return")
		duration    = fs.Duration("duration", 10*time.Second, "load: measured duration, after --warmup")
		warmup      = fs.Duration("warmup", time.Second, "load: unmeasured time before --duration")
		hold        = fs.Duration("hold", 10*time.Second, "idle: how long to hold the connections open")
		seed        = fs.Uint64("seed", 1, "load, idle: corpus seed")
		compression = fs.Bool("compression", false, "negotiate permessage-deflate (echo: accept it; load, idle: offer it)")
		maxDuration = fs.Duration("max-duration", 5*time.Minute, "hard limit on the whole run")
		maxConns    = fs.Int("max-conns", 10000, "hard limit on --conns")
		verbose     = fs.Bool("v", false, "debug logs")
	)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *conns <= 0 || *conns > *maxConns {
		return fmt.Errorf("--conns %d: must be 1 to --max-conns (%d)", *conns, *maxConns)
	}
	if *maxDuration <= 0 {
		return errors.New("--max-duration must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *maxDuration)
	defer cancel()

	switch args[0] {
	case "echo":
		return echo(ctx, log, *listen, *compression)
	case "load":
		if *target == "" {
			return errors.New("--url is required")
		}
		if *warmup+*duration+30*time.Second > *maxDuration {
			return fmt.Errorf("--warmup %v + --duration %v (+30s to dial and drain) exceed --max-duration %v", *warmup, *duration, *maxDuration)
		}
		if *rate < 0 {
			return errors.New("--rate must not be negative")
		}
		w := *warmup
		if w == 0 {
			w = -1 // none
		}
		r, err := wsbench.Load(ctx, *target, &wsbench.LoadOptions{
			Conns: *conns, Rate: *rate, Duration: *duration, Warmup: w, Seed: *seed, Compression: *compression,
		})
		if r != nil {
			fmt.Fprintln(os.Stderr, r)
			json.NewEncoder(os.Stdout).Encode(r)
		}
		return err
	case "idle":
		if *target == "" {
			return errors.New("--url is required")
		}
		if *hold+60*time.Second > *maxDuration {
			return fmt.Errorf("--hold %v (+60s to open and close) exceeds --max-duration %v", *hold, *maxDuration)
		}
		r, err := wsbench.Idle(ctx, *target, &wsbench.IdleOptions{
			Conns: *conns, Hold: *hold, Seed: *seed, Compression: *compression,
			Ready: func(n int, took time.Duration) {
				fmt.Fprintf(os.Stderr, "holding %d connections (opened in %v)\n", n, took.Round(time.Millisecond))
			},
		})
		if r != nil {
			json.NewEncoder(os.Stdout).Encode(r)
		}
		return err
	default:
		return errors.New(usage)
	}
}

// echo serves the echo handler on listen until ctx is done.
func echo(ctx context.Context, log *slog.Logger, listen string, compression bool) error {
	if err := wsbench.CheckLoopbackAddr(ctx, listen); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           wsbench.NewEchoHandler(&wsbench.EchoOptions{Compression: compression, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info("echo listening", "addr", ln.Addr().String(), "compression", compression)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx) // upgraded connections are not waited for; they end with the process
	<-errc
	return nil
}
