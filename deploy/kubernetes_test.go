package deploy_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TestPodsAreLockedDown checks every container of every pod, the users' own
// included: non-root, read-only root filesystem, no privilege escalation,
// every capability dropped, the runtime's seccomp profile, and no service
// account token (nothing here talks to the Kubernetes API).
func TestPodsAreLockedDown(t *testing.T) {
	for _, w := range workloads(renderAll(t)) {
		p := w.pod
		if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false", w)
		}
		podNonRoot := p.SecurityContext != nil && p.SecurityContext.RunAsNonRoot != nil && *p.SecurityContext.RunAsNonRoot
		if p.SecurityContext == nil || p.SecurityContext.SeccompProfile == nil || p.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", w)
		}
		for _, c := range allContainers(p) {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: container %s has no securityContext", w, c.Name)
				continue
			}
			if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				t.Errorf("%s: container %s may run as root", w, c.Name)
			}
			if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
				t.Errorf("%s: container %s sets runAsNonRoot false", w, c.Name)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Errorf("%s: container %s runs as user 0", w, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s has a writable root filesystem", w, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: container %s allows privilege escalation", w, c.Name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: container %s is privileged", w, c.Name)
			}
			if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: container %s does not drop exactly ALL capabilities (and add none)", w, c.Name)
			}
		}
	}
}

// TestPreheatContainersAreSized checks that every preheat container requests
// CPU and memory, has a memory limit, and tells the Go runtime a soft memory
// limit (GOMEMLIMIT) under it, so the GC works harder before the kernel kills.
func TestPreheatContainersAreSized(t *testing.T) {
	for _, w := range workloads(renderAll(t)) {
		for _, c := range allContainers(w.pod) {
			if !isPreheat(c) {
				continue
			}
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
				t.Errorf("%s: %s: no CPU or memory request", w, c.Name)
			}
			limit := r.Limits.Memory()
			if limit.IsZero() {
				t.Errorf("%s: %s: no memory limit", w, c.Name)
				continue
			}
			if r.Requests.Memory().Cmp(*limit) > 0 {
				t.Errorf("%s: %s: memory request over its limit", w, c.Name)
			}
			gml, ok := envValue(c, "GOMEMLIMIT")
			if !ok {
				t.Errorf("%s: %s: no GOMEMLIMIT", w, c.Name)
				continue
			}
			n, err := parseBytes(gml)
			if err != nil {
				t.Errorf("%s: %s: GOMEMLIMIT %q: %v", w, c.Name, gml, err)
			} else if n >= limit.Value() || n < limit.Value()*3/4 {
				t.Errorf("%s: %s: GOMEMLIMIT %s is not between 75%% and 100%% of the memory limit %s", w, c.Name, gml, limit)
			}
		}
	}
}

// TestSizingCitesMeasurements checks that each preheat container's resources
// in the base manifests carry a comment citing the benchmark they come from,
// and that each cited document and section exists.
func TestSizingCitesMeasurements(t *testing.T) {
	files := []string{
		"deploy/kubernetes/base/cache/deployment.yaml",
		"deploy/kubernetes/base/router/deployment.yaml",
		"deploy/kubernetes/base/sync-server/deployment.yaml",
		"deploy/kubernetes/base/loadtest/job.yaml",
	}
	cite := regexp.MustCompile(`(docs/benchmarks[a-z-]*\.md)(?:, (?:"([^"]+)"|section (\d+)))?`)
	for _, f := range files {
		text := readRepoFile(t, f)
		// Comments joined, so a citation may wrap.
		var comments []string
		for _, line := range strings.Split(text, "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				comments = append(comments, strings.TrimSpace(line[i+1:]))
			}
		}
		joined := strings.Join(comments, " ")
		cites := cite.FindAllStringSubmatch(joined, -1)
		if len(cites) == 0 {
			t.Errorf("%s: resources cite no benchmark", f)
		}
		for _, m := range cites {
			doc := readRepoFile(t, m[1])
			switch {
			case m[2] != "":
				if !regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(m[2]) + `\b`).MatchString(doc) {
					t.Errorf("%s cites %s, %q: no such heading", f, m[1], m[2])
				}
			case m[3] != "":
				if !regexp.MustCompile(`(?m)^## ` + m[3] + `\. `).MatchString(doc) {
					t.Errorf("%s cites %s, section %s: no such section", f, m[1], m[3])
				}
			}
		}
	}
}

