package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// args is a preheat container's command line after Kubernetes' $(VAR)
// expansion: the subcommand, then flags written --name=value (or --name for
// a boolean), the one form these manifests use, so that the test reads them
// as preheat does.
type args struct {
	cmd   string
	raw   []string
	flags map[string][]string
}

func (a *args) has(name string) bool { _, ok := a.flags[name]; return ok }

func (a *args) all(name string) []string { return a.flags[name] }

// get returns the last value of a flag, as the flag package keeps it.
func (a *args) get(name string) string {
	v := a.flags[name]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// isPreheat reports whether a container runs the preheat image.
func isPreheat(c *corev1.Container) bool {
	name, _, _ := strings.Cut(c.Image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name == "preheat" || strings.HasSuffix(name, "/preheat")
}

// preheatArgs returns a preheat container's arguments, expanded and parsed,
// or nil for any other container.
func preheatArgs(t *testing.T, w workload, c *corev1.Container) *args {
	t.Helper()
	if !isPreheat(c) {
		return nil
	}
	if len(c.Command) > 0 {
		t.Fatalf("%s: %s overrides the image's entrypoint", w, c.Name)
	}
	if len(c.Args) == 0 {
		t.Fatalf("%s: %s has no subcommand", w, c.Name)
	}
	a := &args{cmd: c.Args[0], flags: map[string][]string{}}
	for _, s := range c.Args {
		a.raw = append(a.raw, expandKubelet(t, w, c, s))
	}
	for _, s := range a.raw[1:] {
		name, ok := strings.CutPrefix(s, "--")
		if !ok {
			t.Fatalf("%s: %s: argument %q is not a --flag: write flags as --name=value", w, c.Name, s)
		}
		name, value, hasValue := strings.Cut(name, "=")
		if !hasValue {
			value = "true"
		}
		a.flags[name] = append(a.flags[name], value)
	}
	return a
}

var kubeletVar = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandKubelet expands $(NAME) in an argument as the kubelet does, from the
// container's environment. A variable from a Secret is an error: expanded,
// the secret would stand in the container's command line, readable in the
// pod's status and /proc; preheat expands ${NAME} itself for that.
func expandKubelet(t *testing.T, w workload, c *corev1.Container, s string) string {
	t.Helper()
	return kubeletVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := m[2 : len(m)-1]
		for _, e := range c.Env {
			if e.Name != name {
				continue
			}
			switch {
			case e.ValueFrom == nil:
				return e.Value
			case e.ValueFrom.SecretKeyRef != nil:
				t.Errorf("%s: %s: argument %q puts Secret %s into the command line; use ${%s}", w, c.Name, s, e.ValueFrom.SecretKeyRef.Name, name)
				return m
			case e.ValueFrom.ConfigMapKeyRef != nil:
				ref := e.ValueFrom.ConfigMapKeyRef
				for _, o := range render(t, w.overlay) {
					if cm, ok := o.obj.(*corev1.ConfigMap); ok && o.namespace == w.namespace && o.name == ref.Name {
						if v, ok := cm.Data[ref.Key]; ok {
							return v
						}
					}
				}
				t.Errorf("%s: %s: ConfigMap %s key %s, named in $(%s), is not rendered", w, c.Name, ref.Name, ref.Key, name)
				return m
			}
		}
		t.Errorf("%s: %s: argument %q names $(%s), which the container's env does not define", w, c.Name, s, name)
		return m
	})
}

// envValue returns the literal value of an environment variable.
func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func hasEnv(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// parseBytes reads a GOMEMLIMIT value: bytes with an optional B, KiB, MiB,
// GiB or TiB suffix.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// hostOf returns the host of a URL.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return u.Hostname()
}

// portOf returns the port of a URL or a listen address, with the scheme's
// default for a URL without one.
func portOf(t *testing.T, s string) string {
	t.Helper()
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		if p := u.Port(); p != "" {
			return p
		}
		switch u.Scheme {
		case "http", "ws":
			return "80"
		case "https", "wss":
			return "443"
		}
		t.Fatalf("%q: no port", s)
	}
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatalf("listen address %q: %v", s, err)
	}
	return p
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TestArgsParseWithPreheatsOwnFlags runs every preheat container's command
// line through the preheat binary built from this tree, with --help last:
// preheat parses every flag before it (types and values included: sizes,
// durations, rates, thresholds) and prints its help only if all of them
// parse, so a flag renamed or removed in cmd/preheat fails here.
func TestArgsParseWithPreheatsOwnFlags(t *testing.T) {
	bin := preheatBinary(t)
	seen := map[string]bool{}
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			seen[a.cmd] = true
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, append(append([]string(nil), a.raw...), "--help")...)
			cmd.Env = []string{"PATH=/nonexistent"} // no tokens, no AWS: parsing only
			cmd.Dir = t.TempDir()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			cancel()
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				first, _, _ := strings.Cut(stderr.String(), "\n")
				t.Errorf("%s: %s: preheat rejects %q (exit %d): %s", w, c.Name, a.raw, ee.ExitCode(), first)
			case err != nil:
				t.Fatal(err)
			case !strings.HasPrefix(stdout.String(), "Usage: preheat "+a.cmd+" "):
				t.Errorf("%s: %s: %q did not stop at --help: %.200s", w, c.Name, a.raw, stdout.String())
			}
		}
	}
	for _, cmd := range []string{"tap", "cache", "warm", "loadtest"} {
		if !seen[cmd] {
			t.Errorf("no container runs preheat %s", cmd)
		}
	}
}

