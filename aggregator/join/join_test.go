package join

import (
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
)

const (
	hash = "fcd4f26bdc1bed51b77a2cd425acaf73"
	cid  = "dbf2431c433ac84f770c8fd8b7a63a4b1824f9b972d320179fb1df2ae6d5aec4"
	cid2 = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	puid = "5b1d3e2a-8c4f-4a6e-9d7b-1f2e3a4b5c6d"
)

func proc(pid int32, argv string, podUID, containerID, unit string) *v1.Process {
	p := &v1.Process{Pid: pid, Ppid: 1, StartTime: timestamppb.New(time.Unix(1000, 0)), User: "root", Argv: strings.Fields(argv),
		PodUid: podUID, ContainerId: containerID, SystemdUnit: unit}
	for _, c := range recognize.Recognize(p.Argv).Components {
		p.Components = append(p.Components, c.Proto())
	}
	return p
}

var apiserverArgv = "kube-apiserver --advertise-address=10.0.0.1 --secure-port=6443"

func apiserverManifest() *v1.StaticPodManifest {
	return &v1.StaticPodManifest{Path: "/etc/kubernetes/manifests/kube-apiserver.yaml", PodName: "kube-apiserver", PodNamespace: "kube-system",
		Containers: []*v1.ManifestContainer{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.27.0", Command: strings.Fields(apiserverArgv)}}}
}

func mirrorPod() *state.Pod {
	return &state.Pod{ID: "c/kube-system/kube-apiserver-n1", Cluster: "c", Namespace: "kube-system", Name: "kube-apiserver-n1", UID: "mirror-uid",
		NodeName: "n1", MirrorHash: hash, ConfigSource: "file", Owner: &v1.ObjectRef{Kind: "Node", Name: "n1"}, Phase: "Running",
		Containers: []state.PodContainer{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.27.0", Command: strings.Fields(apiserverArgv), ContainerID: cid}}}
}

func reporting() *state.NodeAgent {
	return &state.NodeAgent{State: v1.AgentState_AGENT_STATE_REPORTING, Kubelet: &v1.KubeletInfo{StaticPodPath: "/etc/kubernetes/manifests",
		ContainerRuntimeEndpoint: "unix:///run/containerd/containerd.sock"}}
}

func summary(res NodeResult) (insts, finds []string) {
	for _, in := range res.Instances {
		insts = append(insts, in.Component+"/"+in.Implementation+" "+in.How.Words()+" pid="+itoa(in.Pid)+" manifest="+in.ManifestPath)
	}
	for _, f := range res.Findings {
		finds = append(finds, strings.TrimPrefix(f.Kind.String(), "FINDING_KIND_"))
	}
	sort.Strings(insts)
	sort.Strings(finds)
	return
}

func itoa(n int32) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(int(n))
}

func TestNode(t *testing.T) {
	workloads := map[string]*state.Workload{
		"rs-uid":    {Kind: "ReplicaSet", Name: "coredns-7bdc4cb885", Namespace: "kube-system", UID: "rs-uid", Owner: &v1.ObjectRef{Kind: "Deployment", Namespace: "kube-system", Name: "coredns"}, OwnerUID: "d-uid"},
		"lone-rs":   {Kind: "ReplicaSet", Name: "lonely", Namespace: "default", UID: "lone-rs"},
		"ds-uid":    {Kind: "DaemonSet", Name: "kube-proxy", Namespace: "kube-system", UID: "ds-uid"},
		"apisrv-ds": {Kind: "DaemonSet", Name: "kube-apiserver", Namespace: "kube-system", UID: "apisrv-ds"},
	}
	lookup := func(uid string) *state.Workload { return workloads[uid] }
	proxyPod := &state.Pod{ID: "c/kube-system/kube-proxy-a", Cluster: "c", Namespace: "kube-system", Name: "kube-proxy-a", UID: puid, NodeName: "n1",
		Owner: &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-system", Name: "kube-proxy"}, OwnerUID: "ds-uid", Phase: "Running",
		Containers: []state.PodContainer{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.27.0", Command: []string{"/usr/local/bin/kube-proxy", "--config=/x"}, ContainerID: cid2, RestartCount: 9}}}
	corednsPod := &state.Pod{ID: "c/kube-system/coredns-a", Cluster: "c", Namespace: "kube-system", Name: "coredns-a", UID: "dns-uid", NodeName: "n1",
		Owner: &v1.ObjectRef{Kind: "ReplicaSet", Namespace: "kube-system", Name: "coredns-7bdc4cb885"}, OwnerUID: "rs-uid", Phase: "Running",
		Containers: []state.PodContainer{{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.10.1", Args: []string{"-conf", "/etc/coredns/Corefile"}}}}
	lonePod := &state.Pod{ID: "c/default/lonely-a", Cluster: "c", Namespace: "default", Name: "lonely-a", UID: "lonely-uid", NodeName: "n1",
		Owner: &v1.ObjectRef{Kind: "ReplicaSet", Namespace: "default", Name: "lonely"}, OwnerUID: "lone-rs", Phase: "Pending",
		Containers: []state.PodContainer{{Name: "etcd", Image: "quay.io/coreos/etcd:v3.5.0"}}}
	barePod := &state.Pod{ID: "c/default/bare", Cluster: "c", Namespace: "default", Name: "bare", UID: "bare-uid", NodeName: "n1", Phase: "Pending",
		Containers: []state.PodContainer{{Name: "kube-scheduler", Image: "registry.k8s.io/kube-scheduler:v1.27.0", Command: []string{"kube-scheduler"}}}}
	selfHosted := &state.Pod{ID: "c/kube-system/kube-apiserver-x", Cluster: "c", Namespace: "kube-system", Name: "kube-apiserver-x", UID: "sh-uid", NodeName: "n1",
		Owner: &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-system", Name: "kube-apiserver"}, OwnerUID: "apisrv-ds", Phase: "Pending",
		Containers: []state.PodContainer{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.27.0", Command: []string{"kube-apiserver"}}}}

	tests := []struct {
		name      string
		in        NodeInput
		wantInsts []string
		wantFinds []string
	}{
		{
			name: "static pod with API and agent",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting(), API: &state.NodeAPI{KubeletVersion: "v1.27.0"}}, APIConnected: true, ClusterHasAgents: true,
				Procs:     []*v1.Process{proc(7, "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml", "", "", "kubelet.service"), proc(8, apiserverArgv, hash, cid, "")},
				Manifests: []*v1.StaticPodManifest{apiserverManifest()}, Pods: []*state.Pod{mirrorPod()}},
			wantInsts: []string{"kube-apiserver/kube-apiserver static pod pid=8 manifest=/etc/kubernetes/manifests/kube-apiserver.yaml", "kubelet/kubelet host process pid=7 manifest="},
		},
		{
			name: "agent only: static pod through the cgroup hash and the manifest",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting()},
				Procs:     []*v1.Process{proc(8, apiserverArgv, hash, cid, "")},
				Manifests: []*v1.StaticPodManifest{apiserverManifest()}},
			wantInsts: []string{"kube-apiserver/kube-apiserver static pod pid=8 manifest=/etc/kubernetes/manifests/kube-apiserver.yaml"},
		},
		{
			name:      "API only: instances inferred from pods, no process",
			in:        NodeInput{Node: &state.Node{Name: "n1", API: &state.NodeAPI{}}, APIConnected: true, Workload: lookup, Pods: []*state.Pod{proxyPod, corednsPod, lonePod, barePod, selfHosted}},
			wantInsts: []string{"cluster-dns/coredns Deployment pid=- manifest=", "etcd/etcd ReplicaSet pid=- manifest=", "kube-apiserver/kube-apiserver DaemonSet pid=- manifest=", "kube-proxy/kube-proxy DaemonSet pid=- manifest=", "kube-scheduler/kube-scheduler bare pod pid=- manifest="},
			wantFinds: []string{"HIGH_RESTART_COUNT"},
		},
		{
			name: "drift between manifest and process",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting()}, APIConnected: true, ClusterHasAgents: true,
				Procs:     []*v1.Process{proc(8, "kube-apiserver --advertise-address=10.0.0.1 --secure-port=7443 --v=4", hash, cid, "")},
				Manifests: []*v1.StaticPodManifest{apiserverManifest()}, Pods: []*state.Pod{mirrorPod()}},
			wantInsts: []string{"kube-apiserver/kube-apiserver static pod pid=8 manifest=/etc/kubernetes/manifests/kube-apiserver.yaml"},
			wantFinds: []string{"MANIFEST_DRIFT"},
		},
		{
			name: "manifest without mirror pod, mirror pod without manifest, malformed manifest",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting()}, APIConnected: true, ClusterHasAgents: true,
				Procs: []*v1.Process{},
				Manifests: []*v1.StaticPodManifest{
					{Path: "/etc/kubernetes/manifests/etcd.yaml", PodName: "etcd", PodNamespace: "kube-system", Containers: []*v1.ManifestContainer{{Name: "etcd", Command: []string{"etcd"}}}},
					{Path: "/etc/kubernetes/manifests/broken.yaml", ParseError: "decoding pod: yaml: line 3: mapping values are not allowed"},
				},
				Pods: []*state.Pod{mirrorPod()}},
			wantInsts: []string{"kube-apiserver/kube-apiserver static pod pid=- manifest="},
			wantFinds: []string{"MALFORMED_MANIFEST", "MANIFEST_WITHOUT_MIRROR_POD", "MIRROR_POD_WITHOUT_MANIFEST", "POD_WITHOUT_PROCESS"},
		},
		{
			name: "container process whose pod the API does not know",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting()}, APIConnected: true, ClusterHasAgents: true,
				Procs: []*v1.Process{proc(9, "/opt/bin/flanneld --ip-masq", puid, cid2, "")}},
			wantInsts: []string{"cni/flannel unknown pid=9 manifest="},
			wantFinds: []string{"UNKNOWN_POD_PROCESS"},
		},
		{
			name: "node without agent, version skew",
			in: NodeInput{Node: &state.Node{Name: "n1", API: &state.NodeAPI{KubeletVersion: "v1.23.4"}}, APIConnected: true, ClusterHasAgents: true, AgentsSettled: true,
				APIServerVersion: "v1.27.0"},
			wantFinds: []string{"NODE_WITHOUT_AGENT", "VERSION_SKEW"},
		},
		{
			name: "no absence finding before agents had their chance to reconnect",
			in: NodeInput{Node: &state.Node{Name: "n1", API: &state.NodeAPI{KubeletVersion: "v1.27.0"}}, APIConnected: true, ClusterHasAgents: true,
				APIServerVersion: "v1.27.0"},
		},
		{
			name: "no absence finding before the API's objects are loaded",
			in: NodeInput{Node: &state.Node{Name: "n1", Agent: reporting()}, ClusterHasAgents: true, AgentsSettled: true,
				Procs: []*v1.Process{proc(9, "/opt/bin/flanneld --ip-masq", puid, cid2, "")}},
			wantInsts: []string{"cni/flannel unknown pid=9 manifest="},
		},
		{
			name: "stale agent and clock skew; k3s hosts several components",
			in: NodeInput{Node: &state.Node{Name: "n1", API: &state.NodeAPI{KubeletVersion: "v1.28.1+k3s1"}, Agent: &state.NodeAgent{State: v1.AgentState_AGENT_STATE_STALE, ClockSkew: -time.Minute}},
				APIConnected: true, ClusterHasAgents: true, APIServerVersion: "v1.28.1+k3s1",
				Procs: []*v1.Process{proc(5, "/usr/local/bin/k3s agent", "", "", "k3s-agent.service")}},
			wantInsts: []string{"cni/flannel host process pid=5 manifest=", "kube-proxy/k3s host process pid=5 manifest=", "kubelet/k3s host process pid=5 manifest="},
			wantFinds: []string{"CLOCK_SKEW", "STALE_AGENT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Cluster = "c"
			if tt.in.Workload == nil {
				tt.in.Workload = lookup
			}
			insts, finds := summary(Node(tt.in))
			if strings.Join(insts, "\n") != strings.Join(tt.wantInsts, "\n") {
				t.Errorf("instances:\n%s\nwant:\n%s", strings.Join(insts, "\n"), strings.Join(tt.wantInsts, "\n"))
			}
			if strings.Join(finds, ",") != strings.Join(tt.wantFinds, ",") {
				t.Errorf("findings: %v, want %v", finds, tt.wantFinds)
			}
		})
	}
}

