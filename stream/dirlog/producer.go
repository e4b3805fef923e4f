package dirlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/stream"
)

// ErrLocked is returned by NewProducer when another producer, in this
// process or another, holds the log's writer lock.
var ErrLocked = errors.New("dirlog: log is locked by another producer")

const maxPartitions = 4096

// ProducerOptions configure a Producer. The zero value and nil select every
// default.
type ProducerOptions struct {
	// Partitions is the number of partitions of a new log, in [1, 4096].
	// For an existing log it must be 0 or equal the log's count. Default:
	// the existing log's count, or 16 for a new log.
	Partitions int
	// SegmentBytes is the size in bytes at which a partition's active
	// segment is sealed and a new one started. A segment holds at least one
	// record, so it may exceed this by one record. Default 64 MiB; at least
	// 4 KiB.
	SegmentBytes int64
	// MaxBufferedBytes bounds the encoded records held in memory before
	// they are written to the segment files, in bytes. Put writes the
	// buffer out itself when it is full. Default 1 MiB.
	MaxBufferedBytes int
	// FlushInterval is the longest a record stays buffered in memory
	// before it is written to its segment. Default 50 ms.
	FlushInterval time.Duration
	// Sync makes every flush (periodic, Flush, segment roll and Close)
	// fsync the files it wrote. Default false: records survive a crash of
	// the process once written (they are in the OS page cache) but may be
	// lost if the machine fails.
	Sync bool
	// MaxAge deletes sealed segments whose last record was appended more
	// than MaxAge ago. Default 24 h; negative disables age retention.
	MaxAge time.Duration
	// MaxBytes deletes sealed segments, oldest first, while the log's
	// segments total more than MaxBytes bytes. Active segments are never
	// deleted. Default 1 GiB; negative disables size retention.
	MaxBytes int64
	// RetentionInterval is how often retention runs besides on every
	// segment roll. Default 1 min.
	RetentionInterval time.Duration
	// Now returns the append time of records and the current time for
	// retention. Default time.Now.
	Now func() time.Time
	// Logger receives torn-tail cuts, retention deletions and write
	// errors. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the producer's preheat_dirlog_* metrics. Default a
	// new set from metrics.NewSet.
	Metrics *metrics.Set
}

