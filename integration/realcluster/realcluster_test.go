package realcluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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

	t.Run("control plane as static pods", func(t *testing.T) {
		var truth map[string]staticPod
		var resp v1.ListComponentsResponse
		err := harness.Eventually(3*time.Minute, time.Second, func() error {
			var err error
			if truth, err = n.groundTruth(); err != nil {
				return err
			}
			resp.Reset()
			if err := cli(&resp, "get", "components", "--cluster", ClusterName); err != nil {
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
		want := map[string]int{"kubelet": n.kubelet.Process.Pid, "containerd": n.containerd.Process.Pid}
		err := harness.Eventually(time.Minute, time.Second, func() error {
			var resp v1.ListComponentsResponse
			if err := cli(&resp, "get", "components", "--cluster", ClusterName); err != nil {
				return err
			}
			for comp, pid := range want {
				var got *v1.ComponentInstance
				for _, in := range resp.Components {
					if in.Pid == int32(pid) {
						got = in
					}
				}
				if got == nil {
					return fmt.Errorf("%s (pid %d) is not in the answer:\n%s", comp, pid, describe(resp.Components))
				}
				if got.How != v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS || got.SystemdUnit != comp+".service" {
					return fmt.Errorf("%s (pid %d) is %s in unit %q; want HOST_PROCESS in %s.service", comp, pid, got.How, got.SystemdUnit, comp)
				}
			}
			return nil
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
			if err := cli(&resp, "get", "components", "--cluster", ClusterName); err != nil {
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
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(sp.pid) + "/cmdline")
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
