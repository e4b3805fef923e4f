// Package redact decides what in a captured websocket session is a secret
// and replaces it with a marker before the tap buffers anything for export.
//
// It owns the redaction rules and their application to the places a session
// carries data: the handshake headers (Redactor.Header), the request path
// and query (Redactor.Route), the subprotocol the server accepted
// (Redactor.Subprotocol), the messages (Redactor.Payload for text,
// Redactor.Binary for binary) and close reasons (Redactor.CloseReason). It
// does no I/O, keeps no state between calls and does not decide which
// sessions are captured; package capture does.
//
// Data enters as the values the tap already has (an http.Header, the request
// URI, a message payload, a close reason) and leaves as redacted copies
// plus a count of what was replaced, so the caller can count redactions
// without seeing secrets.
//
// Three rules find secrets, all on by default:
//   - Names. A header, query parameter or JSON key is secret when it is
//     configured or a default (Options), or when the word rule (words.go)
//     finds a secret word in it however it is spelled: the name is cut into
//     words at separators and case changes, so X-Forwarded-Access-Token,
//     userJwt, csrfToken and x-api-key are secret and author, tokenize and
//     keyboard are not.
//   - Shapes. JWTs, bearer tokens and Basic credentials (shape.go) are
//     replaced wherever they stand: in a JSON string under any key, in text
//     that is not JSON, in a query parameter or header value, in a close
//     reason and in the path. Only the token goes; the text around it stays.
//   - Subprotocols. Sec-WebSocket-Protocol entries that look like
//     credentials are replaced and protocol names kept
//     (Options.RedactSubprotocols).
//
// The security contract:
//   - A secret name's value is never exported. It is replaced with Marker,
//     which a replayer later swaps for a warm-up credential.
//   - A text payload that cannot be redacted precisely (not valid JSON,
//     truncated, nested too deeply) but may contain a secret name is
//     replaced as a whole with Blank, and a truncated one that may hold a
//     token too. So is, by default, a binary payload that contains a secret
//     name or a token. A close reason that must be blanked becomes Marker.
//   - Redaction fails closed: a query that cannot be parsed is replaced as a
//     whole, and key names are matched case-insensitively and through JSON
//     escapes, so over-redaction is possible and leaks are not.
//
// A pre-check (matcher.go) reads each message once and lets the parser
// skip every message in which no secret name and no token shape can occur,
// which is nearly all of them.
//
// What it cannot see: an opaque secret under a name with no secret word in
// it (ticket, key, pin and code are not secret words) and not configured;
// an opaque secret in free text or in a string value that is neither a JSON
// document nor keyed (a URL with ?ticket= inside a JSON string value), unless
// it has a token's shape; a token spelled with JSON escapes; a short opaque
// subprotocol entry that follows no credential's name.
package redact