func TestDriftDescribesFlags(t *testing.T) {
	d := argvDiff(strings.Fields("kube-apiserver --a=1 --b=2 --c"), strings.Fields("/usr/bin/kube-apiserver --a=1 --b=3 --d=4"))
	for _, want := range []string{"--b is 3, manifest says 2", "--c=true missing", "--d=4 added"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff %q lacks %q", d, want)
		}
	}
	if argvDiff(strings.Fields("etcd --x=1"), strings.Fields("/usr/local/bin/etcd --x=1")) != "" {
		t.Error("a path-only difference in the program is not drift")
	}
}

// The version skew policy, kubernetes.io/releases/version-skew-policy, each
// row quoting the rule it checks.
func TestSkewPolicy(t *testing.T) {
	for _, tt := range []struct {
		rule, component, version, api string
		bad                           bool
	}{
		// "kubelet must not be newer than kube-apiserver, and may be up to
		// three minor versions older" (from 1.28).
		{"kubelet same minor", v1.ComponentKubelet, "v1.27.0", "v1.27.3", false},
		{"kubelet three older at 1.28", v1.ComponentKubelet, "v1.25.9", "v1.28.0", false},
		{"kubelet four older", v1.ComponentKubelet, "v1.24.0", "v1.28.0", true},
		{"kubelet newer", v1.ComponentKubelet, "v1.28.0", "v1.27.0", true},
		// Before 1.28 the kubelet could trail by two.
		{"kubelet three older at 1.27", v1.ComponentKubelet, "v1.24.0", "v1.27.0", true},
		{"kubelet two older at 1.27", v1.ComponentKubelet, "v1.25.0", "v1.27.0", false},
		// "kube-proxy ... must not be newer than kube-apiserver ... may be up
		// to three minor versions older".
		{"kube-proxy three older", v1.ComponentKubeProxy, "v1.27.4", "v1.30.1", false},
		{"kube-proxy newer", v1.ComponentKubeProxy, "v1.31.0", "v1.30.1", true},
		// "kube-controller-manager, kube-scheduler, and
		// cloud-controller-manager must not be newer ... may be up to one
		// minor version older".
		{"controller-manager one older", v1.ComponentControllerManager, "v1.29.9", "v1.30.0", false},
		{"controller-manager two older", v1.ComponentControllerManager, "v1.28.0", "v1.30.0", true},
		{"scheduler newer", v1.ComponentScheduler, "v1.31.0", "v1.30.0", true},
		{"cloud-controller-manager one older", v1.ComponentCloudControllerManager, "v1.29.0", "v1.30.0", false},
		// Builds with suffixes read as their numbers.
		{"eks suffixes", v1.ComponentKubelet, "v1.27.4-eks-8cb36c9", "v1.30.1-eks-1de2ab1", false},
		{"k3s suffixes", v1.ComponentKubelet, "v1.26.6+k3s1", "v1.30.0+k3s1", true},
		{"unknown version", v1.ComponentKubelet, "garbage", "v1.27.0", false},
		{"other majors", v1.ComponentKubelet, "v1.29.0-gke.1", "v2.0.0", false},
		{"not covered", v1.ComponentEtcd, "3.5.9", "v1.27.0", false},
	} {
		if got := skewPolicy(tt.component, tt.version, tt.api) != ""; got != tt.bad {
			t.Errorf("%s: %s %s against kube-apiserver %s: flagged %v", tt.rule, tt.component, tt.version, tt.api, got)
		}
	}
	// "In highly-available (HA) clusters, the newest and oldest
	// kube-apiserver instances must be within one minor version."
	if haSkew("v1.30.2", "v1.29.0") != "" || haSkew("v1.31.0", "v1.29.0") == "" {
		t.Error("HA apiserver rule")
	}
}