func (o *ProducerOptions) withDefaults() ProducerOptions {
	var c ProducerOptions
	if o != nil {
		c = *o
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 1 << 20
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 50 * time.Millisecond
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
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

func (o *ProducerOptions) validate() error {
	switch {
	case o.Partitions < 0 || o.Partitions > maxPartitions:
		return fmt.Errorf("partitions %d out of range [1, %d]", o.Partitions, maxPartitions)
	case o.SegmentBytes < 4<<10:
		return fmt.Errorf("segment bytes %d below 4096", o.SegmentBytes)
	case o.MaxBufferedBytes < 0:
		return fmt.Errorf("max buffered bytes %d negative", o.MaxBufferedBytes)
	case o.FlushInterval < 0:
		return fmt.Errorf("flush interval %v negative", o.FlushInterval)
	case o.RetentionInterval < 0:
		return fmt.Errorf("retention interval %v negative", o.RetentionInterval)
	}
	return nil
}

// Producer appends records to a directory log. It holds the log's writer
// lock from NewProducer until Close. It is safe for concurrent use.
type Producer struct {
	dir  string
	opts ProducerOptions
	log  *slog.Logger
	lock *os.File

	mu       sync.Mutex
	parts    []*wpart
	buffered int   // encoded bytes in all partitions' buffers
	closed   bool  // Close has begun
	broken   error // a write failed and the file could not be restored

	stop     chan struct{}
	done     chan struct{}
	closeErr error
	once     sync.Once

	recordsWritten *metrics.Counter
	bytesWritten   *metrics.Counter
	recordsDropped *metrics.Counter
	tornCut        *metrics.Counter
	tornBytesCut   *metrics.Counter
	writeErrors    *metrics.Counter
	deletedAge     *metrics.Counter
	deletedSize    *metrics.Counter
}

var _ stream.Producer = (*Producer)(nil)

// wpart is a partition's write state.
type wpart struct {
	id   int
	dir  string
	f    *os.File // active segment, opened for appending
	base int64    // logical offset of the active segment's first record
	size int64    // bytes in the active segment file, header included
	last int64    // append time of the partition's last record, unix ns
	buf  []byte   // encoded records not yet written
	recs int      // records in buf
}

// NewProducer opens the log in dir for appending, creating the directory
// and its metadata if absent. It takes the log's writer lock and cuts a torn
// write at the tail of each partition. opts may be nil.
func NewProducer(dir string, opts *ProducerOptions) (*Producer, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("dirlog producer options: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	lockPath := filepath.Join(dir, lockName)
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open writer lock: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %q: %w", lockPath, err)
	}
	p := &Producer{
		dir:  dir,
		opts: o,
		log:  o.Logger.With("dirlog", dir),
		lock: lock,
		stop: make(chan struct{}),
		done: make(chan struct{}),

		recordsWritten: o.Metrics.GetOrCreateCounter(`preheat_dirlog_records_written_total`),
		bytesWritten:   o.Metrics.GetOrCreateCounter(`preheat_dirlog_bytes_written_total`),
		recordsDropped: o.Metrics.GetOrCreateCounter(`preheat_dirlog_records_dropped_total`),
		tornCut:        o.Metrics.GetOrCreateCounter(`preheat_dirlog_torn_tails_cut_total`),
		tornBytesCut:   o.Metrics.GetOrCreateCounter(`preheat_dirlog_torn_bytes_cut_total`),
		writeErrors:    o.Metrics.GetOrCreateCounter(`preheat_dirlog_write_errors_total`),
		deletedAge:     o.Metrics.GetOrCreateCounter(`preheat_dirlog_segments_deleted_total{reason="age"}`),
		deletedSize:    o.Metrics.GetOrCreateCounter(`preheat_dirlog_segments_deleted_total{reason="size"}`),
	}
	if err := p.open(); err != nil {
		p.closeFiles()
		return nil, err
	}
	p.mu.Lock()
	p.retainLocked()
	p.mu.Unlock()
	go p.run()
	return p, nil
}

// Metrics returns the set the producer's metrics are registered in.
func (p *Producer) Metrics() *metrics.Set { return p.opts.Metrics }

// open reads or creates the metadata and opens every partition.
func (p *Producer) open() error {
	m, err := readMeta(p.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		n := p.opts.Partitions
		if n == 0 {
			n = 16
		}
		m = meta{Format: formatVersion, Partitions: n}
		if err := writeMeta(p.dir, m); err != nil {
			return fmt.Errorf("write log metadata: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read log metadata: %w", err)
	case p.opts.Partitions != 0 && p.opts.Partitions != m.Partitions:
		return fmt.Errorf("log %q has %d partitions, options ask for %d", p.dir, m.Partitions, p.opts.Partitions)
	}
	for i := range m.Partitions {
		wp, err := p.openPartition(i)
		if err != nil {
			return fmt.Errorf("open partition %d: %w", i, err)
		}
		p.parts = append(p.parts, wp)
	}
	return nil
}

// openPartition opens the last segment of partition i for appending,
// cutting a torn tail, or creates the first segment.
func (p *Producer) openPartition(i int) (*wpart, error) {
	wp := &wpart{id: i, dir: partitionDir(p.dir, i)}
	if err := os.MkdirAll(wp.dir, 0o700); err != nil {
		return nil, err
	}
	bases, err := listSegments(wp.dir)
	if err != nil {
		return nil, err
	}
	if len(bases) == 0 {
		if err := p.createSegment(wp, 0); err != nil {
			return nil, err
		}
		return wp, nil
	}
	if len(bases) > 1 {
		// The previous segment's mtime is its last record's append time;
		// keep append times monotonic if the active segment is empty.
		if fi, err := os.Stat(filepath.Join(wp.dir, segName(bases[len(bases)-2]))); err == nil {
			wp.last = fi.ModTime().UnixNano()
		}
	}
	base := bases[len(bases)-1]
	path := filepath.Join(wp.dir, segName(base))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := readSegHeader(f); err != nil {
		// A crash between creating the file and writing its header leaves
		// it short; it cannot hold records, so start it afresh.
		if fi.Size() >= segHeaderLen {
			f.Close()
			return nil, fmt.Errorf("segment %q: %w", path, err)
		}
		f.Close()
		if err := os.Remove(path); err != nil {
			return nil, err
		}
		p.cutLogged(path, 0, fi.Size())
		if err := p.createSegment(wp, base); err != nil {
			return nil, err
		}
		return wp, nil
	}
	end, last, _, err := scanSegment(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("scan segment %q: %w", path, err)
	}
	if end < fi.Size() {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("cut torn tail of %q: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync %q: %w", path, err)
		}
		p.cutLogged(path, end, fi.Size())
	}
	wp.f, wp.base, wp.size = f, base, end
	if last != 0 {
		wp.last = last
	}
	return wp, nil
}

func (p *Producer) cutLogged(path string, end, size int64) {
	p.tornCut.Inc()
	p.tornBytesCut.Add(int(size - end))
	p.log.Warn("dirlog: cut torn tail", "segment", path, "valid_bytes", end, "cut_bytes", size-end)
}

// createSegment creates and opens a new active segment at base.
func (p *Producer) createSegment(wp *wpart, base int64) error {
	path := filepath.Join(wp.dir, segName(base))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	h := segHeader{partition: uint32(wp.id), base: base, created: p.opts.Now().UnixNano()}
	if _, err := f.Write(h.encode()); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write segment header %q: %w", path, err)
	}
	if p.opts.Sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync %q: %w", path, err)
		}
		if err := syncDir(wp.dir); err != nil {
			f.Close()
			return fmt.Errorf("sync %q: %w", wp.dir, err)
		}
	}
	wp.f, wp.base, wp.size = f, base, segHeaderLen
	return nil
}

