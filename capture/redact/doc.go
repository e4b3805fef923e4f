// Package redact decides what in a captured websocket session is a secret
// and replaces it with a marker before the tap buffers anything for export.
//
// It owns the redaction rules and their application to the three places a
// session carries data: the handshake headers (Redactor.Header), the request
// path and query (Redactor.Route) and the messages (Redactor.Payload for
// text, Redactor.Binary for binary). It does no I/O, keeps no state between
// calls and does not decide which sessions are captured; package capture
// does.
//
// Data enters as the values the tap already has (an http.Header, the request
// URI, a message payload) and leaves as redacted copies plus a count of what
// was replaced, so the caller can count redactions without seeing secrets.
//
// The security contract:
//   - A configured header, query parameter or JSON key never has its value
//     exported. The value is replaced with Marker, which a replayer later
//     swaps for a warm-up credential.
//   - A text payload that cannot be redacted precisely (not valid JSON,
//     truncated, nested too deeply) but may contain a configured key name is
//     replaced as a whole with Blank. So is, by default, a binary payload
//     that contains a configured key name.
//   - Redaction fails closed: a query that cannot be parsed is replaced as a
//     whole, and key names are matched case-insensitively and through JSON
//     escapes, so over-redaction is possible and leaks are not.
//
// What it cannot see: secrets under names nobody configured, secrets in the
// path part of a route, and secrets inside string values that are neither
// JSON documents nor keyed (a URL with ?token= inside a JSON string value).
package redact
