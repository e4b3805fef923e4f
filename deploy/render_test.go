package deploy_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are the kustomize overlays a user applies; each is rendered.
var overlays = []string{"production", "warm-init", "staging", "loadtest"}

// object is one rendered manifest, decoded strictly into its API type.
type object struct {
	overlay    string
	apiVersion string
	kind       string
	name       string
	namespace  string
	obj        any // *appsv1.Deployment, *corev1.Service, *podMonitor, ...
}

func (o object) String() string {
	return fmt.Sprintf("%s: %s %s/%s", o.overlay, o.kind, o.namespace, o.name)
}

// workload is a pod template and where it came from.
type workload struct {
	object
	labels map[string]string
	pod    *corev1.PodSpec
	annot  map[string]string
}

// decoders make a new value of each kind the manifests may hold. A kind not
// here is an error: a manifest nobody checks is a manifest that drifts.
var decoders = map[string]func() any{
	"v1/ServiceAccount":                   func() any { return new(corev1.ServiceAccount) },
	"v1/Service":                          func() any { return new(corev1.Service) },
	"v1/ConfigMap":                        func() any { return new(corev1.ConfigMap) },
	"apps/v1/Deployment":                  func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                        func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":       func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy":  func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/PodMonitor": func() any { return new(podMonitor) },
}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]object{}
)

// render builds an overlay with the kustomize API, as `kubectl apply -k`
// does, and decodes every object strictly: an unknown or duplicated field is
// an error.
func render(t *testing.T, overlay string) []object {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if objs, ok := renderCache[overlay]; ok {
		return objs
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	dir, err := filepath.Abs(filepath.Join("kubernetes", "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	var objs []object
	for _, r := range resMap.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", overlay, r.CurId(), err)
		}
		key := r.GetApiVersion() + "/" + r.GetKind()
		newObj, ok := decoders[key]
		if !ok {
			t.Fatalf("%s: %s %s: no strict decoder for %s; add its API type to decoders", overlay, r.GetKind(), r.GetName(), key)
		}
		v := newObj()
		if err := yaml.UnmarshalStrict(y, v); err != nil {
			t.Fatalf("%s: %s %s: strict decode into %T: %v\n%s", overlay, r.GetKind(), r.GetName(), v, err, y)
		}
		objs = append(objs, object{overlay: overlay, apiVersion: r.GetApiVersion(), kind: r.GetKind(),
			name: r.GetName(), namespace: r.GetNamespace(), obj: v})
	}
	renderCache[overlay] = objs
	return objs
}

// renderAll renders every overlay.
func renderAll(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, o := range overlays {
		all = append(all, render(t, o)...)
	}
	return all
}

// workloads returns the pod templates among objs.
func workloads(objs []object) []workload {
	var ws []workload
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{o, v.Spec.Template.Labels, &v.Spec.Template.Spec, v.Spec.Template.Annotations})
		case *batchv1.Job:
			ws = append(ws, workload{o, v.Spec.Template.Labels, &v.Spec.Template.Spec, v.Spec.Template.Annotations})
		}
	}
	return ws
}

// allContainers returns a pod's init containers, then its containers.
func allContainers(p *corev1.PodSpec) []*corev1.Container {
	var cs []*corev1.Container
	for i := range p.InitContainers {
		cs = append(cs, &p.InitContainers[i])
	}
	for i := range p.Containers {
		cs = append(cs, &p.Containers[i])
	}
	return cs
}

// selects reports whether a label selector's matchLabels all hold in labels.
func selects(match, labels map[string]string) bool {
	if len(match) == 0 {
		return false // a selector of everything is never what these manifests mean
	}
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// selected returns the workloads that the object o selects with match: in
// o's namespace and overlay.
func selected(objs []object, o object, match map[string]string) []workload {
	var out []workload
	for _, w := range workloads(objs) {
		if w.overlay == o.overlay && w.namespace == o.namespace && selects(match, w.labels) {
			out = append(out, w)
		}
	}
	return out
}

// containerPort finds a port of a pod by name or number.
func containerPort(p *corev1.PodSpec, port string) (*corev1.Container, *corev1.ContainerPort) {
	for _, c := range allContainers(p) {
		for i := range c.Ports {
			cp := &c.Ports[i]
			if cp.Name == port || fmt.Sprint(cp.ContainerPort) == port {
				return c, cp
			}
		}
	}
	return nil, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestOverlaysRenderAndDecodeStrictly(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov, func(t *testing.T) {
			objs := render(t, ov)
			if len(objs) == 0 {
				t.Fatal("renders nothing")
			}
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.kind]++
			}
			t.Logf("%d objects: %v", len(objs), kinds)
		})
	}
}

// TestStrictDecodingRejectsUnknownFields shows the decoding above would catch
// a misspelt field, which Kubernetes' own client-side apply would drop.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          image: i\n          readinesProbe: {}\n")
	if err := yaml.UnmarshalStrict(bad, new(appsv1.Deployment)); err == nil {
		t.Fatal("a misspelt field (readinesProbe) decoded without error")
	}
	badPM := []byte("apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec:\n  podMetricsEndpoints:\n    - port: a\n      bearerToken: x\n")
	if err := yaml.UnmarshalStrict(badPM, new(podMonitor)); err == nil {
		t.Fatal("a PodMonitor field outside the schema decoded without error")
	}
}