// VERSION_SKEW for every covered component on a node, from the versions of
// its instances and the Node status.
func TestVersionSkewFindings(t *testing.T) {
	cm := proc(10, "kube-controller-manager --leader-elect=true", "", "", "kube-controller-manager.service")
	proxy := proc(11, "/usr/local/bin/kube-proxy --config=/x", "", "", "kube-proxy.service")
	api := proc(12, "kube-apiserver --secure-port=6443", "", "", "kube-apiserver.service")
	rt := proc(13, "/usr/bin/containerd", "", "", "containerd.service")
	node := &state.Node{Name: "n1", Agent: reporting(),
		API: &state.NodeAPI{KubeletVersion: "v1.26.3", KubeProxyVersion: "v1.31.0", RuntimeVersion: "containerd://1.7.22"}}
	res := Node(NodeInput{Cluster: "c", Node: node, Procs: []*v1.Process{cm, proxy, api, rt}, APIServerVersion: "v1.30.0", ServerVersion: "v1.32.1"})
	var got []string
	for _, f := range res.Findings {
		if f.Kind == v1.FindingKind_FINDING_KIND_VERSION_SKEW {
			got = append(got, f.Summary)
		}
	}
	sort.Strings(got)
	want := []string{
		"kube-apiserver v1.32.1 on n1: 2 minor versions newer than the oldest kube-apiserver v1.30.0; HA apiservers may differ by one",
		"kube-proxy v1.31.0 on n1: newer than kube-apiserver v1.30.0, which the skew policy forbids",
		"kubelet v1.26.3 on n1: 4 minor versions older than kube-apiserver v1.30.0; the skew policy allows 3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, in := range res.Instances {
		if in.Component == v1.ComponentContainerRuntime && in.Version != "1.7.22" {
			t.Errorf("runtime version %q", in.Version)
		}
	}
}

