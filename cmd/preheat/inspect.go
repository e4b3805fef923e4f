package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream"
)

type inspectOptions struct {
	stream  string
	since   time.Duration
	session string
	json    bool
	limit   int
	timeout time.Duration
}

func inspectCommand() *command {
	return &command{
		name:    "inspect",
		summary: "list the sessions in a stream, or print one session's events",
		usage:   "--stream URL [--since 10m] [--session ID] [--json]",
		help: `Reads a stream from --since ago (or everything it retains) to its current end and
lists the sessions found: start, route, frames each way, bytes, duration and state.
With --session it prints that session's events in order instead, payloads as text
where they are UTF-8. --json writes one JSON object per line for scripts.

States: closed (connect to close, nothing missing), open (no close seen yet),
gaps (events missing), no-connect (the open event is not in the range read; such a
session is never replayed).`,
		setup: withFlags(inspectFlags, runInspect),
	}
}

// inspectFlags declares the inspect command's flags into a new inspectOptions.
func inspectFlags(fs *flag.FlagSet) *inspectOptions {
	o := &inspectOptions{}
	fs.StringVar(&o.stream, "stream", "", "stream URL to read (file:///path or kinesis://STREAM); required")
	fs.DurationVar(&o.since, "since", 0, "read records accepted this long ago and later; 0 reads everything the stream retains")
	fs.StringVar(&o.session, "session", "", "print the events of the session with this id instead of the list")
	fs.BoolVar(&o.json, "json", false, "write JSON lines instead of a table")
	fs.IntVar(&o.limit, "limit", 0, "list only the newest N sessions; 0 lists all")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up reading after this long")
	return o
}

func runInspect(ctx context.Context, e *env, o *inspectOptions, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	if o.stream == "" {
		return usagef("--stream is required")
	}
	if _, err := parseStreamURL(o.stream); err != nil {
		return usagef("%v", err)
	}
	if o.since < 0 || o.limit < 0 || o.timeout <= 0 {
		return usagef("--since and --limit must not be negative, --timeout must be positive")
	}
	var want session.ID
	if o.session != "" {
		id, err := session.ParseID(o.session)
		if err != nil {
			return usagef("%v", err)
		}
		want = id
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	start := stream.Start{StopAtEnd: true}
	if o.since > 0 {
		start.Time = time.Now().Add(-o.since)
	}
	c, err := openConsumer(ctx, o.stream, start, e.log, metrics.NewSet())
	if err != nil {
		return err
	}
	defer c.Close()

	ins := newInspector(want)
	for {
		rec, err := c.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", o.stream, err)
		}
		ins.add(rec)
	}
	if ins.corrupt > 0 {
		fmt.Fprintf(e.stderr, "preheat inspect: skipped %d corrupt records (first: %v)\n", ins.corrupt, ins.firstErr)
	}
	if o.session != "" {
		return ins.printSession(e.stdout, o.json)
	}
	return ins.printList(e.stdout, o.json, o.limit)
}

// sessionSummary is what inspect keeps of one session in list mode.
type sessionSummary struct {
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

type inspector struct {
	want     session.ID // zero in list mode
	sessions map[session.ID]*sessionSummary
	events   map[uint64]session.Event // of want, by sequence
	records  int
	corrupt  int
	firstErr error
	buf      []session.Event
}

func newInspector(want session.ID) *inspector {
	return &inspector{want: want, sessions: make(map[session.ID]*sessionSummary), events: make(map[uint64]session.Event)}
}

func (in *inspector) add(rec stream.Record) {
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

func (in *inspector) summarize(ev session.Event, at time.Time) {
	s := in.sessions[ev.Session]
	if s == nil {
		s = &sessionSummary{ID: ev.Session, seen: make(map[uint64]struct{}), FirstSeen: at}
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

func (s *sessionSummary) finish() {
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

func (in *inspector) printList(w io.Writer, asJSON bool, limit int) error {
	list := make([]*sessionSummary, 0, len(in.sessions))
	for _, s := range in.sessions {
		s.finish()
		list = append(list, s)
	}
	// Oldest first; sessions without a connect sort by when they were seen.
	when := func(s *sessionSummary) time.Time {
		if s.hasOpen {
			return s.Start
		}
		return s.FirstSeen
	}
	slices.SortFunc(list, func(a, b *sessionSummary) int {
		return cmp.Or(when(a).Compare(when(b)), strings.Compare(a.ID.String(), b.ID.String()))
	})
	if limit > 0 && len(list) > limit {
		list = list[len(list)-limit:]
	}
	if asJSON {
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

func (in *inspector) printSession(w io.Writer, asJSON bool) error {
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

// payloadText renders a payload for a terminal: UTF-8 as text (with
// terminalText's escapes), anything else as hex.
func payloadText(p []byte) string {
	if utf8.Valid(p) {
		return terminalText(string(p))
	}
	const show = 64
	if len(p) > show {
		return fmt.Sprintf("(binary, %d bytes) %s…", len(p), hex.EncodeToString(p[:show]))
	}
	return fmt.Sprintf("(binary, %d bytes) %s", len(p), hex.EncodeToString(p))
}

// terminalText makes captured text, which any client chose, safe to print
// on a terminal and one line long: newline, carriage return and tab become
// \n, \r and \t; other C0 controls, DEL and bytes that are not UTF-8
// become \xNN; C1 controls, the Unicode line and paragraph separators and
// the bidirectional controls (which reorder what follows them) become
// \uNNNN. Printable text, whatever its script, stays as it is. A backslash
// in the text is not escaped: --json gives the exact bytes.
func terminalText(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafeRune(r, size):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError || r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether terminalText escapes r, decoded from size
// bytes.
func unsafeRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1: // not UTF-8
		return true
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi controls
		return true
	}
	return false
}

// jsonEscaper writes JSON from encoding/json, which escapes C0 controls
// and the line separators, with DEL, C1 controls and the bidirectional
// controls escaped as well (\uNNNN): the same JSON value, safe for a
// terminal. Outside strings JSON is ASCII, so these only occur inside
// strings, and each Encode is one Write, so none is split.
type jsonEscaper struct{ w io.Writer }

func (j jsonEscaper) Write(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		r, size := utf8.DecodeRune(p[i:])
		if r >= 0x7f && r != utf8.RuneError && unsafeRune(r, size) {
			break
		}
		i += size
	}
	if i == len(p) {
		return j.w.Write(p)
	}
	out := append(make([]byte, 0, len(p)+16), p[:i]...)
	for i < len(p) {
		r, size := utf8.DecodeRune(p[i:])
		if r >= 0x7f && r != utf8.RuneError && unsafeRune(r, size) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	if _, err := j.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
