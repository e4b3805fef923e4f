// Package capture is preheat's tap: it copies whole websocket client sessions,
// redacted and sampled, into a stream, without changing or delaying the
// traffic it copies.
//
// It owns the proxy path and the recording policy. Tap is a transparent
// reverse proxy (the router sidecar): plain requests go through
// httputil.ReverseProxy; a websocket upgrade is forwarded with its headers,
// subprotocols and extensions negotiated end to end, the upstream's 101
// response is relayed byte for byte, and from then on bytes move both ways
// unmodified, half-closes included. Middleware does the same inside a Go
// router by wrapping Hijack.
//
// After the upgrade, on Linux, a connection whose two sides are plain
// sockets is moved into an event loop (relay_linux.go): a few goroutines
// each wait on an epoll set and move the bytes of every ready connection
// with non-blocking system calls, as nginx does, so a message costs no
// goroutine wake-up and an idle connection holds no goroutine. TLS
// connections, other systems and TapOptions.NoEventLoop use a goroutine
// per direction (pump.go). Both keep the same guarantees.
//
// Bytes are observed only after they have been forwarded, stamped with the
// time they were read: a session's events are in the order their bytes were
// forwarded (an event waits, off the proxied path, while the other
// direction parses an earlier chunk), and frame offsets are forward times.
// A Recorder parses
// them (package capture/wsframe: RFC 6455 frames and permessage-deflate),
// redacts them (package capture/redact) before anything is buffered, and
// batches each session's events (package session) for its exporter
// goroutines, which compress them and put them into a stream.Producer. The
// proxy never waits on any of it: queues are bounded, a byte budget bounds
// memory, and a session that cannot be kept is dropped whole at its start or
// cut (it ends with a close event from the tap, so the stream never holds
// half a session without its end). With a producer that reports each
// record's fate (the Kinesis producer, export.go), the budget also covers
// what the producer holds until it is delivered, and a session a batch of
// which is not delivered is counted lost and sends nothing more. Every
// session is counted once: recorded whole, dropped, skipped, cut or lost.
//
// Serve runs a tap as a service: the proxy and the admin API served until
// the context ends, then shut down in the order that loses nothing.
//
// A PolicyFile, the content of a policy file, builds a Policy over the
// settings given otherwise. The package does not own the stream (the
// caller opens the producer, and closes it unless it hands it to Serve),
// TLS listeners, flags or reading config files (cmd/preheat).
package capture
