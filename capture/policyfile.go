package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/preheatdev/preheat/capture/redact"
)

// PolicyFile is the content of a capture policy file, as ParsePolicyFile
// decodes it from YAML (or JSON); reading the file is the caller's
// (cmd/preheat):
//
//	sample_rate: 0.25          # fraction of sessions recorded, by session id
//	include: ["/sync*"]        # routes to record
//	exclude: ["/sync/admin*"]  # routes never recorded
//	redact:
//	  headers: [X-Session]     # added to the built-in credential headers
//	  query: [sessionKey]      # query parameters
//	  fields: [token, auth.session]  # JSON keys anywhere, or dotted paths
//	  subprotocols: tokens     # Sec-WebSocket-Protocol entries replaced
//	  keep_subprotocols: []    # protocol names never replaced
//	  keep_binary: false       # pass binary payloads holding a key name
//	  max_depth: 0             # redact.Options.MaxDepth
type PolicyFile struct {
	SampleRate *float64 `yaml:"sample_rate"`
	Include    []string `yaml:"include"`
	Exclude    []string `yaml:"exclude"`
	Redact     struct {
		Headers          []string                `yaml:"headers"`
		Query            []string                `yaml:"query"`
		Fields           []string                `yaml:"fields"`
		Subprotocols     *redact.SubprotocolRule `yaml:"subprotocols"`
		KeepSubprotocols []string                `yaml:"keep_subprotocols"`
		KeepBinary       bool                    `yaml:"keep_binary"`
		MaxDepth         int                     `yaml:"max_depth"`
	} `yaml:"redact"`
}

// ParsePolicyFile decodes a policy file's content. A key the format does
// not have is an error that names it and its line, so that a misspelt
// setting is never silently ignored. Empty content is a file with no
// settings.
func ParsePolicyFile(data []byte) (*PolicyFile, error) {
	f := new(PolicyFile)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = unknownField.ReplaceAllString(m, "unknown key $1")
			}
			return nil, errors.New(strings.Join(msgs, "; "))
		}
		return nil, err
	}
	return f, nil
}

// unknownField is how the YAML decoder words an unknown key; the Go type it
// names means nothing to whoever wrote the file.
var unknownField = regexp.MustCompile(`field (\S+) not found in type .*`)

// Policy builds a validated Policy from base and ro, the settings given
// otherwise (a command's flags), with f's settings over them: its
// sample_rate, include and exclude replace base's; its redact headers,
// query and fields are added to ro's; its subprotocols, when set,
// replaces ro's rule, and its keep_subprotocols, keep_binary and max_depth
// are used. f may be nil (no file): base and ro alone. base's Redactor is
// replaced; ro may be nil and is not modified.
func (f *PolicyFile) Policy(base Policy, ro *redact.Options) (Policy, error) {
	p, rc := base, redact.Options{}
	if ro != nil {
		rc = *ro
	}
	if f != nil {
		if f.SampleRate != nil {
			p.SampleRate = *f.SampleRate
		}
		if f.Include != nil {
			p.Include = f.Include
		}
		if f.Exclude != nil {
			p.Exclude = f.Exclude
		}
		rc.Headers = slices.Concat(rc.Headers, f.Redact.Headers)
		rc.QueryParams = slices.Concat(rc.QueryParams, f.Redact.Query)
		rc.JSONKeys = slices.Concat(rc.JSONKeys, f.Redact.Fields)
		if f.Redact.Subprotocols != nil {
			rc.RedactSubprotocols = *f.Redact.Subprotocols
		}
		rc.Subprotocols = f.Redact.KeepSubprotocols
		rc.KeepBinary = f.Redact.KeepBinary
		rc.MaxDepth = f.Redact.MaxDepth
	}
	rd, err := redact.New(&rc)
	if err != nil {
		return p, fmt.Errorf("redaction rules: %w", err)
	}
	p.Redactor = rd
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}
