// Package wsbench measures websocket proxies on one machine: an echo server
// to stand behind them, a load generator that drives many connections with
// realistic sync-protocol JSON (package corpus) and measures messages per
// second and round trip times, and an idle mode that holds connections open
// so a proxy's memory per connection can be read.
//
// It owns only the traffic and its figures. Starting the proxies, reading
// their CPU and memory, and comparing targets are the job of its caller
// (bench/tap.sh drives the command in cmd/wsbench). Every target must be a
// loopback address: it is a benchmark for one machine, not a load tool to
// point at other people's servers.
package wsbench
