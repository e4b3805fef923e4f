package inspect

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/preheatdev/preheat/session"
)

// ListOptions say how WriteList writes.
type ListOptions struct {
	// JSON writes one JSON object per session and line instead of a table
	// and its count line. Default false: the table.
	JSON bool
	// Limit writes only the newest Limit sessions. Default 0: all.
	Limit int
}

// WriteList writes the sessions seen in list mode, oldest first (a session
// without a connect by when its first record was accepted): a table of
// start, route, frames each way, bytes, duration and state, then the
// count of sessions and records; or JSON lines. o may be nil.
func (in *Inspector) WriteList(w io.Writer, o *ListOptions) error {
	if o == nil {
		o = &ListOptions{}
	}
	list := make([]*Summary, 0, len(in.sessions))
	for _, s := range in.sessions {
		s.finish()
		list = append(list, s)
	}
	// Oldest first; sessions without a connect sort by when they were seen.
	when := func(s *Summary) time.Time {
		if s.hasOpen {
			return s.Start
		}
		return s.FirstSeen
	}
	slices.SortFunc(list, func(a, b *Summary) int {
		return cmp.Or(when(a).Compare(when(b)), strings.Compare(a.ID.String(), b.ID.String()))
	})
	if o.Limit > 0 && len(list) > o.Limit {
		list = list[len(list)-o.Limit:]
	}
	if o.JSON {
		enc := json.NewEncoder(jsonEscaper{w})
		for _, s := range list {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTART\tROUTE\tC→S\tS→C\tBYTES\tDURATION\tSTATE")
	for _, s := range list {
		start := "-"
		if s.hasOpen {
			start = s.Start.UTC().Format("2006-01-02 15:04:05.000")
		}
		state := s.State
		if s.Missing > 0 {
			state += fmt.Sprintf(" (%d missing)", s.Missing)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.ID, start, orDash(terminalText(s.Route)),
			s.ClientFrames, s.ServerFrames, humanBytes(s.ClientBytes+s.ServerBytes), s.Duration.Round(time.Millisecond), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d sessions in %d records\n", len(in.sessions), in.records)
	return nil
}

// WriteSession writes the events of the session of session mode in
// sequence order: a table, payloads as text where they are UTF-8 and a
// line for each run of missing events; or, asJSON, one session.JSON per
// line. It fails when no event of the session was read.
func (in *Inspector) WriteSession(w io.Writer, asJSON bool) error {
	if len(in.events) == 0 {
		return fmt.Errorf("session %s not found in the range read", in.want)
	}
	seqs := slices.Sorted(func(yield func(uint64) bool) {
		for s := range in.events {
			if !yield(s) {
				return
			}
		}
	})
	enc := json.NewEncoder(jsonEscaper{w})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "SEQ\tOFFSET\tKIND\tFROM\tTYPE\tPAYLOAD")
	}
	next := uint64(0)
	for _, seq := range seqs {
		ev := in.events[seq]
		if !asJSON && seq != next {
			fmt.Fprintf(tw, "\t\t(missing %d-%d)\t\t\t\n", next, seq-1)
		}
		next = seq + 1
		if asJSON {
			if err := enc.Encode(ev.ToJSON()); err != nil {
				return err
			}
			continue
		}
		switch ev.Kind {
		case session.KindOpen:
			fmt.Fprintf(tw, "%d\t%s\topen\t\t\troute=%s subprotocol=%q extensions=%q tap=%s start=%s headers=%d\n", ev.Seq, "0s",
				terminalText(ev.Open.Route), ev.Open.Subprotocol, ev.Open.Extensions, terminalText(ev.Open.TapID), ev.Open.Start.UTC().Format(time.RFC3339Nano), len(ev.Open.Header))
		case session.KindFrame:
			text := payloadText(ev.Payload)
			if ev.Truncated {
				text += " …(truncated)"
			}
			fmt.Fprintf(tw, "%d\t%s\tframe\t%s\t%s\t%s\n", ev.Seq, ev.Offset, ev.Direction, ev.Opcode, text)
		case session.KindClose:
			fmt.Fprintf(tw, "%d\t%s\tclose\t%s\t\tcode=%d reason=%q\n", ev.Seq, ev.Offset, ev.ClosedBy, ev.Code, ev.Reason)
		default:
			fmt.Fprintf(tw, "%d\t%s\t%s\t\t\t\n", ev.Seq, ev.Offset, ev.Kind)
		}
	}
	return tw.Flush()
}