// TestServicesReachTheirPods checks each Service against the pods it selects:
// some pod matches, and every targetPort names a port those pods declare.
func TestServicesReachTheirPods(t *testing.T) {
	objs := renderAll(t)
	for _, o := range objs {
		svc, ok := o.obj.(*corev1.Service)
		if !ok {
			continue
		}
		pods := selected(objs, o, svc.Spec.Selector)
		if len(pods) == 0 {
			t.Errorf("%s selects no pod", o)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			for _, w := range pods {
				if _, cp := containerPort(w.pod, sp.TargetPort.String()); cp == nil {
					t.Errorf("%s: port %s targets %s, which %s does not declare", o, sp.Name, sp.TargetPort.String(), w)
				}
			}
		}
	}
}

// TestSelectorsMatch checks that disruption budgets, network policies and
// pod monitors select pods, and that the named ports they use exist there.
func TestSelectorsMatch(t *testing.T) {
	objs := renderAll(t)
	for _, o := range objs {
		var match map[string]string
		var ports []string
		switch v := o.obj.(type) {
		case *policyv1.PodDisruptionBudget:
			match = v.Spec.Selector.MatchLabels
			for _, w := range selected(objs, o, match) {
				if d, ok := w.obj.(*appsv1.Deployment); ok && v.Spec.MaxUnavailable != nil && d.Spec.Replicas != nil && *d.Spec.Replicas < 2 {
					t.Errorf("%s: %s has one replica: the budget would block every drain", o, w)
				}
			}
		case *networkingv1.NetworkPolicy:
			match = v.Spec.PodSelector.MatchLabels
			for _, r := range v.Spec.Ingress {
				for _, p := range r.Ports {
					ports = append(ports, p.Port.String())
				}
			}
		case *podMonitor:
			match = v.Spec.Selector.MatchLabels
			for _, e := range v.Spec.PodMetricsEndpoints {
				ports = append(ports, e.Port)
			}
		default:
			continue
		}
		pods := selected(objs, o, match)
		if len(pods) == 0 {
			t.Errorf("%s selects no pod in its namespace", o)
		}
		for _, w := range pods {
			for _, p := range ports {
				if _, cp := containerPort(w.pod, p); cp == nil {
					t.Errorf("%s: port %s not declared by %s", o, p, w)
				}
			}
		}
	}
}

// TestCacheIsClosed checks the replay cache's NetworkPolicy: every rule
// admits only pods labelled as cache clients, or Prometheus, and every pod
// whose preheat container reads the cache carries that label.
func TestCacheIsClosed(t *testing.T) {
	objs := renderAll(t)
	for _, o := range objs {
		np, ok := o.obj.(*networkingv1.NetworkPolicy)
		if !ok || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "preheat-cache" {
			continue
		}
		for _, r := range np.Spec.Ingress {
			if len(r.From) == 0 {
				t.Errorf("%s: a rule admits every source", o)
			}
			for _, peer := range r.From {
				if peer.IPBlock != nil || peer.PodSelector == nil {
					t.Errorf("%s: a peer is not limited to selected pods", o)
					continue
				}
				l := peer.PodSelector.MatchLabels
				if l["preheat-cache-client"] != "true" && l["app.kubernetes.io/name"] != "prometheus" {
					t.Errorf("%s: peer %v is neither a cache client nor Prometheus", o, l)
				}
			}
		}
	}
	for _, w := range workloads(objs) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			if u := a.get("cache") + a.get("source"); strings.HasPrefix(u, "http") && w.labels["preheat-cache-client"] != "true" {
				t.Errorf("%s: %s reads the cache but its pods lack preheat-cache-client=true", w, c.Name)
			}
		}
	}
}

// TestNamesAreValid checks names, labels and port names against the API
// server's own validation rules.
func TestNamesAreValid(t *testing.T) {
	for _, o := range renderAll(t) {
		for _, e := range validation.IsDNS1123Label(o.name) {
			t.Errorf("%s: name: %s", o, e)
		}
	}
	for _, w := range workloads(renderAll(t)) {
		for k, v := range w.labels {
			for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: label %s=%s: %s", w, k, v, e)
			}
		}
		for _, c := range allContainers(w.pod) {
			for _, e := range validation.IsDNS1123Label(c.Name) {
				t.Errorf("%s: container %s: %s", w, c.Name, e)
			}
			for _, p := range c.Ports {
				for _, e := range validation.IsValidPortName(p.Name) {
					t.Errorf("%s: %s port %s: %s", w, c.Name, p.Name, e)
				}
			}
		}
	}
}