// Put appends data under key to the partition the key hashes to (FNV-1a,
// 64 bits, modulo the partition count). The record is buffered and written
// within FlushInterval; Put writes the buffer itself when it holds
// MaxBufferedBytes. Put does not keep data. Keys are at most MaxKeyBytes,
// data at most stream.MaxRecordBytes (stream.ErrTooLarge). After a failed
// write that could not be cut back off its segment, Put fails for good.
func (p *Producer) Put(ctx context.Context, key string, data []byte) error {
	if len(data) > stream.MaxRecordBytes {
		return fmt.Errorf("put %d bytes: %w", len(data), stream.ErrTooLarge)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("put key of %d bytes: longer than %d", len(key), MaxKeyBytes)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return stream.ErrClosed
	}
	if p.broken != nil {
		return fmt.Errorf("put: %w", p.broken)
	}
	wp := p.parts[partitionOf(key, len(p.parts))]
	n := recHeaderLen + len(key) + len(data)
	if wp.size > segHeaderLen || len(wp.buf) > 0 {
		if wp.size+int64(len(wp.buf))+int64(n) > p.opts.SegmentBytes {
			if err := p.rollLocked(wp); err != nil {
				return fmt.Errorf("put: %w", err)
			}
		}
	}
	if p.buffered > 0 && p.buffered+n > p.opts.MaxBufferedBytes {
		if err := p.flushLocked(false); err != nil {
			return fmt.Errorf("put: %w", err)
		}
	}
	t := p.opts.Now().UnixNano()
	if t < wp.last {
		t = wp.last // append times never go back within a partition
	}
	wp.last = t
	wp.buf = appendRecord(wp.buf, t, key, data)
	wp.recs++
	p.buffered += n
	if p.buffered >= p.opts.MaxBufferedBytes {
		if err := p.flushLocked(false); err != nil {
			return fmt.Errorf("put: %w", err)
		}
	}
	return nil
}

