// Package replaycache is the replay cache's core: it reads captured sessions
// from a stream once, puts each session back together, keeps a rolling
// window of whole sessions from their connect onward in memory, and hands
// read-only snapshots of them to the code that serves warmers.
//
// Data enters through a stream.Consumer that the caller opens (normally with
// stream.Start{Time: now - Window}, so that a restarted cache refills its
// window within seconds) and passes to New; Run reads it until its context
// is done. Each record is one event batch (package session). The cache
// orders every session's events by sequence number, drops duplicates, waits
// Options.GapWait for a missing event before cutting the session at the gap
// (marked truncated), and never keeps a session whose open event it has not
// seen. A corrupt record is counted and skipped.
//
// A session is held as the encoded, compressed event batches of the wire
// format (docs/format.md), appended as the session grows, plus a small
// summary: the bytes a server writes to a warmer are the bytes in memory.
// Sessions whose connect is older than Options.Window are evicted, and the
// least recently used ones are evicted while the cache holds more than
// Options.MaxBytes.
//
// Each client message is judged, in sequence order, by its session's
// protocol profile (package protocol, detected from the session's
// subprotocol, route and first client message): an operation's name (a
// GraphQL operation, a Socket.IO event, a JSON-RPC method) is its kind;
// control messages and replies have none. Kinds are interned in a bounded
// table that forgets the least recently seen kinds no cached session holds.
//
// Data leaves through Get (a View: summary and batches, safe to write to a
// network while ingestion goes on), Follow (a live session's batches as they
// arrive), List and Select (summaries; Select picks sessions for coverage of
// message kinds) and Status.
//
// Server serves a Cache over HTTP (status, listing, one session or a
// selection, followed live; framed batches or JSON lines; bearer token,
// rate limits, write deadlines); Serve runs a Cache and its Server on a
// listener until a context ends, then shuts them down. Client is the Go
// client warmers and load tests use. The package does not open or close the stream (cmd/preheat
// does) or replay anything (package replayer does).
package replaycache
