package replayer

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/preheatdev/preheat/capture/redact"
	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/session"
)

// step is one client message of a session's plan.
type step struct {
	kind    string
	id      string // the protocol's id of the operation, "" if none
	seq     uint64
	offset  time.Duration
	after   int // server messages that must have arrived before it is sent
	binary  bool
	control bool // protocol control, not an operation
	// reply says the recording shows an answer to it: a server message
	// with its id, or a first server message without an id before the
	// client's next. Only such messages wait for a response (all do in a
	// session recorded without the server's side).
	reply     bool
	rehearsed bool // payload is a mutating message's rehearsal form
	payload   []byte
}

// sessionPlan is what a session's replay sends and expects.
type sessionPlan struct {
	profile protocol.Profile
	steps   []step
	// skipped counts the client messages not sent, by reason and kind.
	skipped map[skipKey]int
	// serverTotal is how many server messages the replay expects in all:
	// those recorded, less heartbeats and the answers to skipped messages.
	serverTotal int
	// openingSkipped is set when the session's first client message, its
	// opening, is not sent: a protocol control message (a connection_init,
	// a Socket.IO CONNECT) or, in plain JSON, whatever the client sent
	// first (our sync protocol's connect). JSON-RPC has no opening.
	openingSkipped bool
	// serverCloses is set when the recorded session ended with the server
	// closing it: a close from the target after the last message is then
	// what the recording shows, not a failure.
	serverCloses bool
}

// skipKey is a reason a message was not sent and its kind.
type skipKey struct{ reason, kind string }

// The reasons a client message is not sent.
const (
	skipMutating  = "mutating"  // a rule or the profile marks it as a write
	skipUnknown   = "unknown"   // nothing shows it only reads
	skipReply     = "reply"     // an answer to a server message: the replay answers the live server itself
	skipTruncated = "truncated" // the tap kept only its start
	skipRedacted  = "redacted"  // Options.DropRedacted, and a redaction marker is left
)

// profile returns the protocol profile of a recorded session.
func (r *Replayer) profile(info *session.Info, evs []session.Event) protocol.Profile {
	if r.fixed != nil {
		return r.fixed
	}
	var first []byte
	if i := firstClient(evs); i >= 0 {
		first = evs[i].Payload
	}
	return r.profiles.Detect(info.Subprotocol, info.Route, first)
}

// plan turns a session's recorded messages into the messages to send:
// rewritten, judged, and each tied to the number of server messages the
// replay must have received before it, so that the recorded order of the
// two directions is kept. With dry set, it prints each client message's
// fate there; values that rewrite rules put in are masked, since they may
// be credentials.
func (r *Replayer) plan(info *session.Info, evs []session.Event, now time.Time, dry io.Writer) sessionPlan {
	rw := rewriter{rules: r.opts.Rewrite, marker: redact.Marker, shift: now.Sub(info.Start)}
	var shown *rewriter
	if dry != nil {
		shown = &rewriter{rules: r.opts.Rewrite, marker: redact.Marker, shift: rw.shift, mask: true}
	}
	p := sessionPlan{profile: r.profile(info, evs), skipped: map[skipKey]int{}}
	conv := p.profile.NewConversation()
	// Of the recorded server messages, the order counts those this replay
	// will cause too: the server's greeting before the client's first
	// message, a message carrying the id of an operation sent, the first
	// message without an id after a sent message not yet answered, and
	// every message without an id after a sent message without one (a
	// handshake's answer, a Socket.IO subscription's events). Messages
	// without an id after an operation with one was answered (updates
	// other clients caused), messages with an id of the server's own, and
	// answers to messages not sent are not waited for.
	server := 0 // counted server messages so far
	sawClient, first := false, true
	lastSent := -1 // the step sent last, until the client's next message
	// id → the steps sent with it and not yet answered, oldest first: a
	// client may reuse an id, and its answers come first in, first out.
	sentIDs := map[string][]int{}
	anyServer := false
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != session.KindFrame {
			continue
		}
		binary := ev.Opcode == session.Binary
		if ev.Direction == session.ServerToClient {
			sm := conv.Server(ev.Payload, binary)
			if sm.Heartbeat {
				continue
			}
			anyServer = true
			if len(sm.ID) > 0 {
				if ks, ok := sentIDs[string(sm.ID)]; ok {
					server++
					if len(ks) > 0 {
						p.steps[ks[0]].reply = true
						sentIDs[string(sm.ID)] = ks[1:]
					}
				}
			} else if !sawClient {
				server++
			} else if lastSent >= 0 && (p.steps[lastSent].id == "" || !p.steps[lastSent].reply) {
				server++
				p.steps[lastSent].reply = true
			}
			continue
		}
		sawClient = true
		payload := ev.Payload
		if !binary {
			payload = rw.apply(payload)
		}
		j := r.judge(conv, payload, binary)
		if j.role != protocol.Reply {
			// The client's answers to the server (pongs) are not part of
			// the conversation: what follows one still answers the
			// message before it.
			lastSent = -1
		}
		var reason string
		rehearsed := false
		switch {
		case ev.Truncated:
			reason = skipTruncated
		case j.role == protocol.Reply:
			reason = skipReply
		case j.role == protocol.Control:
		case j.verdict == protocol.Mutating:
			reason = skipMutating
			if r.opts.SendMutating {
				reason = ""
			} else if len(r.opts.Rehearse) > 0 && !binary {
				if out, ok := rehearse(payload, r.opts.Rehearse); ok {
					payload, reason, rehearsed = out, "", true
				}
			}
		case j.verdict == protocol.Unknown && !r.opts.SendUnknown:
			reason = skipUnknown
		}
		if reason == "" && r.opts.DropRedacted && strings.Contains(string(payload), redact.Marker) {
			reason = skipRedacted
		}
		if dry != nil {
			body := payload
			if !binary {
				body = shown.apply(ev.Payload)
				if rehearsed {
					body, _ = rehearse(body, r.opts.Rehearse)
				}
			}
			printStep(dry, evs[0].Session, ev, body, reason, rehearsed, j)
		}
		if first {
			first = false
			p.openingSkipped = reason != "" && (j.role == protocol.Control || p.profile.Name() == "json")
		}
		if reason != "" {
			p.skipped[skipKey{reason, j.kind}]++
			continue
		}
		lastSent = len(p.steps)
		if ks, ok := sentIDs[j.id]; j.id != "" && len(ks) < maxPending && (ok || len(sentIDs) < maxPending) {
			sentIDs[j.id] = append(ks, lastSent)
		}
		p.steps = append(p.steps, step{kind: j.kind, id: j.id, seq: ev.Seq, offset: ev.Offset, after: server,
			binary: binary, control: j.role == protocol.Control, rehearsed: rehearsed, payload: payload})
	}
	p.serverTotal = server
	if !anyServer {
		// Recorded without the server's side: every message may have an
		// answer, as the target's next message or by the correlation
		// field.
		for i := range p.steps {
			p.steps[i].reply = true
		}
	}
	if last := &evs[len(evs)-1]; last.Kind == session.KindClose && last.ClosedBy == session.SideServer {
		p.serverCloses = true
	}
	return p
}

