package bundle

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func loadSeed(t *testing.T) *apply.Applier {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(st, apply.Config{})
	sum, err := Load(e, "../../examples/seed-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cluster != "seed" || sum.Nodes != 6 || sum.Pods != 18 || sum.Snapshots != 6 {
		t.Fatalf("summary = %+v", sum)
	}
	return e
}

// answerRows reduces the components to "component|implementation|how|owner" -> nodes.
func answerRows(e *apply.Applier) map[string][]string {
	rows := map[string][]string{}
	for c := range e.Store().View().ComponentsWithPrefix(nil, state.ComponentKeyPrefix("seed", "")) {
		in := c.Instance()
		owner := ""
		if in.Owner != nil && in.How != v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD {
			owner = in.Owner.Kind + " " + in.Owner.Namespace + "/" + in.Owner.Name
		}
		if in.SystemdUnit != "" {
			owner = in.SystemdUnit
		}
		k := fmt.Sprintf("%s|%s|%s|%s", in.Component, in.Implementation, in.How.Words(), owner)
		rows[k] = append(rows[k], in.Node)
	}
	for k := range rows {
		sort.Strings(rows[k])
	}
	return rows
}

func TestSeedClusterAnswer(t *testing.T) {
	e := loadSeed(t)
	all := "test,zzk-1,zzk-2,zzk-3,zzk-4,zzk-5"
	want := map[string]string{
		"kube-apiserver|kube-apiserver|static pod|":                        "test",
		"etcd|etcd|static pod|":                                            "test",
		"kube-controller-manager|kube-controller-manager|static pod|":      "test",
		"kube-scheduler|kube-scheduler|static pod|":                        "test",
		"kubelet|kubelet|host process|kubelet.service":                     all,
		"kube-proxy|kube-proxy|DaemonSet|DaemonSet kube-system/kube-proxy": all,
		"cni|flannel|DaemonSet|DaemonSet kube-flannel/kube-flannel-ds":     all,
		"cluster-dns|coredns|Deployment|Deployment kube-system/coredns":    "test,test",
		"container-runtime|containerd|host process|containerd.service":     all,
		"container-runtime|dockerd|host process|docker.service":            all,
	}
	got := answerRows(e)
	for k, nodes := range want {
		if g := strings.Join(got[k], ","); g != nodes {
			t.Errorf("%s: nodes %q, want %q", k, g, nodes)
		}
	}
	for k, nodes := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected answer row %s on %v", k, nodes)
		}
	}
	c, err := e.Store().Cluster(nil, "seed")
	if err != nil || c == nil {
		t.Fatalf("cluster: %v %v", c, err)
	}
	if c.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD {
		t.Errorf("mode = %v", c.Mode)
	}
	if strings.Join(c.ControlPlaneNodes, ",") != "test" {
		t.Errorf("control plane nodes = %v", c.ControlPlaneNodes)
	}
}

func TestSeedClusterFindings(t *testing.T) {
	e := loadSeed(t)
	var got []string
	for row := range e.Store().View().FindingsOf(nil, "seed") {
		f := row.Finding
		got = append(got, f.Node+" "+strings.TrimPrefix(f.Kind.String(), "FINDING_KIND_")+" "+f.Subject)
	}
	sort.Strings(got)
	want := []string{
		"test HIGH_RESTART_COUNT kube-system/kube-apiserver-test/kube-apiserver",
		"test HIGH_RESTART_COUNT kube-system/kube-controller-manager-test/kube-controller-manager",
		"test HIGH_RESTART_COUNT kube-system/kube-scheduler-test/kube-scheduler",
		"zzk-1 CLOCK_SKEW zzk-1",
		"zzk-2 CLOCK_SKEW zzk-2",
		"zzk-3 CLOCK_SKEW zzk-3",
		"zzk-4 CLOCK_SKEW zzk-4",
		"zzk-5 CLOCK_SKEW zzk-5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
