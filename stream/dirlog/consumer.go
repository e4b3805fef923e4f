package dirlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/stream"
)

// ConsumerOptions configure a Consumer. The zero value and nil select every
// default.
type ConsumerOptions struct {
	// PollInterval is how often a partition that has been read to its end
	// is checked for new records and new segments. Zero or negative
	// selects the default, 50 ms.
	PollInterval time.Duration
	// Logger receives corrupt records skipped and records lost to
	// retention. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the consumer's preheat_dirlog_* metrics. Default a
	// new set from metrics.NewSet.
	Metrics *metrics.Set
}

func (o *ConsumerOptions) withDefaults() ConsumerOptions {
	var c ConsumerOptions
	if o != nil {
		c = *o
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// Consumer reads every partition of a directory log. It takes no lock and
// may run in any number of processes beside the one producer. It starts no
// goroutines; Next polls. It is not safe for concurrent calls.
//
// Record.Partition is the partition number in decimal. Record.Position is
// the partition's logical byte offset just past the record, in decimal:
// record bytes counted across segments, segment headers not counted.
// Record.Time is the append time.
type Consumer struct {
	dir       string
	opts      ConsumerOptions
	log       *slog.Logger
	parts     []*rpart
	stopAtEnd bool
	rr        int // partition Next tries first
	positions map[string]string
	timer     *time.Timer
	closed    bool

	recordsRead    *metrics.Counter
	bytesRead      *metrics.Counter
	corrupt        *metrics.Counter
	retentionSkips *metrics.Counter
}

var _ stream.Consumer = (*Consumer)(nil)

// rpart is a partition's read state.
type rpart struct {
	id      int
	name    string
	dir     string
	base    int64 // base of the segment being read
	off     int64 // file offset to start at once the segment is opened
	f       *os.File
	r       chunkReader
	sealed  bool      // a later segment exists, so this one is complete
	minTime int64     // skip records appended before, unix ns; 0 for none
	done    bool      // StopAtEnd: read to its end
	idle    time.Time // not to be read again before
	listAt  time.Time // not to list the partition at a clean end before
}

// pos is the logical offset of the partition's next record.
func (p *rpart) pos() int64 {
	if p.f == nil {
		return p.base + p.off - segHeaderLen
	}
	return p.base + p.r.off - segHeaderLen
}

func (p *rpart) segPath(base int64) string { return filepath.Join(p.dir, segName(base)) }

// NewConsumer opens the log in dir for reading from start. The log must
// exist: a producer creates it. opts may be nil.
func NewConsumer(dir string, start stream.Start, opts *ConsumerOptions) (*Consumer, error) {
	o := opts.withDefaults()
	m, err := readMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("open log %q: %w", dir, err)
	}
	c := &Consumer{
		dir:       dir,
		opts:      o,
		log:       o.Logger.With("dirlog", dir),
		stopAtEnd: start.StopAtEnd,
		positions: make(map[string]string),

		recordsRead:    o.Metrics.GetOrCreateCounter(`preheat_dirlog_records_read_total`),
		bytesRead:      o.Metrics.GetOrCreateCounter(`preheat_dirlog_bytes_read_total`),
		corrupt:        o.Metrics.GetOrCreateCounter(`preheat_dirlog_corrupt_records_skipped_total`),
		retentionSkips: o.Metrics.GetOrCreateCounter(`preheat_dirlog_reader_retention_skips_total`),
	}
	for k := range start.After {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= m.Partitions || partitionName(i) != k {
			return nil, fmt.Errorf("start after: partition %q not in log %q of %d partitions", k, dir, m.Partitions)
		}
	}
	for i := range m.Partitions {
		p := &rpart{id: i, name: partitionName(i), dir: partitionDir(dir, i), off: segHeaderLen}
		c.parts = append(c.parts, p)
		if err := c.seek(p, start); err != nil {
			c.Close()
			return nil, fmt.Errorf("open log %q partition %d: %w", dir, i, err)
		}
	}
	return c, nil
}

// Metrics returns the set the consumer's metrics are registered in.
func (c *Consumer) Metrics() *metrics.Set { return c.opts.Metrics }

// seek places p where start says.
func (c *Consumer) seek(p *rpart, start stream.Start) error {
	bases, err := listSegments(p.dir)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		return fmt.Errorf("no segments in %q", p.dir)
	}
	if s, ok := start.After[p.name]; ok {
		after, err := strconv.ParseInt(s, 10, 64)
		if err != nil || after < 0 {
			return fmt.Errorf("bad position %q", s)
		}
		c.positions[p.name] = s
		i := sort.Search(len(bases), func(i int) bool { return bases[i] > after }) - 1
		if i < 0 {
			c.retentionSkip(p, after, bases[0])
			p.base, p.off = bases[0], segHeaderLen
			return nil
		}
		p.base, p.off = bases[i], segHeaderLen+after-bases[i]
		return nil
	}
	switch {
	case start.Latest:
		base := bases[len(bases)-1]
		f, err := os.Open(p.segPath(base))
		if err != nil {
			return err
		}
		defer f.Close()
		end, _, _, err := scanSegment(f)
		if err != nil {
			return err
		}
		p.base, p.off = base, max(end, segHeaderLen)
	case !start.Time.IsZero():
		t := start.Time.UnixNano()
		// The first segment whose first record is at or after t; records
		// before t can only be in the segment before it.
		k := sort.Search(len(bases), func(i int) bool {
			ft, ok := firstTime(p.segPath(bases[i]))
			return !ok || ft >= t
		})
		p.base, p.off, p.minTime = bases[max(k-1, 0)], segHeaderLen, t
	default:
		p.base, p.off = bases[0], segHeaderLen
	}
	return nil
}