func TestClusterMode(t *testing.T) {
	inst := func(how v1.DeploymentKind) *v1.ComponentInstance {
		return &v1.ComponentInstance{Component: "kube-apiserver", Node: "n1", How: how, Version: "v1.27.0"}
	}
	for _, tt := range []struct {
		name      string
		cp        []*v1.ComponentInstance
		api, agts bool
		want      v1.ClusterMode
	}{
		{"standalone", []*v1.ComponentInstance{inst(v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS)}, true, true, v1.ClusterMode_CLUSTER_MODE_STANDALONE},
		{"static", []*v1.ComponentInstance{inst(v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD)}, true, true, v1.ClusterMode_CLUSTER_MODE_STATIC_POD},
		{"self-hosted", []*v1.ComponentInstance{inst(v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET)}, true, false, v1.ClusterMode_CLUSTER_MODE_SELF_HOSTED},
		{"managed", nil, true, true, v1.ClusterMode_CLUSTER_MODE_MANAGED},
		{"unknown", nil, false, true, v1.ClusterMode_CLUSTER_MODE_UNKNOWN},
	} {
		res := Cluster(ClusterInput{ControlPlane: tt.cp, APIConnected: tt.api, AnyAgent: tt.agts})
		if res.Mode != tt.want || len(res.Evidence) == 0 {
			t.Errorf("%s: mode %v evidence %d", tt.name, res.Mode, len(res.Evidence))
		}
	}
}

