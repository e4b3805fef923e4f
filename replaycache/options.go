package replaycache

import (
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Options configure a Cache. The zero value and nil select every default.
type Options struct {
	// Window keeps sessions whose connect (the open event's start time) is
	// at most this old; older ones are evicted (reason "age") even while
	// they still receive events. Open the consumer at now - Window.
	// Default 15 min.
	Window time.Duration
	// MaxBytes bounds the memory held for cached sessions, in bytes:
	// encoded batches, the batch being built, out-of-order events and
	// summaries. Past it the least recently used sessions (read by Get or
	// Follow, or appended to) are evicted (reason "size"). Default 2 GiB.
	// Besides it, records read ahead of the one being applied hold at most
	// 64 MiB decoded (or one record, up to session.MaxDecodeBytes).
	MaxBytes int64
	// GapWait is how long a session waits for a missing sequence number
	// before it is cut at the gap and marked truncated, and how long events
	// of a session whose open event has not been seen are held before they
	// are dropped as "no connect". A gap is checked every GapWait/10 (at
	// least 10 ms, at most 1 s), so a cut comes up to that much later.
	//
	// The tap flushes each session at least every second, one exporter
	// per session, and both stream producers keep one key's records in
	// order through retries (a retried record holds back the ones behind
	// it: that is a delay, not a gap). Events arrive out of order only
	// when a Kinesis shard splits while a record is in flight: that record
	// lands in the sibling shard, which the consumer reads concurrently,
	// so it comes within a shard poll or two (about a second each) of its
	// neighbours. A later event that is still missing after ten flush
	// intervals was lost (a record the producer gave up on, or the tap's
	// cut), and waiting longer only keeps a broken session unservable.
	// Default 10 s.
	GapWait time.Duration
	// MaxPendingEvents bounds the out-of-order events held per session (and
	// per session without a connect yet). A session that exceeds it is cut
	// at its gap at once. Default 1024.
	MaxPendingEvents int
	// MaxPendingBytes bounds the payload bytes of those events per session.
	// Default 1 MiB.
	MaxPendingBytes int
	// MaxOrphanBytes bounds the memory held for events of sessions whose
	// open event has not been seen yet, across all of them, in bytes. Past
	// it the oldest such session is dropped as "no connect". Default 64 MiB.
	MaxOrphanBytes int64
	// SealBytes is the body size, before compression, at which a session's
	// growing batch is compressed and sealed. Larger batches compress
	// better, but a live session holds up to this much uncompressed: on
	// corpus traffic 32 KiB costs 5% more memory for complete sessions
	// than 64 KiB and 30% less for live ones (see BenchmarkMemory).
	// Follow seals a live session's batch too. Default 32 KiB.
	SealBytes int
	// IdleSeal seals a live session's growing batch, and frees its buffer,
	// once no event has been appended to it for this long. Default 10 s.
	IdleSeal time.Duration
	// Protocol names the protocol profile that judges every session's
	// client messages and names their kinds: "graphql-transport-ws",
	// "graphql-ws", "socket.io", "json-rpc" or "json" (see package
	// protocol). Default "": each session's profile is detected from its
	// subprotocol, route and first client message. Run fails at once if
	// the name is unknown.
	Protocol string
	// KindFields names extra JSON keys whose value names a client
	// message's operation, for the profiles that read plain JSON messages
	// (protocol.Options.KeyFields). Default none: the profiles' own.
	KindFields []string
	// KindByRoute classifies every client message by the path of its
	// session's route instead of by its protocol profile.
	KindByRoute bool
	// MaxKinds bounds the distinct message kinds the cache tells apart,
	// "other" included. When the table is full, a new kind takes the place
	// of the least recently seen kind that no cached session holds any
	// more (the old one is forgotten); if every kind is held, the new one
	// counts as "other". Default 1024, at most 65,535.
	MaxKinds int
	// MaxNewKindsPerSession bounds the kinds one session may add to the
	// kind table; its later new kinds count as "other", so that one client
	// cannot fill the table with made-up names. Default 64.
	MaxNewKindsPerSession int
	// MinKindSessions is how many cached sessions must hold a kind before
	// it counts for Coverage, so that kinds one client makes up are never
	// what warmers are served first. Rarer kinds still show in summaries
	// and Status. Default 3.
	MinKindSessions int
	// MaxSessionWeight caps a session's score in Coverage: the new kinds
	// it adds count up to this many. Default 8.
	MaxSessionWeight int
	// MaxFollowers bounds concurrent Follow calls; more fail with
	// ErrTooManyFollowers. Default 4096.
	MaxFollowers int
	// Now returns the current time, for the window and every timer's
	// deadline. Default time.Now.
	Now func() time.Time
	// Logger receives corrupt records (at most one line per 10 s), gap cuts
	// and evictions at debug level. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the cache's preheat_cache_* metrics. Default a new
	// set from metrics.NewSet; see Cache.Metrics.
	Metrics *metrics.Set
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 2 << 30
	}
	if c.GapWait <= 0 {
		c.GapWait = 10 * time.Second
	}
	if c.MaxPendingEvents <= 0 {
		c.MaxPendingEvents = 1024
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 1 << 20
	}
	if c.MaxOrphanBytes <= 0 {
		c.MaxOrphanBytes = 64 << 20
	}
	if c.SealBytes <= 0 {
		c.SealBytes = 32 << 10
	}
	if c.IdleSeal <= 0 {
		c.IdleSeal = 10 * time.Second
	}
	if c.MaxKinds <= 0 {
		c.MaxKinds = 1024
	}
	if c.MaxKinds > 1<<16-1 {
		c.MaxKinds = 1<<16 - 1
	}
	if c.MaxNewKindsPerSession <= 0 {
		c.MaxNewKindsPerSession = 64
	}
	if c.MinKindSessions <= 0 {
		c.MinKindSessions = 3
	}
	if c.MaxSessionWeight <= 0 {
		c.MaxSessionWeight = 8
	}
	if c.MaxFollowers <= 0 {
		c.MaxFollowers = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}
