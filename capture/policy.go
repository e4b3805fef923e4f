package capture

import (
	"fmt"
	"math"
	"strings"

	"github.com/preheatdev/preheat/capture/redact"
)

// Policy says which sessions are recorded and how they are redacted. It can
// be replaced while the recorder runs (Recorder.SetPolicy), for instance when
// a config file is reloaded.
type Policy struct {
	// SampleRate is the fraction of sessions recorded, from 0 to 1. The
	// choice is a function of the session id, so it is the same wherever
	// it is made. The zero Policy records nothing; DefaultPolicy records
	// every session.
	SampleRate float64
	// Include lists the routes to record; empty means every route. A
	// pattern ending in "*" matches paths with that prefix; any other
	// pattern matches one path exactly.
	Include []string
	// Exclude lists routes never recorded, in the same pattern syntax. It
	// wins over Include.
	Exclude []string
	// Redactor removes credentials and secret fields before anything is
	// buffered: from the handshake's headers, route and subprotocol, from
	// messages and from close reasons. Nil means redact.New(nil): the
	// built-in credential headers, query parameters and JSON keys, every
	// name with a secret word in it (token, password, jwt and the like),
	// token shapes (JWTs, bearer tokens) anywhere, and subprotocol entries
	// that look like credentials.
	Redactor *redact.Redactor
}

// DefaultPolicy records every session with the default redaction rules.
func DefaultPolicy() Policy { return Policy{SampleRate: 1} }

// Validate reports the first problem with p.
func (p Policy) Validate() error {
	if math.IsNaN(p.SampleRate) || p.SampleRate < 0 || p.SampleRate > 1 {
		return fmt.Errorf("sample rate %v: want a fraction from 0 to 1", p.SampleRate)
	}
	for _, pat := range append(append([]string(nil), p.Include...), p.Exclude...) {
		if !strings.HasPrefix(pat, "/") {
			return fmt.Errorf("route pattern %q: want a path starting with /", pat)
		}
	}
	return nil
}

// matchRoute reports whether path matches pattern (see Policy.Include).
func matchRoute(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == path
}
