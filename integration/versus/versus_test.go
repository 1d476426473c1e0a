// Package versus measures kubeatlas against the tools operators use today,
// on the same real cluster in the same run.
package versus

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/integration/load"
)

// The cluster: nodes, and pods per node (kube-proxy, flannel and
// Deployment replicas).
const (
	nodes       = 1000
	podsPerNode = 30
	runs        = 21
)

// BenchmarkWhereVsKubectl answers "where does kube-proxy run" on a real
// kube-apiserver holding 1,000 nodes and 30,000 pods, twice: with
// `kubeatlas where kube-proxy` against an aggregator that watches that API
// server, and with `kubectl get pods -A -l k8s-app=kube-proxy -o wide`
// against the API server itself. Both are the real command-line programs,
// run alternately, each timed from start to exit. It reports the medians, the
// p90s and their ratio.
//
//	cd integration && go test -run '^$' -bench WhereVsKubectl -benchtime 1x -timeout 30m ./versus/
func BenchmarkWhereVsKubectl(b *testing.B) {
	bins := harness.Build(b)
	cp := harness.StartControlPlane(b, bins)
	ctx := context.Background()
	t0 := time.Now()
	if err := populate(ctx, cp.Client); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d nodes and %d pods in %v", nodes, nodes*podsPerNode, time.Since(t0).Round(time.Second))
	agg := harness.StartAggregator(b, bins, "--kube", "versus="+cp.Kubeconfig, "--log-level", "warn")
	t0 = time.Now()
	if err := harness.Eventually(5*time.Minute, time.Second, func() error {
		n, err := load.Where(ctx, agg.Client, "kube-proxy")
		if err == nil && n != nodes {
			err = fmt.Errorf("%d kube-proxy instances so far", n)
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("aggregator synced in %v", time.Since(t0).Round(time.Millisecond))

	cache := b.TempDir()
	kubectl := []string{bins.Kubectl, "--kubeconfig", cp.Kubeconfig, "--cache-dir", cache, "get", "pods", "-A", "-l", "k8s-app=kube-proxy", "-o", "wide"}
	atlas := []string{bins.CLI, "--server", agg.Addr, "--insecure", "where", "kube-proxy"}
	// Both print a header and one line per node.
	check := func(name string, out []byte) {
		if lines := bytes.Count(out, []byte("\n")); lines != nodes+1 {
			b.Fatalf("%s printed %d lines, want %d:\n%s", name, lines, nodes+1, tail(out))
		}
	}
	var tk, ta []time.Duration
	b.ResetTimer()
	for i := 0; i < runs+1; i++ {
		dk, out, err := timed(kubectl)
		if err != nil {
			b.Fatalf("kubectl: %v\n%s", err, out)
		}
		check("kubectl", out)
		da, out, err := timed(atlas)
		if err != nil {
			b.Fatalf("kubeatlas: %v\n%s", err, out)
		}
		check("kubeatlas", out)
		if i == 0 {
			continue // warm-up: kubectl fills its discovery cache
		}
		tk, ta = append(tk, dk), append(ta, da)
	}
	b.StopTimer()
	mk, ma := pct(tk, 50), pct(ta, 50)
	b.ReportMetric(ms(ma), "kubeatlas-p50-ms")
	b.ReportMetric(ms(pct(ta, 90)), "kubeatlas-p90-ms")
	b.ReportMetric(ms(mk), "kubectl-p50-ms")
	b.ReportMetric(ms(pct(tk, 90)), "kubectl-p90-ms")
	b.ReportMetric(float64(mk)/float64(ma), "kubectl/kubeatlas")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func tail(out []byte) string {
	s := string(out)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// timed runs a program to its exit and says how long it took.
func timed(argv []string) (time.Duration, []byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	if err != nil {
		return d, append(out.Bytes(), errb.Bytes()...), err
	}
	return d, out.Bytes(), nil
}

// populate creates the nodes, the workloads and their pods, many at a time.
func populate(ctx context.Context, cs kubernetes.Interface) error {
	namespaces := []string{"kube-system", "shop", "payments", "search", "analytics"}
	for _, ns := range namespaces[1:] {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	work := make(chan func() error)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < 48; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	run := func(fs []func() error) error {
		for _, f := range fs {
			select {
			case work <- f:
			case err := <-errs:
				return err
			}
		}
		return nil
	}
	var fs []func() error
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("node-%04d", i)
		fs = append(fs, func() error {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
			_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
			return err
		})
	}
	if err := run(fs); err != nil {
		return err
	}
	// Owners: two DaemonSets, and a Deployment with its ReplicaSet per app.
	ds := func(name, app string) (*appsv1.DaemonSet, error) {
		labels := map[string]string{"k8s-app": app}
		return cs.AppsV1().DaemonSets("kube-system").Create(ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: labels},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "registry.k8s.io/" + app}}}}},
		}, metav1.CreateOptions{})
	}
	proxy, err := ds("kube-proxy", "kube-proxy")
	if err != nil {
		return err
	}
	flannel, err := ds("kube-flannel-ds", "flannel")
	if err != nil {
		return err
	}
	const apps = 28 // one replica of each per node
	rss := make([]*appsv1.ReplicaSet, apps)
	for a := range rss {
		ns := namespaces[1+a%(len(namespaces)-1)]
		name := fmt.Sprintf("app-%02d", a)
		labels := map[string]string{"app": name}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}}}
		dep, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		yes := true
		rss[a], err = cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-5d8f7c9b6", Namespace: ns, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: &yes}}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
	}
	owned := func(kind, name string, uid any) []metav1.OwnerReference {
		yes := true
		ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, Controller: &yes}
		switch o := uid.(type) {
		case *appsv1.DaemonSet:
			ref.UID = o.UID
		case *appsv1.ReplicaSet:
			ref.UID = o.UID
		}
		return []metav1.OwnerReference{ref}
	}
	fs = fs[:0]
	for i := 0; i < nodes; i++ {
		node := fmt.Sprintf("node-%04d", i)
		pod := func(ns, name string, labels map[string]string, owner []metav1.OwnerReference, c corev1.Container) func() error {
			return func() error {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: owner},
					Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}},
				}
				_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				return err
			}
		}
		fs = append(fs,
			pod("kube-system", fmt.Sprintf("kube-proxy-%05d", i), map[string]string{"k8s-app": "kube-proxy"}, owned("DaemonSet", proxy.Name, proxy),
				corev1.Container{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.37.2",
					Command: []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=" + node}}),
			pod("kube-system", fmt.Sprintf("kube-flannel-ds-%05d", i), map[string]string{"k8s-app": "flannel"}, owned("DaemonSet", flannel.Name, flannel),
				corev1.Container{Name: "kube-flannel", Image: "ghcr.io/flannel-io/flannel:v0.26.1",
					Command: []string{"/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"}}))
		for a, rs := range rss {
			fs = append(fs, pod(rs.Namespace, fmt.Sprintf("%s-%05d", rs.Name, i), map[string]string{"app": fmt.Sprintf("app-%02d", a)},
				owned("ReplicaSet", rs.Name, rs), corev1.Container{Name: "app", Image: "nginx:1.27"}))
		}
	}
	if err := run(fs); err != nil {
		return err
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if got := len(fs); got != nodes*podsPerNode {
		return fmt.Errorf("made %d pods, want %d", got, nodes*podsPerNode)
	}
	return nil
}
