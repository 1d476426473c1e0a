package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

var deployDir = filepath.Join("..", "..", "deploy")

// kustomize builds a kustomization directory into unstructured objects.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// TestDeploy applies deploy/ to a real kube-apiserver, checks the
// aggregator's ServiceAccount can read all it needs and no secrets, and runs
// the aggregator with that ServiceAccount's token.
func TestDeploy(t *testing.T) {
	bins := harness.Build(t)
	cp := harness.StartControlPlane(t, bins)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	apply := func(objs []*unstructured.Unstructured, dryRun bool) {
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %v", gvk, err)
			}
			ri := dyn.Resource(m.Resource)
			var r dynamic.ResourceInterface = ri
			if o.GetNamespace() != "" {
				r = ri.Namespace(o.GetNamespace())
			}
			data, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			opts := metav1.PatchOptions{FieldManager: "kubeatlas-test"}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			if _, err := r.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts); err != nil {
				t.Errorf("applying %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	base := kustomize(t, filepath.Join(deployDir, "base"))
	kinds := map[string]bool{}
	for _, o := range base {
		kinds[o.GetKind()] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} {
		if !kinds[k] {
			t.Errorf("deploy/base has no %s", k)
		}
	}
	apply(base, false)
	apply(kustomize(t, filepath.Join(deployDir, "overlays", "insecure")), true)
	fleet := kustomize(t, filepath.Join(deployDir, "overlays", "fleet"))
	fleetKinds := map[string]bool{}
	for _, o := range fleet {
		fleetKinds[o.GetKind()+"/"+o.GetName()] = o.GetNamespace() == "kubeatlas"
	}
	for _, k := range []string{"StatefulSet/nats", "Deployment/kubeatlas-fleet-view", "Deployment/kubeatlas-aggregator", "ConfigMap/nats-config"} {
		if !fleetKinds[k] {
			t.Errorf("deploy/overlays/fleet has no %s in namespace kubeatlas", k)
		}
	}
	apply(fleet, true)
	if t.Failed() {
		t.FailNow()
	}

	sa := "system:serviceaccount:kubeatlas:kubeatlas-aggregator"
	can := func(group, resource, verb string) bool {
		r, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kubeatlas", "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{Group: group, Resource: resource, Verb: verb},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	for _, r := range [][2]string{{"", "nodes"}, {"", "pods"}, {"", "namespaces"}, {"apps", "daemonsets"}, {"apps", "replicasets"}, {"apps", "deployments"}, {"apps", "statefulsets"}, {"batch", "jobs"}} {
		for _, verb := range []string{"get", "list", "watch"} {
			if !can(r[0], r[1], verb) {
				t.Errorf("the aggregator may not %s %s", verb, r[1])
			}
		}
		if can(r[0], r[1], "delete") || can(r[0], r[1], "create") {
			t.Errorf("the aggregator may change %s", r[1])
		}
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if can("", "secrets", verb) {
			t.Errorf("the aggregator may %s secrets", verb)
		}
	}

	// The aggregator runs on that ServiceAccount's token against the real API.
	tok, err := cp.Client.CoreV1().ServiceAccounts("kubeatlas").CreateToken(ctx, "kubeatlas-aggregator",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %s, insecure-skip-tls-verify: true}}]
users: [{name: sa, user: {token: %s}}]
contexts: [{name: c, context: {cluster: c, user: sa}}]
current-context: c
`, cp.URL, tok.Status.Token)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := harness.RegisterNode(ctx, cp.Client, "node-1", harness.KubernetesVersion); err != nil {
		t.Fatal(err)
	}
	agg := harness.StartAggregator(t, bins, "--kube", "prod="+kc)
	err = harness.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		resp, err := agg.Client.GetCluster(ctx, &v1.GetClusterRequest{Name: "prod"})
		if err != nil {
			return err
		}
		if c := resp.Cluster; !c.ApiConnected || c.Uid == "" || c.NodeCount != 1 {
			return fmt.Errorf("cluster %v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(harness.Tail(agg.Proc.Log, 200), "forbidden") {
		t.Errorf("the aggregator met a forbidden request:\n%s", harness.Tail(agg.Proc.Log, 30))
	}
}

func ptr[T any](v T) *T { return &v }
