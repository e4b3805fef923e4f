package main

import (
	"flag"
	"net/http"
	"os"
	"strings"

	"github.com/preheatdev/preheat/replayer"
)

// replayRules are the handshake, safety and rewrite flags that every
// command replaying sessions (warm, loadtest) takes.
type replayRules struct {
	headers, mutating, rewrite repeated
	rehearse                   repeated
	noDefaultSafety            bool
	sendUnchecked              bool
	dropRedacted               bool
}

// replayRulesHelp explains the flags of replayRules in a command's help.
const replayRulesHelp = `Safety: a client message a safety rule marks as mutating is never sent. The
default rules catch "type" mutate/write/delete and state-changing verbs in
"type", "op", "method" or "action" (see --mutating). Messages the rules cannot
inspect (binary, not JSON) are not sent unless --send-unchecked.

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
	fs.Var(&r.mutating, "mutating", "safety rule marking a message as mutating: FIELD=v1,v2 or FIELD~REGEXP (repeatable; adds to the defaults)")
	fs.BoolVar(&r.noDefaultSafety, "no-default-safety", false, "use only the --mutating rules, not the defaults")
	fs.BoolVar(&r.sendUnchecked, "send-unchecked", false, "send messages the safety rules cannot inspect (binary, not JSON)")
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
	var safety []replayer.SafetyRule
	if !r.noDefaultSafety {
		safety = append(safety, replayer.DefaultSafetyRules...)
	}
	for _, s := range r.mutating {
		rule, err := replayer.ParseSafetyRule(s)
		if err != nil {
			return usagef("--mutating: %v", err)
		}
		safety = append(safety, rule)
	}
	if safety == nil {
		safety = []replayer.SafetyRule{} // --no-default-safety and no rules: none
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
	o.Header, o.Safety, o.Rewrite, o.Rehearse = h, safety, rewrite, rehearse
	o.SendUnchecked, o.DropRedacted = r.sendUnchecked, r.dropRedacted
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
