// Package kinesis is the Amazon Kinesis Data Streams backend of package
// stream: a Producer that puts event batches into a stream and a Consumer
// that reads them back from every shard.
//
// Records enter through Producer.Put, keyed by session id. The producer
// aggregates them in the KPL format (package kpl), grouped by the shard
// each key maps to, and sends them with PutRecords within the Kinesis
// limits: 500 records and 5 MiB per call, 1 MiB per record, and 1,000
// records and 1 MiB per second per shard. Failed records are retried with
// capped exponential backoff and full jitter until a delivery timeout; what
// cannot be delivered by then is given up, counted and logged: as dropped,
// or as unknown when an attempt's outcome was never learned (a timeout, a
// broken connection), since such a record may be in the stream. A record
// given up takes the other records of its key with it, so each key's
// records reach the stream as an unbroken run. PutTracked reports each
// record's fate; ShedOldest gives up the oldest records to make room, for a
// caller that bounds its memory itself (the tap's budget).
//
// Records leave through Consumer.Next, deaggregated, with a position that
// resumes a later consumer exactly after them, even in the middle of an
// aggregate. The consumer follows resharding: it reads parent shards to
// their end before their children.
//
// The package does not create streams, change their shard count, or know
// what a record holds; package session encodes batches. NewClient builds a
// client from the AWS default configuration chain, including
// AWS_ENDPOINT_URL_KINESIS for a local Kinesis-compatible server.
//
// Metrics, all prefixed preheat_kinesis_, go to the *metrics.Set given in
// the options: user and Kinesis records put and read, user records per
// Kinesis record, PutRecords latency, retries and dropped records by
// reason, records given up with an unknown outcome, GetRecords calls,
// throttles, iterator expirations, milliseconds behind latest per shard,
// and corrupt aggregates.
package kinesis
