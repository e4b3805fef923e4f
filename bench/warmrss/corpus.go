package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// batchBytes is where a session's batch is cut, as the tap cuts it
// (capture.RecorderOptions.BatchBytes, default 64 KiB).
const batchBytes = 64 << 10

// mutateRate is the share of client messages that are writes, as in the
// demo's fleet (every tenth): the warmer judges and skips them.
const mutateRate = 0.1

// corpusStats describes a corpus written by writeCorpus.
type corpusStats struct {
	Sessions     int   // sessions written
	Events       int   // events of every session
	PayloadBytes int64 // message bytes, both directions
	ClientBytes  int64 // client message bytes
	Records      int   // stream records (batches)
	DiskBytes    int64 // the directory log's size
}

// writeCorpus writes n synthetic sessions of package corpus, each a connect
// and q client messages (queries answered by results, now and then a
// pushed update, a tenth mutations answered by acks), into a new directory
// log at dir. Every server message gets a "pad" field of pad random
// letters (none for 0), as a server whose results are larger would send.
// Each session's events are cut into batches at batchBytes, as a tap
// exports them. Sessions connect one millisecond apart from start; the
// same seed writes the same corpus.
func writeCorpus(ctx context.Context, dir string, n, q, pad int, seed uint64, start time.Time) (corpusStats, error) {
	var st corpusStats
	p, err := dirlog.NewProducer(dir, &dirlog.ProducerOptions{MaxAge: -1})
	if err != nil {
		return st, fmt.Errorf("corpus: %w", err)
	}
	g := corpus.New(seed)
	g.MutateRate = mutateRate
	letters := rand.New(rand.NewPCG(seed, 0))
	var w session.BatchWriter
	var rec []byte
	put := func(id session.ID) error {
		if w.Events() == 0 {
			return nil
		}
		var err error
		if rec, err = w.AppendTo(rec[:0]); err != nil {
			return err
		}
		w.Reset()
		st.Records++
		return p.Put(ctx, id.String(), rec)
	}
	for i := range n {
		evs := g.Session(start.Add(time.Duration(i)*time.Millisecond), q)
		id := evs[0].Session
		for j := range evs {
			e := &evs[j]
			if pad > 0 && e.Direction == session.ServerToClient {
				e.Payload = padJSON(e.Payload, pad, letters)
			}
			if err := w.Append(e); err != nil {
				p.Close(ctx)
				return st, fmt.Errorf("corpus: session %d: %w", i, err)
			}
			st.Events++
			st.PayloadBytes += int64(len(e.Payload))
			if e.Direction == session.ClientToServer {
				st.ClientBytes += int64(len(e.Payload))
			}
			if w.Len() >= batchBytes {
				if err := put(id); err != nil {
					p.Close(ctx)
					return st, fmt.Errorf("corpus: session %d: %w", i, err)
				}
			}
		}
		if err := put(id); err != nil {
			p.Close(ctx)
			return st, fmt.Errorf("corpus: session %d: %w", i, err)
		}
		st.Sessions++
	}
	if err := p.Close(ctx); err != nil {
		return st, fmt.Errorf("corpus: %w", err)
	}
	st.DiskBytes, err = dirSize(dir)
	return st, err
}

// padJSON returns the JSON object msg with a last field "pad" of n random
// letters, which compress about as little as the identifiers of real
// results. A message that is not an object is returned as it is.
func padJSON(msg []byte, n int, r *rand.Rand) []byte {
	if len(msg) < 2 || msg[0] != '{' || msg[len(msg)-1] != '}' {
		return msg
	}
	out := make([]byte, 0, len(msg)+n+10)
	out = append(out, msg[:len(msg)-1]...)
	if len(msg) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"pad":"`...)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	for i := 0; i < n; {
		for x := r.Uint64(); x != 0 && i < n; x >>= 6 {
			out = append(out, alphabet[x&63])
			i++
		}
	}
	return append(out, `"}`...)
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size += fi.Size()
		return nil
	})
	return size, err
}