// A wrapper and the server it started are one instance, the server's; a
// runtime that starts another runtime is two.
func TestWrappersAreOneInstance(t *testing.T) {
	wrapper := proc(100, "/bin/bash /usr/local/bin/etcd --name=m1", "", "", "etcd.service")
	server := proc(101, "/usr/local/bin/etcd --name=m1 --data-dir=/var/lib/etcd", "", "", "etcd.service")
	server.Ppid = 100
	shell := proc(200, "/bin/sh -c kube-proxy", "", "", "")
	shell.Argv = []string{"/bin/sh", "-c", "exec kube-proxy --config=/x"}
	shell.Components = nil
	for _, c := range recognize.Recognize(shell.Argv).Components {
		shell.Components = append(shell.Components, c.Proto())
	}
	sup := proc(300, "/usr/bin/dockerd -H fd://", "", "", "docker.service")
	child := proc(301, "containerd --config /var/run/docker/containerd/containerd.toml", "", "", "docker.service")
	child.Ppid = 300
	res := Node(NodeInput{Cluster: "c", Node: &state.Node{Name: "n1", Agent: reporting()},
		Procs: []*v1.Process{wrapper, server, shell, sup, child}})
	insts, _ := summary(res)
	want := []string{
		"container-runtime/containerd host process pid=301 manifest=",
		"container-runtime/dockerd host process pid=300 manifest=",
		"etcd/etcd host process pid=101 manifest=",
		"kube-proxy/kube-proxy host process pid=200 manifest=",
	}
	if strings.Join(insts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("instances:\n%s\nwant:\n%s", strings.Join(insts, "\n"), strings.Join(want, "\n"))
	}
	for _, in := range res.Instances {
		if in.Pid == 101 && !strings.Contains(evidenceText(in.Evidence), "started by pid 100, a wrapper") {
			t.Errorf("the server's evidence does not name its wrapper: %s", evidenceText(in.Evidence))
		}
	}
}

func evidenceText(evs []*v1.Evidence) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Summary + "\n")
	}
	return b.String()
}
