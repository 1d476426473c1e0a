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

	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/internal/simproc"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestMain(m *testing.M) { harness.RunTests(m) }

var seedDir = filepath.Join("..", "..", "examples", "seed-cluster")

type env struct {
	bins  harness.Binaries
	cp    *harness.ControlPlane
	cp2   *harness.ControlPlane // the standalone-binaries cluster
	proxy *harness.Proxy        // between zzk-2's agent and the aggregator
	cg    *simproc.Cgroups
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
		k := fmt.Sprintf("%s|%s|%s|%s", in.Component, in.Implementation, in.How.Words(), from)
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
	if err := e.cli(t, &resp, "--cluster", "seed", "get", "findings"); err != nil {
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
	cg := harness.TestCgroups(t, "e2e")
	e.cg = cg
	e.cp = harness.StartControlPlane(t, e.bins)
	e.cp2 = harness.StartControlPlane(t, e.bins)
	ctx := context.Background()
	var err error
	e.api, err = harness.LoadAPI(ctx, e.cp.Client, filepath.Join(seedDir, "api"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sa-1", "sa-2"} {
		if err := harness.RegisterNode(ctx, e.cp2.Client, n, harness.KubernetesVersion); err != nil {
			t.Fatal(err)
		}
	}
	e.agg = harness.StartAggregator(t, e.bins, "--kube", "seed="+e.cp.Kubeconfig, "--kube", "standalone="+e.cp2.Kubeconfig, "--expire-after", "8s")
	// The workers' clocks run ahead, as in the reference cluster.
	skew := harness.StartSkewProxy(t, e.agg.Addr, 2*time.Hour+13*time.Minute+7*time.Second)
	e.proxy = harness.StartProxy(t, skew.Addr)
	e.nodes, e.scen = harness.StartSeed(t, e.bins, cg, seedDir, e.api, func(node string) string {
		switch {
		case node == "zzk-2":
			return e.proxy.Addr
		case strings.HasPrefix(node, "zzk-"):
			return skew.Addr
		}
		return e.agg.Addr
	})
	for name, procs := range standalone {
		n := harness.StartNode(t, name, cg, "")
		for i, argv := range procs {
			n.Start(t, fmt.Sprintf("%s-%d", name, i), strings.Fields(argv), "system.slice/"+unitOf(argv))
		}
		n.StartAgent(t, e.bins, "standalone", e.agg.Addr)
		e.nodes[name] = n
	}
	return e
}

// standalone is a two-node cluster whose control plane runs as host daemons,
// as a from-scratch binary install lays it out.
var standalone = map[string][]string{
	"sa-1": {
		"/usr/local/bin/etcd --name=sa-1 --data-dir=/var/lib/etcd --listen-client-urls=https://127.0.0.1:2379",
		"/usr/local/bin/kube-apiserver --etcd-servers=https://root:s3cret-pass@127.0.0.1:2379 --secure-port=6443 --token-auth-file=/etc/kubernetes/tokens.csv --service-cluster-ip-range=10.32.0.0/24",
		"/usr/local/bin/kube-controller-manager --kubeconfig=/var/lib/kubernetes/kube-controller-manager.kubeconfig --leader-elect=true",
		"/usr/local/bin/kube-scheduler --config=/etc/kubernetes/config/kube-scheduler.yaml",
		"/usr/local/bin/kubelet --config=/var/lib/kubelet/kubelet-config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
		"/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/kube-proxy-config.yaml",
		"/usr/bin/containerd",
	},
	"sa-2": {
		"/usr/local/bin/kubelet --config=/var/lib/kubelet/kubelet-config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
		"/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/kube-proxy-config.yaml",
		"/usr/bin/containerd",
	},
}

func unitOf(argv string) string {
	return filepath.Base(strings.Fields(argv)[0]) + ".service"
}

var standaloneAnswer = map[string]string{
	"kube-apiserver|kube-apiserver|host process|kube-apiserver.service":                            "sa-1",
	"etcd|etcd|host process|etcd.service":                                                          "sa-1",
	"kube-controller-manager|kube-controller-manager|host process|kube-controller-manager.service": "sa-1",
	"kube-scheduler|kube-scheduler|host process|kube-scheduler.service":                            "sa-1",
	"kubelet|kubelet|host process|kubelet.service":                                                 "sa-1,sa-2",
	"kube-proxy|kube-proxy|host process|kube-proxy.service":                                        "sa-1,sa-2",
	"container-runtime|containerd|host process|containerd.service":                                 "sa-1,sa-2",
}

// TestReferenceCluster runs the reference cluster end to end: a real
// kube-apiserver holding its objects, six simulated nodes with real agents,
// a real aggregator, and the CLI and grpcurl as clients.
func TestReferenceCluster(t *testing.T) {
	e := setup(t)
	t.Run("answer", func(t *testing.T) {
		checkAnswer(t, e, 90*time.Second)
		checkStandalone(t, e)
	})
	t.Run("grpcurl", func(t *testing.T) { grpcurl(t, e) })
	t.Run("certificates", func(t *testing.T) { certificates(t, e) })
	t.Run("aggregator-killed", func(t *testing.T) {
		e.agg.Proc.Kill()
		start := time.Now()
		e.agg.Start(t)
		checkAnswer(t, e, 30*time.Second)
		t.Logf("state complete %v after the restart", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("bad-agents", func(t *testing.T) {
		badAgents(t, e)
		checkAnswer(t, e, 10*time.Second)
	})
	t.Run("hostile-agent", func(t *testing.T) {
		// An adversarial agent process attacks for a while beside the
		// honest ones: the answer stays exact and the aggregator lives.
		p := harness.StartProcess(t, t.TempDir(), "kubeatlas-hostile", e.bins.Hostile,
			"--server", e.agg.Addr, "--cluster", "hostile", "--node", "evil", "--duration", "15s")
		if err := harness.Eventually(60*time.Second, 500*time.Millisecond, func() error {
			if !p.Exited() {
				return fmt.Errorf("still attacking")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("the attack:\n%s", harness.Tail(p.Log, 20))
		if e.agg.Proc.Exited() {
			t.Fatalf("the aggregator died:\n%s", harness.Tail(e.agg.Proc.Log, 30))
		}
		checkAnswer(t, e, 30*time.Second)
	})
	t.Run("link-cut", func(t *testing.T) {
		e.proxy.Cut()
		if err := e.waitFindings(t, 15*time.Second, "zzk-2 STALE_AGENT"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Second)
		if err := e.proxy.Heal(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// The agent retries with backoff of up to 60s.
		checkAnswer(t, e, 90*time.Second)
		t.Logf("correct again %v after the link healed", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("node-added", func(t *testing.T) {
		ctx := context.Background()
		if err := harness.RegisterNode(ctx, e.cp.Client, "zzk-6", "v1.27.0"); err != nil {
			t.Fatal(err)
		}
		if err := e.waitFindings(t, 15*time.Second, "zzk-6 NODE_WITHOUT_AGENT"); err != nil {
			t.Fatal(err)
		}
		n := harness.StartNode(t, "zzk-6", e.cg, filepath.Join(seedDir, "hosts", "zzk-1"))
		for _, p := range e.scen["zzk-1"].Processes {
			if p.Unit != "" {
				n.Start(t, "zzk-6-"+p.ID, p.Argv, "system.slice/"+p.Unit)
			}
		}
		n.StartAgent(t, e.bins, "seed", e.agg.Addr)
		err := harness.Eventually(15*time.Second, 500*time.Millisecond, func() error {
			var resp v1.ListComponentsResponse
			if err := e.cli(t, &resp, "get", "components", "--cluster", "seed", "--node", "zzk-6", "--component", "kubelet"); err != nil {
				return err
			}
			if len(resp.Components) != 1 || resp.Components[0].How != v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS {
				return fmt.Errorf("kubelet on zzk-6: %v", resp.Components)
			}
			got, err := e.findings(t)
			if err != nil {
				return err
			}
			if strings.Contains(strings.Join(got, "\n"), "zzk-6 NODE_WITHOUT_AGENT") {
				return fmt.Errorf("zzk-6 still without agent")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		n.StopAgent(t)
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
		spec, _ := sched.Spec(e.api)
		test.Stop(t, sched.ID)
		spec.ID, spec.Argv = sched.ID+"-v4", append(append([]string(nil), sched.Argv...), "--v=4")
		test.StartProcess(t, spec)
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
	err := harness.Eventually(timeout, time.Second, func() error {
		var comps v1.ListComponentsResponse
		if err := e.cli(t, &comps, "--cluster", "seed", "get", "components"); err != nil {
			return err
		}
		if d := diffAnswer(answer(comps.Components), referenceAnswer); d != "" {
			return fmt.Errorf("answer differs:\n%s", d)
		}
		for _, in := range comps.Components {
			if !in.HasProcess || in.Pid == 0 {
				return fmt.Errorf("%s on %s has no process", in.Component, in.Node)
			}
		}
		// Container processes are children of their shims, as on the real node.
		var procs v1.ListProcessesResponse
		if err := e.cli(t, &procs, "--cluster", "seed", "get", "processes", "--node", "test"); err != nil {
			return err
		}
		byPID := map[int32]*v1.Process{}
		for _, np := range procs.Processes {
			byPID[np.Process.Pid] = np.Process
		}
		for _, np := range procs.Processes {
			if p := np.Process; hostsComponent(p, "etcd") {
				if parent := byPID[p.Ppid]; parent == nil || !parent.Infrastructure || !strings.HasSuffix(parent.Argv[0], "containerd-shim-runc-v2") {
					return fmt.Errorf("etcd's parent is %v, not its shim", parent)
				}
			}
		}
		var cl v1.GetClusterResponse
		if err := e.cli(t, &cl, "--cluster", "seed", "describe", "cluster", "seed"); err != nil {
			return err
		}
		c := cl.Cluster
		if c.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD || strings.Join(c.ControlPlaneNodes, ",") != "test" || len(c.ModeEvidence) == 0 ||
			!c.ApiConnected || c.Uid == "" || c.ReportingNodeCount != 6 {
			return fmt.Errorf("cluster: mode %v, control plane %v, api %v, uid %q, %d of %d nodes reporting",
				c.Mode, c.ControlPlaneNodes, c.ApiConnected, c.Uid, c.ReportingNodeCount, c.NodeCount)
		}
		got, err := e.findings(t)
		if err != nil {
			return err
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkStandalone checks the second cluster and the fleet-wide view.
func checkStandalone(t *testing.T, e *env) {
	t.Helper()
	err := harness.Eventually(60*time.Second, time.Second, func() error {
		var comps v1.ListComponentsResponse
		if err := e.cli(t, &comps, "--cluster", "standalone", "get", "components"); err != nil {
			return err
		}
		if d := diffAnswer(answer(comps.Components), standaloneAnswer); d != "" {
			return fmt.Errorf("standalone answer differs:\n%s", d)
		}
		var cl v1.GetClusterResponse
		if err := e.cli(t, &cl, "describe", "cluster", "standalone"); err != nil {
			return err
		}
		if c := cl.Cluster; c.Mode != v1.ClusterMode_CLUSTER_MODE_STANDALONE || strings.Join(c.ControlPlaneNodes, ",") != "sa-1" || c.FindingCount != 0 {
			return fmt.Errorf("standalone cluster: %v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var clusters v1.ListClustersResponse
	if err := e.cli(t, &clusters, "get", "clusters"); err != nil {
		t.Fatal(err)
	}
	if len(clusters.Clusters) != 2 || clusters.Clusters[0].Name != "seed" || clusters.Clusters[1].Name != "standalone" {
		t.Errorf("clusters: %v", clusters.Clusters)
	}
	var where v1.ListComponentsResponse
	if err := e.cli(t, &where, "where", "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, in := range where.Components {
		got[in.Cluster+"/"+in.Node] = in.How.Words()
	}
	if len(got) != 2 || got["seed/test"] != "static pod" || got["standalone/sa-1"] != "host process" {
		t.Errorf("fleet-wide where kube-apiserver: %v", got)
	}
	// Secrets in command lines never reach the aggregator.
	var procs v1.ListProcessesResponse
	if err := e.cli(t, &procs, "--cluster", "standalone", "get", "processes", "--component", "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	raw, _ := protojson.Marshal(&procs)
	if len(procs.Processes) != 1 || strings.Contains(string(raw), "s3cret-pass") || !strings.Contains(string(raw), "root:<redacted>@") {
		t.Errorf("kube-apiserver argv as stored: %s", raw)
	}
}

func hostsComponent(p *v1.Process, component string) bool {
	for _, c := range p.Components {
		if c.Component == component {
			return true
		}
	}
	return false
}
