// Package replayer replays recorded websocket sessions against a target:
// the handshake with the recorded subprotocol and configured headers, the
// session's first client message (its connect) first, then its other client
// messages in order, at the recorded pace times a factor or as fast as the
// limits allow.
//
// It owns the client side of a replay: pacing, a global message rate and a
// session concurrency limit, adaptive back-off when the target's latency or
// error rate climbs or (optionally) when the node's CPU is contended, a
// ramp from a start rate, rewrite rules for JSON fields, and a safety filter that
// never sends a message a rule marks as mutating, except, where the operator
// names one, in the target's rehearsal form (a dry-run flag or a sandbox
// tenant; see Options.Rehearse). It always reads what the
// target sends and measures response latency, by a correlation field or as
// the time to the next server message. A failing session is counted and
// replaced, never fatal. A session ends as it was recorded to, with a close
// handshake or, where the client hung up, by hanging up; Stop ends a replay
// the way clients leave, never by dropping the sessions in flight.
//
// Sessions enter through a Source (a replay cache, or a fixed list); what
// leaves is traffic to the target, latency observations (Options.OnResponse)
// for a readiness watcher, counters in Stats and metrics. It does not decide
// when a target is warm (package readiness does) nor where sessions come from.
package replayer