// TestTapShutdownFitsTheGracePeriod checks the router pods: the tap's
// preStop, its --shutdown-timeout and the 10 s it takes to flush
// (cmd/preheat/tap.go) fit in the pod's termination grace period, and the
// Service sends clients to the tap, never to the admin port.
func TestTapShutdownFitsTheGracePeriod(t *testing.T) {
	objs := renderAll(t)
	const flush = 10 * time.Second
	found := false
	for _, w := range workloads(objs) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil || a.cmd != "tap" {
				continue
			}
			found = true
			shutdown := 30 * time.Second
			if v := a.get("shutdown-timeout"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Fatal(err)
				}
				shutdown = d
			}
			var preStop time.Duration
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Errorf("%s: %s has no preStop sleep (the image has no shell for an exec hook)", w, c.Name)
			} else {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			grace := 30 * time.Second
			if w.pod.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*w.pod.TerminationGracePeriodSeconds) * time.Second
			}
			if need := preStop + shutdown + flush; grace < need {
				t.Errorf("%s: terminationGracePeriodSeconds %v < preStop %v + --shutdown-timeout %v + flush %v", w, grace, preStop, shutdown, flush)
			}
			_, tapPort := containerPort(w.pod, portOf(t, a.get("listen")))
			_, adminPort := containerPort(w.pod, portOf(t, a.get("admin-listen")))
			if tapPort == nil || adminPort == nil {
				t.Errorf("%s: the tap's --listen or --admin-listen port is not declared", w)
				continue
			}
			for _, o := range objs {
				svc, ok := o.obj.(*corev1.Service)
				if !ok || o.overlay != w.overlay || o.namespace != w.namespace || !selects(svc.Spec.Selector, w.labels) {
					continue
				}
				for _, sp := range svc.Spec.Ports {
					if tp := sp.TargetPort.String(); tp != tapPort.Name && tp != fmt.Sprint(tapPort.ContainerPort) {
						t.Errorf("%s sends port %s to %s, not to the tap", o, sp.Name, tp)
					}
				}
			}
			if host := hostOf(t, a.get("upstream")); !isLoopback(host) {
				t.Errorf("%s: the tap's upstream %s is not the router beside it on loopback", w, a.get("upstream"))
			}
		}
	}
	if !found {
		t.Fatal("no tap container rendered")
	}
}

// TestWarmerGatesReadiness checks both warmer layouts: as a native sidecar
// (restartPolicy Always) it serves --ready-addr and the pod's readiness
// probe asks its /readyz there; as an ordinary init container it runs with
// --init after the server, itself a native sidecar, and has no probe.
func TestWarmerGatesReadiness(t *testing.T) {
	layouts := map[string]int{}
	for _, w := range workloads(renderAll(t)) {
		for i, c := range w.pod.InitContainers {
			a := preheatArgs(t, w, &w.pod.InitContainers[i])
			if a == nil || a.cmd != "warm" {
				continue
			}
			sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
			switch {
			case sidecar:
				layouts["sidecar"]++
				if a.has("init") {
					t.Errorf("%s: a native sidecar warmer with --init would exit and be restarted", w)
				}
				if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
					t.Errorf("%s: the native sidecar warmer has no HTTP readiness probe", w)
					continue
				}
				g := c.ReadinessProbe.HTTPGet
				if g.Path != "/readyz" {
					t.Errorf("%s: readiness probe path %s, want /readyz", w, g.Path)
				}
				_, cp := containerPort(&corev1.PodSpec{Containers: []corev1.Container{c}}, g.Port.String())
				if cp == nil || fmt.Sprint(cp.ContainerPort) != portOf(t, a.get("ready-addr")) {
					t.Errorf("%s: readiness probe port %s is not --ready-addr %s", w, g.Port.String(), a.get("ready-addr"))
				}
				if c.StartupProbe != nil {
					t.Errorf("%s: a startup probe on the warmer would hold the server back until warm, which needs the server", w)
				}
			default:
				layouts["init"]++
				if !a.has("init") {
					t.Errorf("%s: an ordinary init container warmer without --init never exits", w)
				}
				if a.has("ready-addr") || c.ReadinessProbe != nil {
					t.Errorf("%s: an init container warmer has no use for --ready-addr or a probe", w)
				}
				if i == 0 {
					t.Errorf("%s: the --init warmer runs before the server it warms", w)
				}
				for _, s := range w.pod.InitContainers[:i] {
					if s.RestartPolicy == nil || *s.RestartPolicy != corev1.ContainerRestartPolicyAlways {
						t.Errorf("%s: init container %s before the warmer would have to exit first", w, s.Name)
					}
				}
			}
			// The target and the metrics endpoint are the server beside it.
			for _, f := range []string{"target", "metrics"} {
				u := a.get(f)
				if u == "" {
					continue
				}
				if !isLoopback(hostOf(t, u)) {
					t.Errorf("%s: --%s %s is not the pod's own server", w, f, u)
				}
				if c, _ := containerPort(w.pod, portOf(t, u)); c == nil || isPreheat(c) {
					t.Errorf("%s: --%s %s: no server container declares that port", w, f, u)
				}
			}
		}
	}
	if layouts["sidecar"] == 0 || layouts["init"] == 0 {
		t.Errorf("want both warmer layouts rendered, got %v", layouts)
	}
}

