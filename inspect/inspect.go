// Package inspect reads a stream's records into what an operator asks of
// them: the sessions found, each summarised (start, route, frames and bytes
// each way, duration, state), or the events of one session in order.
//
// Records enter through Add, or ReadAll from a stream.Consumer; session
// decodes them. What leaves is text on an io.Writer, a table or JSON lines
// (WriteList, WriteSession), safe to print on a terminal whatever the
// captured clients sent. It does not open streams or parse flags: that is
// cmd/preheat's inspect command.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

// Summary is what an Inspector keeps of one session in list mode: one line
// of WriteList's JSON. State is closed (connect to close, nothing
// missing), open (no close seen yet), gaps (events missing) or no-connect
// (the open event is not in the range read; such a session is never
// replayed). Duration is the offset of the last event seen, in
// nanoseconds in JSON.
type Summary struct {
	ID           session.ID    `json:"session"`
	Route        string        `json:"route,omitempty"`
	TapID        string        `json:"tap,omitempty"`
	Subprotocol  string        `json:"subprotocol,omitempty"`
	Start        time.Time     `json:"start,omitzero"`
	State        string        `json:"state"`
	Events       int           `json:"events"`
	Duplicates   int           `json:"duplicates,omitempty"`
	Missing      int           `json:"missing,omitempty"`
	ClientFrames int           `json:"client_frames"`
	ServerFrames int           `json:"server_frames"`
	ClientBytes  int64         `json:"client_bytes"`
	ServerBytes  int64         `json:"server_bytes"`
	Truncated    int           `json:"truncated_frames,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
	CloseCode    uint16        `json:"close_code,omitempty"`
	ClosedBy     string        `json:"closed_by,omitempty"`
	FirstSeen    time.Time     `json:"-"`
	seen         map[uint64]struct{}
	maxSeq       uint64
	hasOpen      bool
	closed       bool
}

// Inspector gathers a stream's records, in list mode into a Summary per
// session, in session mode into the events of one session. It is not safe
// for concurrent use.
type Inspector struct {
	want     session.ID // zero in list mode
	sessions map[session.ID]*Summary
	events   map[uint64]session.Event // of want, by sequence
	records  int
	corrupt  int
	firstErr error
	buf      []session.Event
}

// New returns an Inspector in list mode when want is zero, else in session
// mode for the session want.
func New(want session.ID) *Inspector {
	return &Inspector{want: want, sessions: make(map[session.ID]*Summary), events: make(map[uint64]session.Event)}
}

// ReadAll adds every record c returns until it returns io.EOF (a consumer
// started with stream.Start.StopAtEnd does at the stream's end). Any other
// error of c is returned as it is, for the caller to say which stream it
// read.
func (in *Inspector) ReadAll(ctx context.Context, c stream.Consumer) error {
	for {
		rec, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		in.Add(rec)
	}
}

// Add decodes rec's event batch and adds its events. A record that does
// not decode is counted (Corrupt) and skipped. In session mode a record
// keyed by another session is not decoded.
func (in *Inspector) Add(rec stream.Record) {
	in.records++
	if !in.want.IsZero() && rec.Key != in.want.String() {
		return
	}
	evs, err := session.DecodeBatch(rec.Data, in.buf[:0])
	if err != nil {
		in.corrupt++
		if in.firstErr == nil {
			in.firstErr = fmt.Errorf("%s at %s: %w", rec.Partition, rec.Position, err)
		}
		return
	}
	in.buf = evs
	for _, ev := range evs {
		if !in.want.IsZero() {
			if ev.Session == in.want {
				if _, dup := in.events[ev.Seq]; !dup {
					in.events[ev.Seq] = ev
				}
			}
			continue
		}
		in.summarize(ev, rec.Time)
	}
}

// Corrupt returns the number of records that did not decode and the error
// of the first, naming its partition and position.
func (in *Inspector) Corrupt() (n int, first error) { return in.corrupt, in.firstErr }

func (in *Inspector) summarize(ev session.Event, at time.Time) {
	s := in.sessions[ev.Session]
	if s == nil {
		s = &Summary{ID: ev.Session, seen: make(map[uint64]struct{}), FirstSeen: at}
		in.sessions[ev.Session] = s
	}
	if _, dup := s.seen[ev.Seq]; dup {
		s.Duplicates++
		return
	}
	s.seen[ev.Seq] = struct{}{}
	s.Events++
	s.maxSeq = max(s.maxSeq, ev.Seq)
	s.Duration = max(s.Duration, ev.Offset)
	switch ev.Kind {
	case session.KindOpen:
		s.hasOpen = true
		s.Route, s.TapID, s.Subprotocol, s.Start = ev.Open.Route, ev.Open.TapID, ev.Open.Subprotocol, ev.Open.Start
	case session.KindFrame:
		if ev.Direction == session.ClientToServer {
			s.ClientFrames++
			s.ClientBytes += int64(len(ev.Payload))
		} else {
			s.ServerFrames++
			s.ServerBytes += int64(len(ev.Payload))
		}
		if ev.Truncated {
			s.Truncated++
		}
	case session.KindClose:
		s.closed = true
		s.CloseCode, s.ClosedBy = ev.Code, ev.ClosedBy.String()
	}
}

// finish sets Missing and State from what was seen.
func (s *Summary) finish() {
	s.Missing = int(s.maxSeq+1) - s.Events
	switch {
	case !s.hasOpen:
		s.State = "no-connect"
	case s.Missing > 0:
		s.State = "gaps"
	case s.closed:
		s.State = "closed"
	default:
		s.State = "open"
	}
}
