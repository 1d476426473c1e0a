package realcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// controlPlane are the static pods kubeadm writes, by component.
var controlPlane = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// TestRealCluster runs kubeadm, a kubelet and containerd on this machine and
// checks kubeatlas's answer against what the test finds out on its own:
// crictl for containers and PIDs, kubectl for mirror pods, the manifest
// files kubeadm wrote, and /proc for command lines.
func TestRealCluster(t *testing.T) {
	bins := Build(t)
	n := Start(t, bins)

	apiAddr, err := n.Forward(NodeIP + ":6443")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := n.LocalKubeconfig(t, apiAddr)
	agg := harness.StartAggregator(t, bins.Binaries, "--kube", ClusterName+"="+kubeconfig)
	harness.StartProcess(t, t.TempDir(), "kubeatlas-agent", bins.Agent, "run", "--cluster", ClusterName, "--node-name", NodeName,
		"--host-root", n.HostRoot(), "--server", agg.Addr, "--insecure", "--scan-interval", "1s", "--metrics-addr", "")

	cli := func(into proto.Message, args ...string) error {
		out, err := n.runHost(bins.CLI, append([]string{"--server", agg.Addr, "--insecure", "-o", "json"}, args...)...)
		if err != nil {
			return err
		}
		return protojson.Unmarshal([]byte(out), into)
	}

	components := func(resp *v1.ListComponentsResponse) error {
		resp.Reset()
		return cli(resp, "get", "components", "--cluster", ClusterName)
	}

	t.Run("control plane as static pods", func(t *testing.T) {
		var truth map[string]staticPod
		var resp v1.ListComponentsResponse
		err := harness.Eventually(3*time.Minute, time.Second, func() error {
			var err error
			if truth, err = n.groundTruth(); err != nil {
				return err
			}
			if err := components(&resp); err != nil {
				return err
			}
			return compareStatic(truth, resp.Components)
		})
		if err != nil {
			t.Fatalf("kubeatlas's answer does not match the node: %v\ncomponents:\n%s", err, describe(resp.Components))
		}
		for _, c := range controlPlane {
			p := truth[c]
			t.Logf("%s: manifest %s, mirror pod %s, container %.12s, pid %d", c, p.manifest, p.pod, p.containerID, p.pid)
		}
	})

	t.Run("host daemons in their units", func(t *testing.T) {
		err := harness.Eventually(time.Minute, time.Second, func() error {
			var resp v1.ListComponentsResponse
			if err := components(&resp); err != nil {
				return err
			}
			return compareDaemons(n, resp.Components)
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("mode", func(t *testing.T) {
		err := harness.Eventually(time.Minute, time.Second, func() error {
			var resp v1.ListClustersResponse
			if err := cli(&resp, "get", "clusters"); err != nil {
				return err
			}
			for _, c := range resp.Clusters {
				if c.Name != ClusterName {
					continue
				}
				if c.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD {
					return fmt.Errorf("mode %s, want STATIC_POD", c.Mode)
				}
				return nil
			}
			return fmt.Errorf("cluster %s is not in the answer", ClusterName)
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	findings := func() ([]*v1.Finding, error) {
		var resp v1.ListFindingsResponse
		if err := cli(&resp, "get", "findings", "--cluster", ClusterName); err != nil {
			return nil, err
		}
		return resp.Findings, nil
	}

	t.Run("no false findings", func(t *testing.T) {
		// The cluster is healthy: nothing kubeatlas finds is true. Findings
		// that a cluster starting up shows for a moment (a pod whose process
		// the agent has not reported yet) must be gone once it has settled.
		var last []*v1.Finding
		err := harness.Eventually(time.Minute, time.Second, func() error {
			var err error
			if last, err = findings(); err != nil {
				return err
			}
			if len(last) > 0 {
				return fmt.Errorf("%d findings", len(last))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v:\n%s", err, describeFindings(last))
		}
	})

	t.Run("a manifest edited while the kubelet is down: drift until it restarts the pod", func(t *testing.T) {
		path := filepath.Join(n.HostRoot(), "/etc/kubernetes/manifests/kube-scheduler.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		const flag = "- --leader-elect=true"
		if !strings.Contains(string(data), flag) {
			t.Fatalf("kubeadm's scheduler manifest has no %q:\n%s", flag, data)
		}
		// With the kubelet stopped, the scheduler keeps running as it was
		// started: what its manifest says and what runs differ, and
		// nothing will change that until the kubelet is back.
		n.StopKubelet()
		edited := strings.Replace(string(data), flag, flag+"\n    - --v=2", 1)
		tmp := path + ".tmp" // written beside, then renamed, as an editor would
		if err := os.WriteFile(tmp, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		var last []*v1.Finding
		drift := func() (*v1.Finding, error) {
			var err error
			if last, err = findings(); err != nil {
				return nil, err
			}
			for _, f := range last {
				if f.Kind == v1.FindingKind_FINDING_KIND_MANIFEST_DRIFT && strings.Contains(f.Subject, "kube-scheduler") {
					return f, nil
				}
			}
			return nil, nil
		}
		err = harness.Eventually(time.Minute, time.Second, func() error {
			f, err := drift()
			if err == nil && f == nil {
				err = errors.New("no MANIFEST_DRIFT for the scheduler")
			}
			if err == nil && !strings.Contains(f.Summary, "--v=2") {
				err = fmt.Errorf("the drift does not name the flag: %s", f.Summary)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%v\nfindings:\n%s", err, describeFindings(last))
		}
		if err := n.StartKubelet(); err != nil {
			t.Fatal(err)
		}
		err = harness.Eventually(3*time.Minute, time.Second, func() error {
			truth, err := n.groundTruth()
			if err != nil {
				return err
			}
			if !slices.Contains(truth["kube-scheduler"].argv, "--v=2") {
				return fmt.Errorf("the kubelet has not restarted the scheduler with the new flag yet")
			}
			var resp v1.ListComponentsResponse
			if err := components(&resp); err != nil {
				return err
			}
			if err := compareStatic(truth, resp.Components); err != nil {
				return err
			}
			if f, err := drift(); err != nil || f != nil {
				return fmt.Errorf("drift still reported (%v)", err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\nfindings:\n%s", err, describeFindings(last))
		}
	})

	t.Run("kube-proxy, flannel and CoreDNS as their controllers run them", func(t *testing.T) {
		var resp v1.ListComponentsResponse
		err := harness.Eventually(3*time.Minute, time.Second, func() error {
			truth, err := n.workloads()
			if err != nil {
				return err
			}
			if err := components(&resp); err != nil {
				return err
			}
			return compareWorkloads(truth, resp.Components)
		})
		if err != nil {
			t.Fatalf("%v\ncomponents:\n%s", err, describe(resp.Components))
		}
	})

	t.Run("scaled CoreDNS and a killed container", func(t *testing.T) {
		if _, err := n.Kubectl("-n", "kube-system", "scale", "deployment", "coredns", "--replicas", "3"); err != nil {
			t.Fatal(err)
		}
		// Kill kube-proxy's process: the kubelet restarts its container and
		// counts the restart.
		truth, err := n.workloads()
		if err != nil {
			t.Fatal(err)
		}
		var proxy workload
		for _, w := range truth {
			if w.component == v1.ComponentKubeProxy {
				proxy = w
			}
		}
		if proxy.pid == 0 {
			t.Fatal("no kube-proxy process found")
		}
		if err := n.Kill(proxy.pid); err != nil {
			t.Fatal(err)
		}
		var resp v1.ListComponentsResponse
		err = harness.Eventually(3*time.Minute, time.Second, func() error {
			truth, err := n.workloads()
			if err != nil {
				return err
			}
			dns := 0
			for _, w := range truth {
				if w.component == v1.ComponentClusterDNS {
					dns++
				}
				if w.component == v1.ComponentKubeProxy && w.restarts < 1 {
					return fmt.Errorf("kube-proxy has not restarted yet")
				}
			}
			if dns != 3 {
				return fmt.Errorf("%d CoreDNS pods ready, want 3", dns)
			}
			if err := components(&resp); err != nil {
				return err
			}
			return compareWorkloads(truth, resp.Components)
		})
		if err != nil {
			t.Fatalf("%v\ncomponents:\n%s", err, describe(resp.Components))
		}
	})

	t.Run("deployed by its own manifests", func(t *testing.T) {
		// The TLS base, with certificates from `kubeatlas certs`; the CLI
		// reaches the aggregator through its Service, as a user would:
		// kubectl port-forward, inside the node.
		cli, stop, err := n.DeployAndReach()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		inCluster := func(into proto.Message, args ...string) error {
			argv := append(append(append([]string(nil), cli...), "-o", "json"), args...)
			out, err := n.Run(argv...)
			if err != nil {
				return err
			}
			return protojson.Unmarshal([]byte(out), into)
		}
		var resp v1.ListComponentsResponse
		err = harness.Eventually(3*time.Minute, 2*time.Second, func() error {
			truth, err := n.groundTruth()
			if err != nil {
				return err
			}
			work, err := n.workloads()
			if err != nil {
				return err
			}
			resp.Reset()
			if err := inCluster(&resp, "get", "components", "--cluster", ClusterName); err != nil {
				return err
			}
			if err := compareStatic(truth, resp.Components); err != nil {
				return err
			}
			if err := compareDaemons(n, resp.Components); err != nil {
				return err
			}
			return compareWorkloads(work, resp.Components)
		})
		if err != nil {
			t.Fatalf("the deployed kubeatlas's answer: %v\ncomponents:\n%s", err, describe(resp.Components))
		}
	})

	t.Run("a deleted mirror pod comes back", func(t *testing.T) {
		pod := "kube-scheduler-" + NodeName
		before, err := n.Kubectl("-n", "kube-system", "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Kubectl("-n", "kube-system", "delete", "pod", pod, "--wait=false"); err != nil {
			t.Fatal(err)
		}
		err = harness.Eventually(2*time.Minute, time.Second, func() error {
			after, err := n.Kubectl("-n", "kube-system", "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
			if err != nil {
				return err
			}
			if after == "" || after == before {
				return fmt.Errorf("the kubelet has not recreated the mirror pod yet")
			}
			truth, err := n.groundTruth()
			if err != nil {
				return err
			}
			var resp v1.ListComponentsResponse
			if err := components(&resp); err != nil {
				return err
			}
			return compareStatic(truth, resp.Components)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// staticPod is what the node itself says about one control-plane component.
type staticPod struct {
	manifest    string // path kubeadm wrote
	pod         string // mirror pod name
	containerID string
	pid         int
	argv        []string
}

// groundTruth gathers, without kubeatlas, where each control-plane
// component runs: its manifest file, its mirror pod (kubectl), its running
// container and PID (crictl), and the PID's argv (/proc).
func (n *Node) groundTruth() (map[string]staticPod, error) {
	out := map[string]staticPod{}
	for _, c := range controlPlane {
		path := "/etc/kubernetes/manifests/" + c + ".yaml"
		if _, err := os.Stat(filepath.Join(n.HostRoot(), path)); err != nil {
			return nil, err
		}
		out[c] = staticPod{manifest: path}
	}
	podsJSON, err := n.Kubectl("get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, err
	}
	var pods struct {
		Items []struct {
			Metadata struct {
				Name, Namespace string
				Annotations     map[string]string
				Labels          map[string]string
			}
			Spec struct{ NodeName string }
		}
	}
	if err := json.Unmarshal([]byte(podsJSON), &pods); err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		c := p.Metadata.Labels["component"]
		sp, ok := out[c]
		if !ok || p.Metadata.Annotations["kubernetes.io/config.mirror"] == "" || p.Spec.NodeName != NodeName {
			continue
		}
		sp.pod = p.Metadata.Namespace + "/" + p.Metadata.Name
		out[c] = sp
	}
	psJSON, err := n.Crictl("ps", "--state", "running", "-o", "json")
	if err != nil {
		return nil, err
	}
	var ps struct {
		Containers []struct {
			ID       string
			Metadata struct{ Name string }
		}
	}
	if err := json.Unmarshal([]byte(psJSON), &ps); err != nil {
		return nil, err
	}
	for _, ctr := range ps.Containers {
		sp, ok := out[ctr.Metadata.Name]
		if !ok {
			continue
		}
		inspect, err := n.Crictl("inspect", "-o", "json", ctr.ID)
		if err != nil {
			return nil, err
		}
		var info struct {
			Info struct{ Pid int }
		}
		if err := json.Unmarshal([]byte(inspect), &info); err != nil {
			return nil, err
		}
		sp.containerID, sp.pid = ctr.ID, info.Info.Pid
		raw, err := n.ReadProc(sp.pid, "cmdline")
		if err != nil {
			return nil, err
		}
		sp.argv = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		out[ctr.Metadata.Name] = sp
	}
	for c, sp := range out {
		if sp.pod == "" || sp.containerID == "" || sp.pid == 0 {
			return nil, fmt.Errorf("%s is not fully up yet: %+v", c, sp)
		}
	}
	return out, nil
}

// compareStatic checks that every control-plane component is in the answer
// as a static pod with the node's own manifest path, mirror pod, container
// and PID.
func compareStatic(truth map[string]staticPod, got []*v1.ComponentInstance) error {
	for _, c := range controlPlane {
		want := truth[c]
		var in *v1.ComponentInstance
		for _, g := range got {
			if g.Component == c && g.Node == NodeName {
				in = g
			}
		}
		if in == nil {
			return fmt.Errorf("%s is not in the answer", c)
		}
		var problems []string
		if in.How != v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD {
			problems = append(problems, fmt.Sprintf("how %s", in.How))
		}
		if in.ManifestPath != want.manifest {
			problems = append(problems, fmt.Sprintf("manifest %q, want %q", in.ManifestPath, want.manifest))
		}
		if pod := in.GetPod().GetNamespace() + "/" + in.GetPod().GetName(); pod != want.pod {
			problems = append(problems, fmt.Sprintf("pod %q, want %q", pod, want.pod))
		}
		if id := strings.TrimPrefix(in.ContainerId, "containerd://"); id != want.containerID {
			problems = append(problems, fmt.Sprintf("container %q, want %q", in.ContainerId, want.containerID))
		}
		if int(in.Pid) != want.pid {
			problems = append(problems, fmt.Sprintf("pid %d, want %d", in.Pid, want.pid))
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s: %s", c, strings.Join(problems, "; "))
		}
	}
	return nil
}

func describe(insts []*v1.ComponentInstance) string {
	var rows []string
	for _, in := range insts {
		rows = append(rows, fmt.Sprintf("  %s %s %s pid=%d ctr=%.12s unit=%s manifest=%s pod=%s/%s", in.Node, in.Component, in.How, in.Pid, in.ContainerId, in.SystemdUnit, in.ManifestPath, in.GetPod().GetNamespace(), in.GetPod().GetName()))
	}
	sort.Strings(rows)
	return strings.Join(slices.Compact(rows), "\n")
}

// workload is what the node says about one container of a DaemonSet or
// Deployment: its pod, its top controller, its container and PID, restarts.
type workload struct {
	component   string // what the test expects kubeatlas to call it
	how         v1.DeploymentKind
	pod         string
	owner       string // Kind namespace/name
	containerID string
	pid         int
	restarts    int
}

// workloadPods are the pods the test knows the components of, by their
// container's name.
var workloadPods = map[string]struct {
	component string
	how       v1.DeploymentKind
}{
	"kube-proxy":   {v1.ComponentKubeProxy, v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET},
	"kube-flannel": {v1.ComponentCNI, v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET},
	"coredns":      {v1.ComponentClusterDNS, v1.DeploymentKind_DEPLOYMENT_KIND_DEPLOYMENT},
}

// workloads gathers, from kubectl and crictl alone, the running containers
// of kube-proxy, flannel and CoreDNS, keyed by container ID. Only Ready
// pods count.
func (n *Node) workloads() (map[string]workload, error) {
	podsJSON, err := n.Kubectl("get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, err
	}
	var pods struct {
		Items []struct {
			Metadata struct {
				Name, Namespace string
				OwnerReferences []struct{ Kind, Name string }
			}
			Status struct {
				Conditions        []struct{ Type, Status string }
				ContainerStatuses []struct {
					Name, ContainerID string
					RestartCount      int
					Ready             bool
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(podsJSON), &pods); err != nil {
		return nil, err
	}
	out := map[string]workload{}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			kind, ok := workloadPods[cs.Name]
			if !ok || !cs.Ready || len(p.Metadata.OwnerReferences) == 0 {
				continue
			}
			ref := p.Metadata.OwnerReferences[0]
			owner := ref.Kind + " " + p.Metadata.Namespace + "/" + ref.Name
			if ref.Kind == "ReplicaSet" {
				// The Deployment's name is the ReplicaSet's less its hash.
				owner = "Deployment " + p.Metadata.Namespace + "/" + ref.Name[:strings.LastIndexByte(ref.Name, '-')]
			}
			id := strings.TrimPrefix(cs.ContainerID, "containerd://")
			inspect, err := n.Crictl("inspect", "-o", "json", id)
			if err != nil {
				return nil, err
			}
			var info struct {
				Info   struct{ Pid int }
				Status struct{ State string }
			}
			if err := json.Unmarshal([]byte(inspect), &info); err != nil {
				return nil, err
			}
			if info.Status.State != "CONTAINER_RUNNING" || info.Info.Pid == 0 {
				continue
			}
			out[id] = workload{component: kind.component, how: kind.how, pod: p.Metadata.Namespace + "/" + p.Metadata.Name,
				owner: owner, containerID: id, pid: info.Info.Pid, restarts: cs.RestartCount}
		}
	}
	for name, kind := range workloadPods {
		found := false
		for _, w := range out {
			found = found || w.component == kind.component
		}
		if !found {
			return nil, fmt.Errorf("no ready %s container yet", name)
		}
	}
	return out, nil
}

// compareWorkloads checks that kubeatlas's instances of kube-proxy, the CNI
// and cluster DNS are exactly the node's running containers of them.
func compareWorkloads(truth map[string]workload, got []*v1.ComponentInstance) error {
	seen := map[string]bool{}
	for _, in := range got {
		if in.Component != v1.ComponentKubeProxy && in.Component != v1.ComponentCNI && in.Component != v1.ComponentClusterDNS {
			continue
		}
		id := strings.TrimPrefix(in.ContainerId, "containerd://")
		want, ok := truth[id]
		if !ok {
			return fmt.Errorf("%s in container %q (pod %s/%s) is not a running container of the node", in.Component, in.ContainerId, in.GetPod().GetNamespace(), in.GetPod().GetName())
		}
		seen[id] = true
		var problems []string
		if in.Component != want.component {
			problems = append(problems, fmt.Sprintf("component %s, want %s", in.Component, want.component))
		}
		if in.How != want.how {
			problems = append(problems, fmt.Sprintf("how %s, want %s", in.How, want.how))
		}
		if owner := in.GetOwner().GetKind() + " " + in.GetOwner().GetNamespace() + "/" + in.GetOwner().GetName(); owner != want.owner {
			problems = append(problems, fmt.Sprintf("owner %q, want %q", owner, want.owner))
		}
		if pod := in.GetPod().GetNamespace() + "/" + in.GetPod().GetName(); pod != want.pod {
			problems = append(problems, fmt.Sprintf("pod %s, want %s", pod, want.pod))
		}
		if int(in.Pid) != want.pid {
			problems = append(problems, fmt.Sprintf("pid %d, want %d", in.Pid, want.pid))
		}
		if int(in.RestartCount) != want.restarts {
			problems = append(problems, fmt.Sprintf("restarts %d, want %d", in.RestartCount, want.restarts))
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s %.12s: %s", want.component, id, strings.Join(problems, "; "))
		}
	}
	for id, w := range truth {
		if !seen[id] {
			return fmt.Errorf("%s in container %.12s (pod %s) is missing from the answer", w.component, id, w.pod)
		}
	}
	return nil
}

func describeFindings(fs []*v1.Finding) string {
	var rows []string
	for _, f := range fs {
		rows = append(rows, fmt.Sprintf("  %s %s %s: %s", f.Node, f.Kind, f.Subject, f.Summary))
	}
	return strings.Join(rows, "\n")
}

// compareDaemons checks that the kubelet and containerd are in the answer as
// host processes with their own PIDs, in their systemd units.
func compareDaemons(n *Node, got []*v1.ComponentInstance) error {
	want := map[string]int{"kubelet": n.kubelet.NodePID, "containerd": n.containerd.NodePID}
	for comp, pid := range want {
		var in *v1.ComponentInstance
		for _, g := range got {
			if g.Pid == int32(pid) {
				in = g
			}
		}
		if in == nil {
			return fmt.Errorf("%s (pid %d) is not in the answer", comp, pid)
		}
		if in.How != v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS || in.SystemdUnit != comp+".service" {
			return fmt.Errorf("%s (pid %d) is %s in unit %q; want HOST_PROCESS in %s.service", comp, pid, in.How, in.SystemdUnit, comp)
		}
	}
	return nil
}
