// Package wsframe parses one direction of a websocket connection from a copy
// of its bytes, as preheat's tap sees them after the HTTP upgrade.
//
// It owns RFC 6455 framing (lengths, masking, fragmentation, control frames,
// close codes) and permessage-deflate decompression (RFC 7692), including the
// parsing of the server's Sec-WebSocket-Extensions response header into
// [DeflateParams]. It does not do the handshake, does no I/O and never writes
// to the connection: the proxy keeps copying bytes whatever the parser says.
//
// Bytes enter through [Parser.Feed] in chunks of any size; each complete data
// message and each control frame leaves through the emit callback as a
// [Message] whose Payload is valid only during that call. A stream the parser
// cannot follow yields an [*Error] whose Reason is a short label for metrics;
// the parser then stays failed and the caller stops capturing that session.
//
// Memory: a parser between messages is one 448-byte allocation and holds no
// buffers, except that a direction using permessage-deflate with context
// takeover keeps its sliding window, 2^window_bits bytes (32 KiB by
// default), from its first compressed message until [Parser.Release]; the
// window is only as large as the negotiated window bits. A message that
// arrives whole within one Feed is delivered from the caller's bytes without
// a copy. A message split across Feed calls, or fragmented, borrows a buffer
// from a shared pool until it is emitted: up to MaxMessageBytes for an
// uncompressed message, the whole compressed message (at most
// MaxInflateBytes) for a compressed one. Inflating borrows a pooled
// decompressor (about 40 KiB) and an output buffer (up to MaxMessageBytes)
// for the duration of one message.
package wsframe
