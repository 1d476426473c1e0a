package kube

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestParseSource(t *testing.T) {
	for in, want := range map[string]Source{
		"prod=/etc/kube/config":          {Name: "prod", Kubeconfig: "/etc/kube/config"},
		"prod=/etc/kube/config:admin@eu": {Name: "prod", Kubeconfig: "/etc/kube/config", Context: "admin@eu"},
		"local=in-cluster":               {Name: "local"},
	} {
		got, err := ParseSource(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "noequals", "=x", "x="} {
		if _, err := ParseSource(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadObjects(t *testing.T) {
	objs, err := ReadObjects("../../examples/seed-cluster/api")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Nodes) != 6 || len(objs.Pods) != 18 || len(objs.Workloads) != 4 || len(objs.Namespaces) != 5 {
		t.Errorf("read %d nodes, %d pods, %d workloads, %d namespaces", len(objs.Nodes), len(objs.Pods), len(objs.Workloads), len(objs.Namespaces))
	}
}

// Objects are decoded by apiVersion and kind, as kubectl prints them: a v1
// List of mixed kinds, typed lists, single objects and streams; kinds
// kubeatlas does not use, and versions client-go does not know, are counted.
func TestReadObjectsByAPIVersion(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-list.yaml", `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p1, namespace: kube-system}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: ds, namespace: kube-system}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
`)
	write("b-typed.json", `{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p2"}},{"metadata":{"name":"p3"}}]}`)
	write("c-stream.yaml", `apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: old}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
`)
	objs, err := ReadObjects(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Pods) != 3 || len(objs.Workloads) != 2 || len(objs.Nodes) != 1 || objs.Skipped != 3 {
		t.Fatalf("%d pods, %d workloads, %d nodes, %d skipped", len(objs.Pods), len(objs.Workloads), len(objs.Nodes), objs.Skipped)
	}
	if objs.Pods[1].Name != "p2" {
		t.Errorf("typed list item %q", objs.Pods[1].Name)
	}
	write("c2-endpoints.yaml", `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kubernetes, namespace: default, labels: {kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints:
- addresses: [172.16.0.2]
  conditions: {ready: true}
- addresses: [172.16.0.3]
  conditions: {ready: false}
`)
	if objs, err := ReadObjects(dir); err != nil || strings.Join(objs.APIEndpoints, ",") != "172.16.0.2" {
		t.Fatalf("API endpoints %v, %v", objs.APIEndpoints, err)
	}
	write("d-bad.yaml", "metadata: {name: nokind}\n")
	if _, err := ReadObjects(dir); err == nil || !strings.Contains(err.Error(), "d-bad.yaml: document 1") {
		t.Fatalf("an object without a kind: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatcherWiring feeds informers from client-go's fake clientset and
// checks objects reach the engine and deletions leave it.
func TestWatcherWiring(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system", UID: "ds-uid"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy-a", Namespace: "kube-system", UID: "pod-uid",
			OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "kube-proxy", UID: types.UID("ds-uid"), Controller: ptr(true)}}},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.30.0", Command: []string{"/usr/local/bin/kube-proxy"}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.30.0"}}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: "ks-uid"}}
	cs := fake.NewClientset(ds, pod, node, ns)
	e := synth.NewApplier()
	w := &Watcher{Source: Source{Name: "c1"}, Applier: e}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx, cs, "fake") }()
	defer func() { cancel(); <-done }()
	components := func() []*v1.ComponentInstance {
		var out []*v1.ComponentInstance
		for c := range e.Store().View().ComponentsOn(nil, "c1", "n1") {
			out = append(out, c.Instance())
		}
		return out
	}
	waitFor(t, "the kube-proxy instance", func() bool {
		c := components()
		return len(c) == 1 && c[0].How == v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET && c[0].Owner.Name == "kube-proxy"
	})
	waitFor(t, "the cluster identity", func() bool {
		c, _ := e.Store().Cluster(nil, "c1")
		return c != nil && c.UID == "ks-uid" && c.APIConnected
	})
	if err := cs.CoreV1().Pods("kube-system").Delete(ctx, "kube-proxy-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instance to go", func() bool { return len(components()) == 0 })
}

func ptr[T any](v T) *T { return &v }
