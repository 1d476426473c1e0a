package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeatlas/kubeatlas/agent/collect/simproc"
	"github.com/kubeatlas/kubeatlas/aggregator/join"
	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestMain(m *testing.M) {
	harness.MaybeRun()
	os.Exit(m.Run())
}

var seedDir = filepath.Join("..", "..", "examples", "seed-cluster")

type env struct {
	bins  harness.Binaries
	cp    *harness.ControlPlane
	agg   *harness.Aggregator
	api   *harness.APIState
	nodes map[string]*harness.Node
	scen  map[string]harness.NodeScenario
}

// cli runs the kubeatlas CLI against the aggregator and decodes its JSON.
func (e *env) cli(t *testing.T, into proto.Message, args ...string) error {
	t.Helper()
	cmd := exec.Command(e.bins.CLI, append([]string{"--server", e.agg.Addr, "--insecure", "-o", "json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("kubeatlas %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return err
	}
	return protojson.Unmarshal(out, into)
}

// answer groups component instances as the reference answer table does.
func answer(insts []*v1.ComponentInstance) map[string]string {
	rows := map[string][]string{}
	for _, in := range insts {
		from := ""
		if in.Owner != nil && in.How != v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD {
			from = in.Owner.Kind + " " + in.Owner.Namespace + "/" + in.Owner.Name
		}
		if in.SystemdUnit != "" {
			from = in.SystemdUnit
		}
		k := fmt.Sprintf("%s|%s|%s|%s", in.Component, in.Implementation, join.HowWords(in.How), from)
		rows[k] = append(rows[k], in.Node)
	}
	out := map[string]string{}
	for k, v := range rows {
		sort.Strings(v)
		out[k] = strings.Join(v, ",")
	}
	return out
}

const all = "test,zzk-1,zzk-2,zzk-3,zzk-4,zzk-5"

// referenceAnswer is the answer table of shared/reference/seed-cluster.md.
var referenceAnswer = map[string]string{
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

func diffAnswer(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("unexpected %s on %s", k, v))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func (e *env) findings(t *testing.T) ([]string, error) {
	var resp v1.ListFindingsResponse
	if err := e.cli(t, &resp, "get", "findings"); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range resp.Findings {
		out = append(out, f.Node+" "+strings.TrimPrefix(f.Kind.String(), "FINDING_KIND_")+" "+f.Subject)
	}
	sort.Strings(out)
	return out, nil
}

func setup(t *testing.T) *env {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the reference cluster needs root for namespaces and cgroups")
	}
	e := &env{bins: harness.Build(t), nodes: map[string]*harness.Node{}, scen: map[string]harness.NodeScenario{}}
	cg, err := simproc.NewCgroups(fmt.Sprintf("kubeatlas-e2e-%d", os.Getpid()))
	if err != nil {
		t.Fatalf("making the test's cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	e.cp = harness.StartControlPlane(t, e.bins)
	ctx := context.Background()
	e.api, err = harness.LoadAPI(ctx, e.cp.Client, filepath.Join(seedDir, "api"))
	if err != nil {
		t.Fatal(err)
	}
	e.agg = harness.StartAggregator(t, e.bins, "--kube", "seed="+e.cp.Kubeconfig, "--expire-after", "8s")
	for _, sc := range harness.SeedScenario(t, seedDir, e.api) {
		n := harness.StartNode(t, sc.Name, cg, sc.HostFiles)
		for _, p := range sc.Processes {
			rel, err := p.CgroupPath(e.api)
			if err != nil {
				t.Fatal(err)
			}
			n.Start(t, p.ID, p.Argv, rel)
		}
		n.StartAgent(t, e.bins, "seed", e.agg.Addr)
		e.nodes[sc.Name], e.scen[sc.Name] = n, sc
	}
	return e
}

// TestReferenceCluster runs the reference cluster end to end: a real
// kube-apiserver holding its objects, six simulated nodes with real agents,
// a real aggregator, and the CLI and grpcurl as clients.
func TestReferenceCluster(t *testing.T) {
	e := setup(t)
	t.Run("answer", func(t *testing.T) { checkAnswer(t, e, 90*time.Second) })
	t.Run("grpcurl", func(t *testing.T) { grpcurl(t, e) })
	t.Run("aggregator-killed", func(t *testing.T) {
		e.agg.Proc.Kill()
		start := time.Now()
		e.agg.Start(t)
		checkAnswer(t, e, 30*time.Second)
		t.Logf("state complete %v after the restart", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("live-changes", func(t *testing.T) {
		ctx := context.Background()
		// A DaemonSet pod is deleted (with no grace period, as the kubelet
		// finishes a deletion): its process now belongs to a pod the API does not know.
		if err := e.cp.Client.CoreV1().Pods("kube-system").Delete(ctx, "kube-proxy-xgvz8", now); err != nil {
			t.Fatal(err)
		}
		// A static pod's process is replaced by one with different flags.
		test := e.nodes["test"]
		var sched harness.SimProcess
		for _, p := range e.scen["test"].Processes {
			if len(p.Argv) > 0 && p.Argv[0] == "kube-scheduler" {
				sched = p
			}
		}
		rel, _ := sched.CgroupPath(e.api)
		test.Stop(t, sched.ID)
		test.Start(t, sched.ID+"-v4", append(append([]string(nil), sched.Argv...), "--v=4"), rel)
		// An agent stops.
		e.nodes["zzk-5"].StopAgent(t)
		want := []string{
			"test MANIFEST_DRIFT /etc/kubernetes/manifests/kube-scheduler.yaml/kube-scheduler",
			"zzk-1 UNKNOWN_POD_PROCESS",
			"zzk-5 STALE_AGENT zzk-5",
		}
		// Two scan intervals (1s each), plus the stale threshold of three
		// heartbeat intervals, plus slack for a loaded machine.
		start := time.Now()
		if err := e.waitFindings(t, 15*time.Second, want...); err != nil {
			t.Fatal(err)
		}
		t.Logf("changes seen %v after they were made", time.Since(start).Round(100*time.Millisecond))
		var node v1.GetNodeResponse
		if err := harness.Eventually(20*time.Second, 500*time.Millisecond, func() error {
			if err := e.cli(t, &node, "describe", "node", "zzk-5"); err != nil {
				return err
			}
			if node.Node.AgentState != v1.AgentState_AGENT_STATE_EXPIRED {
				return fmt.Errorf("zzk-5 agent %v", node.Node.AgentState)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if node.Node.ProcessCount == 0 || len(node.Components) == 0 {
			t.Errorf("an expired node lost its last report: %v", node.Node)
		}
	})
	t.Run("apiserver-restart", func(t *testing.T) {
		e.cp.StopAPIServer()
		e.cp.StartAPIServer(t)
		start := time.Now()
		if err := e.cp.Client.CoreV1().Pods("kube-system").Delete(context.Background(), "kube-proxy-kzspb", now); err != nil {
			t.Fatal(err)
		}
		// The informers relist with backoff after the API server comes back.
		if err := e.waitFindings(t, 120*time.Second, "zzk-4 UNKNOWN_POD_PROCESS"); err != nil {
			t.Fatal(err)
		}
		t.Logf("informers caught up %v after the API server came back", time.Since(start).Round(100*time.Millisecond))
	})
}

var now = metav1.DeleteOptions{GracePeriodSeconds: new(int64)}

// waitFindings waits until every wanted finding prefix is listed.
func (e *env) waitFindings(t *testing.T, timeout time.Duration, want ...string) error {
	return harness.Eventually(timeout, 500*time.Millisecond, func() error {
		got, err := e.findings(t)
		if err != nil {
			return err
		}
		joined := strings.Join(got, "\n")
		for _, w := range want {
			if !strings.Contains(joined, w) {
				return fmt.Errorf("finding %q missing from:\n%s", w, joined)
			}
		}
		return nil
	})
}

func checkAnswer(t *testing.T, e *env, timeout time.Duration) {
	t.Helper()
	var last string
	err := harness.Eventually(timeout, time.Second, func() error {
		var comps v1.ListComponentsResponse
		if err := e.cli(t, &comps, "get", "components"); err != nil {
			return err
		}
		if d := diffAnswer(answer(comps.Components), referenceAnswer); d != "" {
			last = d
			return fmt.Errorf("answer differs:\n%s", d)
		}
		for _, in := range comps.Components {
			if !in.HasProcess || in.Pid == 0 {
				return fmt.Errorf("%s on %s has no process", in.Component, in.Node)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nlast difference:\n%s", err, last)
	}
	var cl v1.GetClusterResponse
	if err := e.cli(t, &cl, "describe", "cluster", "seed"); err != nil {
		t.Fatal(err)
	}
	c := cl.Cluster
	if c.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD || strings.Join(c.ControlPlaneNodes, ",") != "test" || len(c.ModeEvidence) == 0 ||
		!c.ApiConnected || c.Uid == "" || c.ReportingNodeCount != 6 {
		t.Errorf("cluster: %v", c)
	}
	got, err := e.findings(t)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"test HIGH_RESTART_COUNT kube-system/kube-apiserver-test/kube-apiserver",
		"test HIGH_RESTART_COUNT kube-system/kube-controller-manager-test/kube-controller-manager",
		"test HIGH_RESTART_COUNT kube-system/kube-scheduler-test/kube-scheduler",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
