package main

import (
	"flag"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/preheatdev/preheat/protocol"
	"github.com/preheatdev/preheat/replayer"
)

// replayRules are the handshake, safety and rewrite flags that every
// command replaying sessions (warm, loadtest) takes.
type replayRules struct {
	headers, mutating, rewrite repeated
	allow, rehearse            repeated
	protocol                   string
	noDefaultSafety            bool
	sendUnknown                bool
	dropRedacted               bool
	orderTimeout               time.Duration
}

// replayRulesHelp explains the flags of replayRules in a command's help.
const replayRulesHelp = `Safety: every client message gets a verdict, read, mutating or unknown, and
only reads are sent. A protocol profile judges it (--protocol, default: detected
from each session's subprotocol, route and first message): graphql-transport-ws
and graphql-ws by the GraphQL operation (mutation: mutating; query,
subscription: read), socket.io by the event name, json-rpc by the method, json
(anything else) by operation names under keys such as op, type, method, action,
event, cmd at any depth. A name is split into words (updateTask: update, task);
any write verb makes it mutating, a read verb (get, list, query, subscribe, ...)
without one a read, anything else unknown. Protocol control (connection_init,
a Socket.IO CONNECT) is sent; the recorded client's answers to the server (pongs,
acks) are not: the replay answers the live server itself. A client message
recorded after the server's k-th message waits for k (--order-timeout).
Rules of your own, FIELD=v1,v2 or FIELD~REGEXP on a JSON field: --mutating
marks writes (it wins over everything), --allow marks reads where the profile
found none. --no-default-safety sets the profile's verdicts aside: only your
rules decide. --send-unknown also sends what nothing shows to be a read (the
old behaviour; it replays any write the profile does not recognise).

Rehearsals (--rehearse FIELD=JSON, repeatable): if the target has a harmless
form of its writes, mutating messages are sent in that form instead of being
skipped, with every FIELD set to its JSON value (added where missing), such as
--rehearse dryRun=true or --rehearse 'params.workspace="warmup-sandbox"'. Use
it only if the target leaves nothing a user can see for such a message. A
sandbox tenant warms the whole write path; a dry-run flag leaves the final
commit cold, so a JIT may still recompile at the first real write.`

// replayRewriteHelp explains --rewrite in a command's help.
const replayRewriteHelp = `Rewrite rules (--rewrite FIELD=ACTION[:VALUE], repeatable, applied in order):
  token=unredact:SECRET   put a warm-up credential where the tap redacted one
  token=set:VALUE         always set a string; FIELD=raw:JSON sets any JSON value
  ts=shift                move a timestamp (s, ms, µs or RFC 3339) to replay time
  request_id=fresh        a new random id of the same shape, stable per session
Values may name environment variables as ${NAME}.`

func (r *replayRules) register(fs *flag.FlagSet) {
	fs.Var(&r.headers, "header", "handshake header \"Name: value\" sent to the target, such as a warm-up credential (repeatable)")
	fs.Var(&r.mutating, "mutating", "rule marking a message as mutating, never sent: FIELD=v1,v2 or FIELD~REGEXP (repeatable; wins over every other verdict)")
	fs.Var(&r.allow, "allow", "rule marking a message as a read: FIELD=v1,v2 or FIELD~REGEXP (repeatable; a message the profile or --mutating marks as mutating stays so)")
	fs.StringVar(&r.protocol, "protocol", "", "protocol profile judging messages: graphql-transport-ws, graphql-ws, socket.io, json-rpc or json (default: detected per session)")
	fs.BoolVar(&r.noDefaultSafety, "no-default-safety", false, "set the profile's verdicts on operations aside: only --mutating and --allow decide")
	fs.BoolVar(&r.sendUnknown, "send-unknown", false, "also send messages nothing shows to be reads (replays any write the profile does not recognise)")
	fs.BoolVar(&r.sendUnknown, "send-unchecked", false, "the old name of --send-unknown")
	fs.DurationVar(&r.orderTimeout, "order-timeout", 5*time.Second, "how long a client message waits for the server messages recorded before it, and a session's end for those recorded after its last message")
	fs.BoolVar(&r.dropRedacted, "drop-redacted", false, "skip messages that still hold a redaction marker after rewriting")
	fs.Var(&r.rewrite, "rewrite", "rewrite rule FIELD=ACTION[:VALUE] (repeatable; see above)")
	fs.Var(&r.rehearse, "rehearse", "send mutating messages in the target's harmless form, with FIELD set to the JSON value: FIELD=JSON (repeatable; see above)")
}

