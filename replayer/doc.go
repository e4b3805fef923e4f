// Package replayer replays recorded websocket sessions against a target:
// the handshake with the recorded subprotocol and configured headers, then
// the session's client messages in their recorded order, at the recorded
// pace times a factor or as fast as the limits allow.
//
// It owns the client side of a replay: pacing, a global message rate and a
// session concurrency limit, adaptive back-off when the target's latency or
// error rate climbs or (optionally) when the node's CPU is contended, a
// ramp from a start rate, rewrite rules for JSON fields, and safety. Every
// client message gets a verdict, read, mutating or unknown, from the
// session's protocol profile (package protocol: GraphQL over websocket,
// Socket.IO, JSON-RPC, plain JSON; detected per session or fixed by
// Options.Protocol) and the operator's rules (Options.Safety marks writes
// and wins; Options.Allow marks reads). By default only reads and protocol
// control messages are sent; a mutating message is sent only in the
// target's rehearsal form where the operator names one (a dry-run flag or a
// sandbox tenant; see Options.Rehearse). Messages not sent are counted by
// reason and kind.
//
// The recorded order of both directions is kept: a client message recorded
// after the server's k-th message (counting those this replay will cause
// too: greetings, answers, a subscription's results) is sent once the
// replay has received k, within Options.OrderTimeout. The replay answers
// the live server as its protocol requires (a pong to a ping) and never
// replays the recorded client's answers. It always reads what the target
// sends and measures response latency, by the protocol's ids, a
// correlation field or the time to the next server message. A failing
// session is counted and replaced, never fatal; the first failure of each
// reason is logged. A session ends as it was recorded to, with a close
// handshake or, where the client hung up, by hanging up; Stop ends a replay
// the way clients leave, never by dropping the sessions in flight.
//
// Sessions enter through a Source (a replay cache, or a fixed list); what
// leaves is traffic to the target, latency observations (Options.OnResponse)
// for a readiness watcher, counters in Stats and metrics. It does not decide
// when a target is warm (package readiness does) nor where sessions come from.
package replayer