// writeLocked writes a partition's buffer to its active segment in one
// write, so that readers see whole records. A failed write is cut back off
// the file and its records are counted as dropped.
func (p *Producer) writeLocked(wp *wpart) error {
	if len(wp.buf) == 0 {
		return nil
	}
	n, err := wp.f.Write(wp.buf)
	if err != nil {
		p.writeErrors.Inc()
		p.recordsDropped.Add(wp.recs)
		p.log.Error("dirlog: write failed; records dropped", "partition", wp.id, "records", wp.recs, "err", err)
		if n > 0 {
			if terr := wp.f.Truncate(wp.size); terr != nil {
				p.broken = fmt.Errorf("restore %q after failed write: %w", wp.f.Name(), terr)
			}
		}
		p.buffered -= len(wp.buf)
		wp.buf, wp.recs = wp.buf[:0], 0
		return fmt.Errorf("write %q: %w", wp.f.Name(), err)
	}
	p.recordsWritten.Add(wp.recs)
	p.bytesWritten.Add(len(wp.buf))
	wp.size += int64(len(wp.buf))
	p.buffered -= len(wp.buf)
	if cap(wp.buf) > 4*p.opts.MaxBufferedBytes/len(p.parts)+maxRecordLen {
		wp.buf = nil
	} else {
		wp.buf = wp.buf[:0]
	}
	wp.recs = 0
	return nil
}

// flushLocked writes every partition's buffer, fsyncing if sync and
// Options.Sync.
func (p *Producer) flushLocked(sync bool) error {
	var errs []error
	for _, wp := range p.parts {
		if len(wp.buf) == 0 {
			continue
		}
		if err := p.writeLocked(wp); err != nil {
			errs = append(errs, err)
			continue
		}
		if sync && p.opts.Sync {
			if err := wp.f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("sync %q: %w", wp.f.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// rollLocked seals the partition's active segment and starts the next.
func (p *Producer) rollLocked(wp *wpart) error {
	if err := p.writeLocked(wp); err != nil {
		return err
	}
	if p.opts.Sync {
		if err := wp.f.Sync(); err != nil {
			return fmt.Errorf("sync %q: %w", wp.f.Name(), err)
		}
	}
	// A sealed segment's mtime is its last record's append time, which
	// age retention reads.
	last := time.Unix(0, wp.last)
	if err := os.Chtimes(wp.f.Name(), last, last); err != nil {
		p.log.Warn("dirlog: set segment time", "segment", wp.f.Name(), "err", err)
	}
	next := wp.base + wp.size - segHeaderLen
	if err := wp.f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", wp.f.Name(), err)
	}
	wp.f = nil
	if err := p.createSegment(wp, next); err != nil {
		p.broken = err
		return err
	}
	p.retainLocked()
	return nil
}

// Flush writes every record put before the call to the segment files, and
// fsyncs them if Options.Sync.
func (p *Producer) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return stream.ErrClosed
	}
	if err := p.flushLocked(true); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// run flushes every FlushInterval and applies retention every
// RetentionInterval until Close.
func (p *Producer) run() {
	defer close(p.done)
	flush := time.NewTicker(p.opts.FlushInterval)
	defer flush.Stop()
	retain := time.NewTicker(p.opts.RetentionInterval)
	defer retain.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-flush.C:
			p.mu.Lock()
			if p.buffered > 0 && !p.closed {
				// Errors are logged and counted by writeLocked.
				_ = p.flushLocked(true)
			}
			p.mu.Unlock()
		case <-retain.C:
			p.mu.Lock()
			if !p.closed {
				p.retainLocked()
			}
			p.mu.Unlock()
		}
	}
}