// judged is the verdict on one client message.
type judged struct {
	role    protocol.Role
	verdict protocol.Verdict
	kind    string
	id      string
	reason  string // why, for a dry run
}

// judge gives the verdict on a client message: the operator's Safety rules
// first (a match is mutating, whatever else says), then the profile's
// judgement (a mutating one stands), then the Allow rules (a match is a
// read), then the profile's read or unknown. With NoDefaultSafety the
// profile's verdict on operations is set aside.
func (r *Replayer) judge(conv protocol.Conversation, msg []byte, binary bool) judged {
	j := conv.Client(msg, binary)
	out := judged{role: j.Role, verdict: j.Verdict, kind: string(j.Kind), id: string(j.ID), reason: j.Reason}
	if len(out.kind) > maxKindLen {
		out.kind = out.kind[:maxKindLen]
	}
	if j.Role == protocol.Reply {
		return out
	}
	if !binary && matchAny(r.opts.Safety, msg) {
		out.verdict, out.reason = protocol.Mutating, "a --mutating rule"
		return out
	}
	if j.Role != protocol.Operation {
		return out
	}
	if r.opts.NoDefaultSafety {
		out.verdict, out.reason = protocol.Unknown, "no rule marks it"
	}
	if out.verdict == protocol.Mutating {
		return out
	}
	if !binary && matchAny(r.opts.Allow, msg) {
		out.verdict, out.reason = protocol.Read, "an --allow rule"
	}
	return out
}

// maxKindLen bounds a kind's length in counts and labels, in bytes.
const maxKindLen = 64

// matchAny reports whether any of rules matches msg, a JSON object.
func matchAny(rules []SafetyRule, msg []byte) bool {
	for i := range rules {
		if hit, err := rules[i].matches(msg); err == nil && hit {
			return true
		}
	}
	return false
}

func printStep(w io.Writer, id session.ID, ev *session.Event, payload []byte, reason string, rehearsed bool, j judged) {
	action := "send"
	switch {
	case reason != "":
		action = "skip " + reason
	case rehearsed:
		action = "rehearse"
	}
	why := j.verdict.String()
	if j.role != protocol.Operation {
		why = j.role.String()
	}
	if j.reason != "" {
		why += ": " + j.reason
	}
	body := string(payload)
	if ev.Opcode == session.Binary {
		body = fmt.Sprintf("<binary %d bytes>", len(payload))
	}
	fmt.Fprintf(w, "%s +%.3fs %s %s (%s)\n", id, ev.Offset.Seconds(), action, body, why)
}