// TestFlagCheckCatchesDrift shows the check above fails on a flag preheat
// does not have and on a value its flag type refuses.
func TestFlagCheckCatchesDrift(t *testing.T) {
	bin := preheatBinary(t)
	for _, bad := range [][]string{
		{"warm", "--ready-adr=:8099", "--help"},
		{"cache", "--max-bytes=lots", "--help"},
		{"loadtest", "--rate=fast", "--help"},
	} {
		cmd := exec.Command(bin, bad...)
		cmd.Env = []string{"PATH=/nonexistent"}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: want exit status 2, got %v: %.200s", bad, err, out)
		}
	}
}

// TestArgsNameDefinedVariables checks the ${NAME} preheat expands in
// --header and --rewrite values: each is in the container's environment.
func TestArgsNameDefinedVariables(t *testing.T) {
	ref := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			for _, s := range a.raw {
				for _, m := range ref.FindAllStringSubmatch(s, -1) {
					if !hasEnv(c, m[1]) {
						t.Errorf("%s: %s: %q names ${%s}, not in its env", w, c.Name, s, m[1])
					}
				}
			}
		}
	}
}

// TestTokensAreSet checks that each server listening beyond loopback
// requires its token, and each client of the cache presents it: the cache
// refuses to start without one, and a tap admin endpoint without one lets
// anyone switch capture.
func TestTokensAreSet(t *testing.T) {
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			need := func(flag, env string) {
				if !a.has(flag) && !hasEnv(c, env) {
					t.Errorf("%s: %s: neither --%s nor %s", w, c.Name, flag, env)
				}
			}
			switch a.cmd {
			case "tap":
				if addr := a.get("admin-listen"); addr != "" && !isLoopback(strings.Split(addr, ":")[0]) {
					need("admin-token", "PREHEAT_ADMIN_TOKEN")
				}
			case "cache":
				need("token", "PREHEAT_CACHE_TOKEN")
			case "warm":
				need("cache-token", "PREHEAT_CACHE_TOKEN")
			case "loadtest":
				if strings.HasPrefix(a.get("source"), "http") {
					need("source-token", "PREHEAT_CACHE_TOKEN")
				}
			}
		}
	}
}

// TestURLsReachServices resolves every in-cluster URL a preheat container is
// given (--cache, --source, --target, --canary) to a rendered Service, in any overlay,
// by its short or qualified name, and follows the Service's port to the
// preheat flag that listens on it.
func TestURLsReachServices(t *testing.T) {
	objs := renderAll(t)
	for _, w := range workloads(objs) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			for _, f := range []string{"cache", "source", "target", "canary"} {
				u := a.get(f)
				if u == "" || isLoopback(hostOf(t, u)) {
					continue
				}
				if err := resolveService(t, objs, w.namespace, u); err != nil {
					t.Errorf("%s: %s: --%s %s: %v", w, c.Name, f, u, err)
				}
			}
		}
	}
}

// resolveService finds the Service a URL names and checks that its port
// leads to a container port.
func resolveService(t *testing.T, objs []object, ns, raw string) error {
	host, port := hostOf(t, raw), portOf(t, raw)
	name, svcNS := host, ns
	if parts := strings.Split(host, "."); len(parts) > 1 {
		rest := strings.Join(parts[2:], ".")
		if rest != "" && rest != "svc" && rest != "svc.cluster.local" {
			return fmt.Errorf("host %s is not a Service name", host)
		}
		name, svcNS = parts[0], parts[1]
	}
	for _, o := range objs {
		svc, ok := o.obj.(*corev1.Service)
		if !ok || o.name != name || o.namespace != svcNS {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if fmt.Sprint(sp.Port) != port {
				continue
			}
			for _, w := range selected(objs, o, svc.Spec.Selector) {
				if _, cp := containerPort(w.pod, sp.TargetPort.String()); cp != nil {
					return nil
				}
			}
			return fmt.Errorf("Service %s/%s port %s leads to no container port", svcNS, name, port)
		}
		return fmt.Errorf("Service %s/%s has no port %s", svcNS, name, port)
	}
	return fmt.Errorf("no Service %s in namespace %s is rendered", name, svcNS)
}

// TestListenPortsAreDeclared checks that each address a preheat container
// listens on is a port it declares, so probes, Services and policies naming
// that port reach it.
func TestListenPortsAreDeclared(t *testing.T) {
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			for _, f := range []string{"listen", "admin-listen", "ready-addr", "metrics-addr"} {
				addr := a.get(f)
				if addr == "" {
					continue
				}
				if host, _, _ := net.SplitHostPort(addr); isLoopback(host) {
					continue
				}
				p := portOf(t, addr)
				ok := false
				for _, cp := range c.Ports {
					ok = ok || fmt.Sprint(cp.ContainerPort) == p
				}
				if !ok {
					t.Errorf("%s: %s: --%s %s is not a declared port", w, c.Name, f, addr)
				}
			}
			// Files preheat writes need a volume: the root filesystem is
			// read-only.
			for _, f := range []string{"report", "ready-file"} {
				path := a.get(f)
				if path == "" {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					mounted = mounted || (!m.ReadOnly && (path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")))
				}
				if !mounted {
					t.Errorf("%s: %s: --%s %s is on the read-only root filesystem", w, c.Name, f, path)
				}
			}
		}
	}
}