// TestLoadTestJobFailsThePipeline checks the load-test Job: it is never
// retried on a missed threshold, its pod never restarts, it has thresholds
// to miss, and its deadline outlasts the run.
func TestLoadTestJobFailsThePipeline(t *testing.T) {
	found := false
	for _, o := range renderAll(t) {
		job, ok := o.obj.(*batchv1.Job)
		if !ok {
			continue
		}
		found = true
		s := job.Spec
		if s.BackoffLimit == nil || *s.BackoffLimit != 0 {
			t.Errorf("%s: backoffLimit is not 0: a missed threshold would be retried", o)
		}
		if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s: the exit status would be lost to restarts", o, s.Template.Spec.RestartPolicy)
		}
		failsOn1 := false
		if s.PodFailurePolicy != nil {
			for _, r := range s.PodFailurePolicy.Rules {
				if r.Action == batchv1.PodFailurePolicyActionFailJob && r.OnExitCodes != nil {
					for _, v := range r.OnExitCodes.Values {
						failsOn1 = failsOn1 || v == 1
					}
				}
			}
		}
		if !failsOn1 {
			t.Errorf("%s: no podFailurePolicy rule fails the Job on exit status 1", o)
		}
		w := workload{o, s.Template.Labels, &s.Template.Spec, s.Template.Annotations}
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil || a.cmd != "loadtest" {
				continue
			}
			if len(a.all("threshold")) == 0 && !a.has("fail-on-regression") {
				t.Errorf("%s: no --threshold: the Job cannot fail on one", o)
			}
			run := durationFlag(t, a, "load-timeout", 2*time.Minute) + durationFlag(t, a, "duration", time.Minute) + durationFlag(t, a, "drain", 10*time.Second)
			if s.ActiveDeadlineSeconds == nil || time.Duration(*s.ActiveDeadlineSeconds)*time.Second < run {
				t.Errorf("%s: activeDeadlineSeconds shorter than --load-timeout + --duration + --drain (%v)", o, run)
			}
			if addr := a.get("metrics-addr"); addr != "" && w.annot["prometheus.io/port"] != portOf(t, addr) {
				t.Errorf("%s: prometheus.io/port %q is not --metrics-addr %s", o, w.annot["prometheus.io/port"], addr)
			}
		}
	}
	if !found {
		t.Fatal("no Job rendered")
	}
}

// TestScrapeAnnotationsPointAtMetrics checks prometheus.io annotations name
// a port some preheat container serves /metrics on without a token.
func TestScrapeAnnotationsPointAtMetrics(t *testing.T) {
	for _, w := range workloads(renderAll(t)) {
		port, ok := w.annot["prometheus.io/port"]
		if !ok {
			continue
		}
		if w.annot["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: prometheus.io/path %q", w, w.annot["prometheus.io/path"])
		}
		served := false
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil {
				continue
			}
			for _, f := range []string{"ready-addr", "metrics-addr"} {
				if v := a.get(f); v != "" && portOf(t, v) == port {
					served = true
				}
			}
		}
		if !served {
			t.Errorf("%s: prometheus.io/port %s is no preheat --ready-addr or --metrics-addr", w, port)
		}
	}
}

func durationFlag(t *testing.T, a *args, name string, def time.Duration) time.Duration {
	t.Helper()
	v := a.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("--%s %q: %v", name, v, err)
	}
	return d
}
