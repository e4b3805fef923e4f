package deploy_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestSecretsMatchTheDocs checks every Secret key the manifests read (env
// secretKeyRefs, PodMonitor credentials) against the `kubectl create
// secret` commands in docs/deploy.md: each one read is created there, and
// each one created there is read.
func TestSecretsMatchTheDocs(t *testing.T) {
	created := map[string]bool{}
	cmd := regexp.MustCompile(`create secret generic ([a-z0-9-]+) --from-literal=([A-Za-z0-9_.-]+)=`)
	for _, m := range cmd.FindAllStringSubmatch(readRepoFile(t, "docs/deploy.md"), -1) {
		created[m[1]+"/"+m[2]] = true
	}
	if len(created) == 0 {
		t.Fatal("docs/deploy.md creates no Secret")
	}
	read := map[string]string{}
	for _, o := range renderAll(t) {
		switch v := o.obj.(type) {
		case *podMonitor:
			for _, e := range v.Spec.PodMetricsEndpoints {
				if a := e.Authorization; a != nil && a.Credentials != nil {
					read[a.Credentials.Name+"/"+a.Credentials.Key] = o.String()
				}
			}
		}
	}
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					r := e.ValueFrom.SecretKeyRef
					if r.Optional != nil && *r.Optional {
						t.Errorf("%s: %s: Secret %s is optional: a missing token would start the pod without it", w, c.Name, r.Name)
					}
					read[r.Name+"/"+r.Key] = fmt.Sprintf("%s: %s env %s", w, c.Name, e.Name)
				}
				if e.ValueFrom == nil && looksSecret(e.Name) {
					t.Errorf("%s: %s: %s is written in the manifest, not read from a Secret", w, c.Name, e.Name)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					t.Errorf("%s: %s: envFrom a whole Secret: name each key", w, c.Name)
				}
			}
		}
	}
	for k, where := range read {
		if !created[k] {
			t.Errorf("%s reads Secret key %s, which docs/deploy.md does not create", where, k)
		}
	}
	for k := range created {
		if _, ok := read[k]; !ok {
			t.Errorf("docs/deploy.md creates Secret key %s, which no manifest reads", k)
		}
	}
}

func looksSecret(name string) bool {
	n := strings.ToUpper(name)
	return strings.Contains(n, "TOKEN") || strings.Contains(n, "PASSWORD") || strings.Contains(n, "SECRET")
}

// TestIAMPoliciesGrantWhatTheCodeCalls checks deploy/aws against the Kinesis
// API calls in stream/kinesis: the tap's policy grants exactly the
// producer's, the cache's exactly the consumer's.
func TestIAMPoliciesGrantWhatTheCodeCalls(t *testing.T) {
	input := regexp.MustCompile(`awskinesis\.([A-Za-z]+)Input\{`)
	calls := func(files []string) []string {
		var src string
		for _, f := range files {
			src += readRepoFile(t, "stream/kinesis/"+f)
		}
		set := map[string]bool{}
		for _, m := range input.FindAllStringSubmatch(src, -1) {
			set["kinesis:"+m[1]] = true
		}
		if strings.Contains(src, "listShards(") {
			for _, m := range input.FindAllStringSubmatch(readRepoFile(t, "stream/kinesis/shards.go"), -1) {
				set["kinesis:"+m[1]] = true
			}
		}
		return sortedKeys(set)
	}
	for _, c := range []struct {
		policy string
		code   []string
	}{
		{"deploy/aws/iam-tap.json", append(kinesisFiles(t, "producer*.go"), "outcome.go")},
		{"deploy/aws/iam-cache.json", kinesisFiles(t, "consumer*.go")},
	} {
		var p struct {
			Version   string
			Statement []struct {
				Sid      string
				Effect   string
				Action   []string
				Resource string
			}
		}
		dec := json.NewDecoder(strings.NewReader(readRepoFile(t, c.policy)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s: %v", c.policy, err)
		}
		var granted []string
		for _, s := range p.Statement {
			if s.Effect != "Allow" || !strings.HasPrefix(s.Resource, "arn:aws:kinesis:") || strings.Contains(s.Resource, "*") {
				t.Errorf("%s: statement %s: want Allow on one stream's ARN, got %s on %s", c.policy, s.Sid, s.Effect, s.Resource)
			}
			granted = append(granted, s.Action...)
		}
		sort.Strings(granted)
		if want := calls(c.code); fmt.Sprint(granted) != fmt.Sprint(want) {
			t.Errorf("%s grants %v; stream/kinesis/%s call %v", c.policy, granted, strings.Join(c.code, ", "), want)
		}
	}
}

// kinesisFiles names the files of stream/kinesis, tests aside, that match
// pattern: a component's code, however many files it is split into.
func kinesisFiles(t *testing.T, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "stream", "kinesis", pattern))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		if name := filepath.Base(p); !strings.HasSuffix(name, "_test.go") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatalf("no stream/kinesis/%s", pattern)
	}
	return names
}