// firstTime returns the append time of a segment's first record, or false
// if it has none that is valid.
func firstTime(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if _, err := readSegHeader(f); err != nil {
		return 0, false
	}
	r := newChunkReader(f, segHeaderLen)
	rec, st, _, err := r.next()
	if err != nil || st != recOK {
		return 0, false
	}
	return rec.time, true
}

// Next returns the next record from any partition, taking partitions in
// turn. It waits PollInterval between looks at a partition read to its end.
func (c *Consumer) Next(ctx context.Context) (stream.Record, error) {
	if c.closed {
		return stream.Record{}, stream.ErrClosed
	}
	n := len(c.parts)
	for {
		if err := ctx.Err(); err != nil {
			return stream.Record{}, err
		}
		now := time.Now()
		var wake time.Time
		allDone := true
		for j := range n {
			i := (c.rr + j) % n
			p := c.parts[i]
			if p.done {
				continue
			}
			allDone = false
			if now.Before(p.idle) {
				if wake.IsZero() || p.idle.Before(wake) {
					wake = p.idle
				}
				continue
			}
			rec, ok, err := c.step(p)
			if err != nil {
				return stream.Record{}, fmt.Errorf("read partition %d: %w", i, err)
			}
			if ok {
				c.rr = (i + 1) % n
				c.positions[p.name] = rec.Position
				return rec, nil
			}
			if c.stopAtEnd {
				p.done = true
				continue
			}
			p.idle = now.Add(c.opts.PollInterval)
			if wake.IsZero() || p.idle.Before(wake) {
				wake = p.idle
			}
		}
		if allDone {
			return stream.Record{}, io.EOF
		}
		if wake.IsZero() {
			continue // a partition just finished; check allDone again
		}
		d := time.Until(wake)
		if c.timer == nil {
			c.timer = time.NewTimer(d)
		} else {
			c.timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			c.timer.Stop()
			return stream.Record{}, ctx.Err()
		case <-c.timer.C:
		}
	}
}

// step returns p's next record, or false if it has none now.
func (c *Consumer) step(p *rpart) (stream.Record, bool, error) {
	for {
		if p.f == nil {
			ok, err := c.open(p)
			if err != nil || !ok {
				return stream.Record{}, false, err
			}
		}
		raw, st, tail, err := p.r.next()
		if err != nil {
			return stream.Record{}, false, err
		}
		if st == recOK {
			if raw.time < p.minTime {
				continue
			}
			p.minTime = 0
			c.recordsRead.Inc()
			c.bytesRead.Add(raw.n)
			return stream.Record{
				Partition: p.name,
				Position:  strconv.FormatInt(p.pos(), 10),
				Key:       string(raw.key),
				Data:      append([]byte(nil), raw.data...),
				Time:      time.Unix(0, raw.time),
			}, true, nil
		}
		if !p.sealed {
			// At the end of what has been written, or at a record not yet
			// fully written. The segment is complete once a later one
			// exists: the producer writes all of a segment before it
			// creates the next.
			if tail == 0 && st == recShort {
				// The next segment starts where this one ends, unless
				// this one is still empty.
				if _, err := os.Stat(p.segPath(p.pos())); err == nil && p.pos() != p.base {
					p.sealed = true
					continue
				}
				if _, err := os.Stat(p.segPath(p.base)); err == nil {
					// Most likely the active segment. A sealed one cut
					// short by hand would leave a gap before the next:
					// look for that now and then.
					now := time.Now()
					if now.Before(p.listAt) {
						return stream.Record{}, false, nil
					}
					p.listAt = now.Add(max(time.Second, c.opts.PollInterval))
				}
			}
			next, err := c.nextSegment(p)
			if err != nil || next < 0 {
				return stream.Record{}, false, err
			}
			p.sealed = true
			continue // read once more: the segment may have grown meanwhile
		}
		next, err := c.nextSegment(p)
		if err != nil {
			return stream.Record{}, false, err
		}
		if next < 0 {
			// Every later segment has gone to retention, which always
			// leaves the active one: the partition was removed under us.
			return stream.Record{}, false, nil
		}
		switch {
		case tail != 0 || st != recShort:
			c.corrupt.Inc()
			c.log.Error("dirlog: corrupt record; skipping to the next segment",
				"segment", p.f.Name(), "offset", p.r.off, "bad_bytes", tail, "next_segment", next)
		case next > p.pos():
			if _, err := os.Stat(p.segPath(p.base)); err == nil {
				c.corrupt.Inc()
				c.log.Error("dirlog: segment ends before the next begins; skipping the gap",
					"segment", p.f.Name(), "offset", p.r.off, "next_segment", next)
			} else {
				c.retentionSkip(p, p.pos(), next)
			}
		}
		p.f.Close()
		p.f, p.base, p.off = nil, next, segHeaderLen
	}
}

