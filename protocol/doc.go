// Package protocol knows how websocket application protocols look to a
// replayer. For each client message of a recorded session it says which
// part the message plays (an operation, protocol control, or a reply to the
// server), whether the operation reads or can write, and what its kind is
// (a GraphQL operation's name, a Socket.IO event, a JSON-RPC method); for
// each server message it says whether it is a heartbeat, which operation it
// belongs to, and what the client must answer now (a pong). Replay is safe
// because only messages shown to be reads are sent by default: a message
// nothing shows to be a read is Unknown, never Read.
//
// A Profile is one protocol; its Conversation judges one session's messages
// in order, since some tie a message to an earlier one. A Set holds the
// built-in profiles, configured by Options, finds one by name (Lookup) and
// picks one for a recorded session (Detect):
//
//   - graphql-transport-ws (the graphql-ws library) and graphql-ws (the
//     legacy subscriptions-transport-ws): an operation is judged by parsing
//     its document, without a schema: mutation writes; query and
//     subscription read.
//   - socket.io (Socket.IO v4 over Engine.IO v4): an event is judged by its
//     name; binary attachments take their event's judgement.
//   - json-rpc (JSON-RPC 2.0, with rpc-websockets' rpc.on, rpc.off and
//     rpc.login): a request is judged by its method; a batch by its worst.
//   - json (plain JSON, such as our own sync protocol): a message is judged
//     by the names under its op keys (Options.KeyFields, then
//     KeyFieldsDefault) at any depth, and by any identifier-shaped string
//     value that holds a write verb.
//
// Names are judged by their words (Words, JudgeName): a write verb
// (WriteVerbs) anywhere makes a name Mutating, a read verb (ReadVerbs) and
// no write verb makes it Read. Plain JSON and JudgeName do not allocate; the
// JSON they read is checked by json.Valid first and then scanned in place.
//
// The package does not send anything, and it does not hold the rules an
// operator writes (--allow, --mutating, rehearsals): those are package
// replayer's, which applies them over a profile's judgement.
//
// # Adding a profile
//
// To add a protocol (Phoenix Channels, Action Cable, SignalR):
//
//  1. Write its file (phoenix.go): a type that implements Profile, whose
//     NewConversation returns a Conversation that keeps whatever state ties
//     messages together. Client must return Unknown for anything it cannot
//     show to be a read, and must never panic on outside bytes; Kind and ID
//     may alias the message; Reason is a constant string.
//  2. Add it to the Set in set.go: a field, the profiles list (which fixes
//     Names), and a rule in Detect, from its subprotocol ("actioncable-v1-json"),
//     its route or its first message, placed before the plain JSON fallback.
//  3. Add table tests of real messages (phoenix_test.go) for both
//     directions, a Detect case, and a native fuzz target (FuzzPhoenix)
//     seeded from the tables that checks it never panics and never calls a
//     write a read.
package protocol