// apply sets the handshake headers, safety and rewrite rules of o.
func (r *replayRules) apply(o *replayer.Options) error {
	h := http.Header{}
	for _, line := range r.headers {
		name, value, ok := strings.Cut(expandBraced(line), ":")
		if !ok || strings.TrimSpace(name) == "" {
			return usagef("--header %q: want \"Name: value\"", line)
		}
		h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	safety, err := parseRules("--mutating", r.mutating)
	if err != nil {
		return err
	}
	allow, err := parseRules("--allow", r.allow)
	if err != nil {
		return err
	}
	var rewrite []replayer.RewriteRule
	for _, s := range r.rewrite {
		rule, err := replayer.ParseRewriteRule(expandBraced(s))
		if err != nil {
			return usagef("--rewrite: %v", err)
		}
		rewrite = append(rewrite, rule)
	}
	var rehearse []replayer.RehearseRule
	for _, s := range r.rehearse {
		// An unset variable must not turn a sandbox tenant into "": that
		// may be the default, real one.
		expanded, unset := expandBracedSet(s)
		if len(unset) > 0 {
			return usagef("--rehearse %q: environment variable %s is not set", s, unset[0])
		}
		rule, err := replayer.ParseRehearseRule(expanded)
		if err != nil {
			return usagef("--rehearse: %v", err)
		}
		rehearse = append(rehearse, rule)
	}
	if r.orderTimeout < 0 {
		return usagef("--order-timeout must not be negative")
	}
	if r.protocol != "" {
		if _, err := protocol.NewSet(nil).Lookup(r.protocol); err != nil {
			return usagef("--protocol: %v", err)
		}
	}
	o.Header, o.Safety, o.Allow, o.Rewrite, o.Rehearse = h, safety, allow, rewrite, rehearse
	o.Protocol, o.NoDefaultSafety, o.SendUnknown = r.protocol, r.noDefaultSafety, r.sendUnknown
	o.DropRedacted, o.OrderTimeout = r.dropRedacted, r.orderTimeout
	return nil
}

// parseRules reads the rules given to flag.
func parseRules(flag string, ss []string) ([]replayer.SafetyRule, error) {
	var rules []replayer.SafetyRule
	for _, s := range ss {
		rule, err := replayer.ParseSafetyRule(s)
		if err != nil {
			return nil, usagef("%s: %v", flag, err)
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

// validate refuses settings that would send what the operator cannot have
// meant, and warns of those that send what nothing shows to be a read.
// mutationsAllowed says the command was told to send writes (a load test's
// --allow-mutations).
func (r *replayRules) validate(log *slog.Logger, mutationsAllowed bool) error {
	if r.noDefaultSafety && len(r.mutating) == 0 && len(r.allow) == 0 && !mutationsAllowed {
		return usagef("--no-default-safety without a --mutating or --allow rule of your own leaves nothing to judge by: add rules, or --allow-mutations where the command has it")
	}
	if r.sendUnknown && !mutationsAllowed {
		log.Warn("--send-unknown: messages that nothing shows to be reads are sent; a write the protocol profile does not recognise will be replayed")
	}
	return nil
}

// expandBraced replaces each ${NAME} in s with the environment variable's
// value. Unlike os.ExpandEnv it leaves a bare $ alone, so that a secret or
// a pattern holding one passes through as written.
func expandBraced(s string) string {
	out, _ := expandBracedSet(s)
	return out
}

// expandBracedSet is expandBraced that also returns the NAMEs that are not
// set in the environment (and expanded to "").
func expandBracedSet(s string) (string, []string) {
	var b strings.Builder
	var unset []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		name := s[i+2 : i+j]
		v, ok := os.LookupEnv(name)
		if !ok {
			unset = append(unset, name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
	b.WriteString(s)
	return b.String(), unset
}