// open opens p's segment at p.base and positions the reader at p.off. It
// returns false if the segment is not ready yet.
//
// Every decision to skip a segment rests on a look at the segment taken
// after the listing that found a later one: a segment seen without its
// header may be one the producer has only just created, and by the time
// the partition is listed the producer may have written its header and
// records and rolled past it. Only a header still bad when read again after
// that listing is corruption; the producer writes a segment's header
// before it can create the segment's successor.
func (c *Consumer) open(p *rpart) (bool, error) {
	next := int64(-1) // a later segment, listed after a bad header was read
	for {
		f, err := os.Open(p.segPath(p.base))
		if errors.Is(err, fs.ErrNotExist) {
			// Retention deleted the segment, unless it is listed again:
			// go on at the oldest remaining.
			bases, err := listSegments(p.dir)
			if err != nil {
				return false, err
			}
			i := sort.Search(len(bases), func(i int) bool { return bases[i] >= p.base })
			if i < len(bases) && bases[i] == p.base {
				// Not deleted but created again since the open: a producer
				// removes and recreates an active segment left without a
				// whole header by a crash. Open it at the next poll.
				return false, nil
			}
			if i == len(bases) {
				return false, nil
			}
			c.retentionSkip(p, p.pos(), bases[i])
			p.base, p.off, next = bases[i], segHeaderLen, -1
			continue
		}
		if err != nil {
			return false, err
		}
		h, err := readSegHeader(f)
		if err == nil && (h.base != p.base || h.partition != uint32(p.id)) {
			err = fmt.Errorf("%w: base %d partition %d", errBadHeader, h.base, h.partition)
		}
		if err == nil {
			p.f, p.sealed = f, false
			p.r.reset(f, p.off)
			return true, nil
		}
		f.Close()
		if next < 0 {
			var lerr error
			if next, lerr = c.nextSegment(p); lerr != nil {
				return false, lerr
			}
			if next < 0 {
				return false, nil // the producer is creating it
			}
			// The header was read before the listing: read it again. The
			// path is opened afresh, as a producer may have replaced a
			// segment left headless by a crash.
			continue
		}
		c.corrupt.Inc()
		c.log.Error("dirlog: corrupt segment header; skipping the segment",
			"segment", p.segPath(p.base), "err", err, "next_segment", next)
		p.base, p.off, next = next, segHeaderLen, -1
	}
}

// nextSegment returns the base of the first segment after p's, or -1.
func (c *Consumer) nextSegment(p *rpart) (int64, error) {
	bases, err := listSegments(p.dir)
	if err != nil {
		return 0, err
	}
	for _, b := range bases {
		if b > p.base {
			return b, nil
		}
	}
	return -1, nil
}

func (c *Consumer) retentionSkip(p *rpart, from, to int64) {
	c.retentionSkips.Inc()
	c.log.Warn("dirlog: records deleted by retention before they were read",
		"partition", p.id, "from_offset", from, "to_offset", to)
}

// Positions returns, per partition, the position of the last record Next
// returned from it, or the one the consumer started after.
func (c *Consumer) Positions() map[string]string {
	m := make(map[string]string, len(c.positions))
	for k, v := range c.positions {
		m[k] = v
	}
	return m
}

// Close closes the consumer's files. It is safe to call more than once.
func (c *Consumer) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for _, p := range c.parts {
		if p.f != nil {
			errs = append(errs, p.f.Close())
			p.f = nil
		}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	return errors.Join(errs...)
}