// Close flushes buffered records unless ctx is already done, in which case
// they are counted as dropped, then stops the producer, closes its files
// and releases the writer lock. It is safe to call more than once.
func (p *Producer) Close(ctx context.Context) error {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		defer p.mu.Unlock()
		var errs []error
		if ctx.Err() != nil {
			dropped := 0
			for _, wp := range p.parts {
				if wp.recs > 0 {
					dropped += wp.recs
					p.recordsDropped.Add(wp.recs)
					p.log.Error("dirlog: close deadline passed; records dropped", "partition", wp.id, "records", wp.recs)
					wp.buf, wp.recs = nil, 0
				}
			}
			if dropped > 0 {
				errs = append(errs, fmt.Errorf("close: %d records dropped: %w", dropped, ctx.Err()))
			}
		} else if err := p.flushLocked(true); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
		p.closed = true
		p.buffered = 0
		errs = append(errs, p.closeFiles())
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// closeFiles closes the segment files and releases the lock.
func (p *Producer) closeFiles() error {
	var errs []error
	for _, wp := range p.parts {
		if wp.f != nil {
			if err := wp.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %q: %w", wp.f.Name(), err))
			}
			wp.f = nil
		}
	}
	if err := unlockFile(p.lock); err != nil {
		errs = append(errs, fmt.Errorf("unlock: %w", err))
	}
	if err := p.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close lock: %w", err))
	}
	return errors.Join(errs...)
}

// sealedSeg is a sealed segment considered by retention.
type sealedSeg struct {
	path string
	size int64
	last time.Time // last record's append time (the file's mtime)
}

// retainLocked deletes sealed segments older than MaxAge, then the oldest
// sealed segments while the log is larger than MaxBytes. Segments are only
// ever deleted from the front of a partition, so a partition has no holes.
func (p *Producer) retainLocked() {
	if p.opts.MaxAge < 0 && p.opts.MaxBytes < 0 {
		return
	}
	now := p.opts.Now()
	var total int64
	heads := make([][]sealedSeg, len(p.parts)) // per partition, oldest first
	for i, wp := range p.parts {
		bases, err := listSegments(wp.dir)
		if err != nil {
			p.log.Error("dirlog: retention: list segments", "partition", i, "err", err)
			return
		}
		for _, b := range bases {
			if b == wp.base {
				total += wp.size
				continue
			}
			path := filepath.Join(wp.dir, segName(b))
			fi, err := os.Stat(path)
			if err != nil {
				continue
			}
			total += fi.Size()
			if b < wp.base {
				heads[i] = append(heads[i], sealedSeg{path: path, size: fi.Size(), last: fi.ModTime()})
			}
		}
	}
	del := func(s sealedSeg, reason string, c *metrics.Counter) bool {
		if err := os.Remove(s.path); err != nil {
			p.log.Error("dirlog: retention: delete segment", "segment", s.path, "err", err)
			return false
		}
		c.Inc()
		total -= s.size
		p.log.Info("dirlog: deleted segment", "segment", s.path, "reason", reason, "bytes", s.size, "last_append", s.last)
		return true
	}
	if p.opts.MaxAge >= 0 {
		cutoff := now.Add(-p.opts.MaxAge)
		for i := range heads {
			for len(heads[i]) > 0 && heads[i][0].last.Before(cutoff) {
				if !del(heads[i][0], "age", p.deletedAge) {
					break
				}
				heads[i] = heads[i][1:]
			}
		}
	}
	if p.opts.MaxBytes >= 0 {
		for total > p.opts.MaxBytes {
			oldest := -1
			for i := range heads {
				if len(heads[i]) > 0 && (oldest < 0 || heads[i][0].last.Before(heads[oldest][0].last)) {
					oldest = i
				}
			}
			if oldest < 0 || !del(heads[oldest][0], "size", p.deletedSize) {
				return
			}
			heads[oldest] = heads[oldest][1:]
		}
	}
}

// partitionName is the Record.Partition of partition i.
func partitionName(i int) string { return strconv.Itoa(i) }
