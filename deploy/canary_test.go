package deploy_test

import (
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestCanaryComparesWithTheVersionInService checks every warmer given
// --canary: its reference is a Service of the warmer's own Deployment, on
// the port its --target is (so it reaches the Ready pods of the version in
// service, as the routers do); its canary fits before --deadline; and the
// Deployment's progressDeadlineSeconds outlasts --deadline, so that a pod
// held for a regression stalls the rollout and Kubernetes reports it.
func TestCanaryComparesWithTheVersionInService(t *testing.T) {
	objs := renderAll(t)
	canaries := 0
	for _, w := range workloads(objs) {
		for _, c := range allContainers(w.pod) {
			a := preheatArgs(t, w, c)
			if a == nil || a.cmd != "warm" || !a.has("canary") {
				continue
			}
			canaries++
			u := a.get("canary")
			if err := resolveService(t, objs, w.namespace, u); err != nil {
				t.Errorf("%s: --canary %s: %v", w, u, err)
			}
			var svc *corev1.Service
			for _, o := range objs {
				if s, ok := o.obj.(*corev1.Service); ok && o.overlay == w.overlay && o.namespace == w.namespace && o.name == hostOf(t, u) {
					svc = s
				}
			}
			if svc == nil || !selects(svc.Spec.Selector, w.labels) {
				t.Errorf("%s: --canary %s is not a Service of the warmer's own pods: it would compare with another application", w, u)
			} else {
				for _, sp := range svc.Spec.Ports {
					if _, cp := containerPort(w.pod, sp.TargetPort.String()); cp != nil && portOf(t, u) == portString(sp.Port) &&
						portString(cp.ContainerPort) != portOf(t, a.get("target")) {
						t.Errorf("%s: --canary %s reaches container port %d, --target %s another", w, u, cp.ContainerPort, a.get("target"))
					}
				}
			}
			if p := a.get("on-regression"); p != "hold" && p != "release" {
				t.Errorf("%s: --on-regression %q: hold or release, said outright", w, p)
			}
			deadline := durationFlag(t, a, "deadline", 10*time.Minute)
			if d := durationFlag(t, a, "canary-duration", time.Minute); d >= deadline/2 {
				t.Errorf("%s: --canary-duration %v leaves the warm-up little of --deadline %v", w, d, deadline)
			}
			dep, ok := w.obj.(*appsv1.Deployment)
			if !ok || dep.Spec.ProgressDeadlineSeconds == nil || time.Duration(*dep.Spec.ProgressDeadlineSeconds)*time.Second <= deadline {
				t.Errorf("%s: progressDeadlineSeconds does not outlast --deadline %v: a held rollout would not be reported", w, deadline)
			}
		}
	}
	if canaries == 0 {
		t.Error("no warmer has a --canary: the manifests do not show how to point it at the version in service")
	}
}

func portString(p int32) string { return strconv.Itoa(int(p)) }
