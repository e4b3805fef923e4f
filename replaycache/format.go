package replaycache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/preheatdev/preheat/session"
)

// This file holds the formats the Server writes events in, framed batches
// (docs/format.md, "Replay cache stream") and JSON lines, and the writer of
// a response in them. Client reads the framed batches.

// The formats events are served in.
const (
	formatBatches = "batches"
	formatJSONL   = "jsonl"

	// BatchesContentType is the media type of the framed batch format.
	BatchesContentType = "application/vnd.preheat.batches.v1"
	// JSONLinesContentType is the media type of JSON lines.
	JSONLinesContentType = "application/x-ndjson"
)

func parseFormat(r *http.Request) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "", formatBatches:
		return formatBatches, nil
	case formatJSONL:
		return formatJSONL, nil
	default:
		return "", fmt.Errorf("format %q: want batches or jsonl", f)
	}
}

// Frame types of the framed batch format.
const (
	frameBatch     = 1 // an event batch
	frameEnd       = 2 // a session's end: 16-byte id, flags byte
	frameHeartbeat = 3 // nothing to send yet
	frameError     = 4 // the server could not go on: UTF-8 message
	frameKinds     = 5 // a session's message kinds: 16-byte id, uvarint-prefixed names
)

// End flags.
const (
	endComplete  = 1 << 0
	endTruncated = 1 << 1
)

// eventWriter writes sessions in one of the formats, each write bounded by
// a deadline.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	format  string
	timeout time.Duration
	started bool
	hdr     []byte
	kbuf    []byte
	evs     []session.Event
	enc     *json.Encoder
}

func newEventWriter(w http.ResponseWriter, format string, timeout time.Duration) *eventWriter {
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), format: format, timeout: timeout}
	if format == formatJSONL {
		ew.enc = json.NewEncoder(w)
	}
	return ew
}

func (ew *eventWriter) start() {
	if ew.started {
		return
	}
	ew.started = true
	if ew.format == formatJSONL {
		ew.w.Header().Set("Content-Type", JSONLinesContentType)
	} else {
		ew.w.Header().Set("Content-Type", BatchesContentType)
	}
	ew.w.WriteHeader(http.StatusOK)
}

func (ew *eventWriter) frame(typ byte, parts ...[]byte) error {
	ew.start()
	ew.rc.SetWriteDeadline(time.Now().Add(ew.timeout))
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	ew.hdr = binary.AppendUvarint(append(ew.hdr[:0], typ), uint64(n))
	if _, err := ew.w.Write(ew.hdr); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := ew.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// batch writes one encoded batch.
func (ew *eventWriter) batch(data []byte) error {
	if ew.format == formatJSONL {
		ew.start()
		evs, err := session.DecodeBatch(data, ew.evs[:0])
		if err != nil {
			return err
		}
		ew.evs = evs
		ew.rc.SetWriteDeadline(time.Now().Add(ew.timeout))
		for i := range evs {
			if err := ew.enc.Encode(evs[i].ToJSON()); err != nil {
				return err
			}
		}
		return ew.rc.Flush()
	}
	if err := ew.frame(frameBatch, data); err != nil {
		return err
	}
	return ew.rc.Flush()
}

// session writes a snapshot's kinds, its batches and its end.
func (ew *eventWriter) session(v View) error {
	if err := ew.kinds(v.Summary); err != nil {
		return err
	}
	for _, b := range v.Batches {
		if err := ew.batch(b); err != nil {
			return err
		}
	}
	return ew.end(v.Summary)
}

// kinds tells the client which message kinds a session holds, so that a
// warmer can ask for sessions with kinds it has not covered yet.
func (ew *eventWriter) kinds(s Summary) error {
	if ew.format == formatJSONL || len(s.Kinds) == 0 {
		return nil
	}
	b := append(ew.kbuf[:0], s.ID[:]...)
	for _, k := range s.Kinds {
		b = binary.AppendUvarint(b, uint64(len(k.Kind)))
		b = append(b, k.Kind...)
	}
	ew.kbuf = b
	return ew.frame(frameKinds, b)
}

// end marks the end of what is served of a session.
func (ew *eventWriter) end(s Summary) error {
	if ew.format == formatJSONL {
		return nil // the close event, or the next session's open, says it
	}
	var flags byte
	if s.Complete {
		flags |= endComplete
	}
	if s.Truncated {
		flags |= endTruncated
	}
	if err := ew.frame(frameEnd, s.ID[:], []byte{flags}); err != nil {
		return err
	}
	return ew.rc.Flush()
}

func (ew *eventWriter) heartbeat() error {
	if ew.format == formatJSONL {
		ew.start()
		ew.rc.SetWriteDeadline(time.Now().Add(ew.timeout))
		if _, err := io.WriteString(ew.w, "\n"); err != nil {
			return err
		}
		return ew.rc.Flush()
	}
	if err := ew.frame(frameHeartbeat); err != nil {
		return err
	}
	return ew.rc.Flush()
}

// fail reports an error to the client: as the response when nothing was
// written yet, else as an error frame (a JSON object in JSON lines).
func (ew *eventWriter) fail(err error) {
	if !ew.started {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrEvicted):
			code = http.StatusNotFound
		case errors.Is(err, ErrTooManyFollowers):
			code = http.StatusServiceUnavailable
		}
		ew.started = true
		writeError(ew.w, code, err)
		return
	}
	if ew.format == formatJSONL {
		ew.enc.Encode(struct {
			Error string `json:"error"`
		}{err.Error()})
		return
	}
	ew.frame(frameError, []byte(err.Error()))
	ew.rc.Flush()
}
