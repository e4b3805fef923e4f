// Package dirlog is the directory log: the stream backend that keeps event
// batches in append-only segment files under one local directory. It is the
// embedded default for a single machine, demos and tests.
//
// It owns the files under its directory: the metadata file, the writer lock
// and each partition's segments, their checksums, torn-tail repair and
// retention. It does not know what a record holds (package session does),
// and it does not replicate: the log is as durable as the disk it is on.
//
// Data enters through a Producer, of which one at a time may hold a log (an
// flock on the lock file enforces it). Put hashes the session id to a
// partition and appends a checksummed record. Data leaves through any
// number of Consumers, in this process or others, which read every
// partition from a position, a time or the end, and follow the writer by
// polling. docs/dirlog.md describes the format byte by byte.
package dirlog
