package harness

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/internal/simproc"
)

// SimProcess is one process of a scenario node.
type SimProcess struct {
	ID   string
	Argv []string
	// Unit is the systemd unit of a host daemon.
	Unit string
	// Pod is "<namespace>/<name>" of the pod the process runs in, QOS its
	// class, ContainerID its container; StaticHash is set for static pods,
	// whose cgroup carries the kubelet's config hash instead of the API UID.
	Pod, QOS, ContainerID, StaticHash string
	// Parent is the ID of the process's parent in the scenario (a container
	// shim, say); Spawner marks processes that are parents.
	Parent  string
	Spawner bool
}

// Spec is the process as the node starts it.
func (p SimProcess) Spec(api *APIState) (ProcSpec, error) {
	rel, err := p.CgroupPath(api)
	return ProcSpec{ID: p.ID, Argv: p.Argv, Cgroup: rel, Parent: p.Parent, Spawner: p.Spawner}, err
}

// CgroupPath lays the process out as a kubelet (cgroupfs driver) and
// containerd would: kubepods/<qos>/pod<uid>/<container id> for containers,
// system.slice/<unit> for host daemons.
func (p SimProcess) CgroupPath(api *APIState) (string, error) {
	switch {
	case p.Unit != "":
		return "system.slice/" + p.Unit, nil
	case p.Pod == "":
		return "", nil
	}
	uid := p.StaticHash
	if uid == "" {
		uid = api.PodUIDs[p.Pod]
		if uid == "" {
			return "", fmt.Errorf("pod %s was not created", p.Pod)
		}
	}
	qos := p.QOS + "/"
	if p.QOS == "guaranteed" {
		qos = ""
	}
	return "kubepods/" + qos + "pod" + uid + "/" + p.ContainerID, nil
}

// NodeScenario is a node of the reference bundle as processes to start.
type NodeScenario struct {
	Name      string
	HostFiles string
	Processes []SimProcess
}

// SeedScenario reads a bundle's node snapshots into scenarios: every
// component process and its container plumbing, with its exact argv.
func SeedScenario(t testing.TB, bundleDir string, api *APIState) []NodeScenario {
	t.Helper()
	var out []NodeScenario
	for _, node := range []string{"test", "zzk-1", "zzk-2", "zzk-3", "zzk-4", "zzk-5"} {
		inv, err := bundle.ReadSnapshot(filepath.Join(bundleDir, "nodes", node+".json"))
		if err != nil {
			t.Fatal(err)
		}
		sc := NodeScenario{Name: node, HostFiles: filepath.Join(bundleDir, "hosts", node)}
		ids := map[int32]int{} // pid -> index in sc.Processes
		for _, p := range inv.Processes {
			if len(p.Components) == 0 && !p.Infrastructure {
				continue
			}
			sp := SimProcess{ID: fmt.Sprintf("%s-%d", node, p.Pid), Argv: p.Argv, Unit: p.SystemdUnit, ContainerID: p.ContainerId}
			// Processes come sorted by pid; a parent precedes its children here.
			if i, ok := ids[p.Ppid]; ok {
				sp.Parent = sc.Processes[i].ID
				sc.Processes[i].Spawner = true
			}
			if p.PodUid != "" {
				sp.QOS = strings.ToLower(strings.TrimPrefix(p.QosClass.String(), "QOS_CLASS_"))
				sp.QOS = strings.ReplaceAll(sp.QOS, "_", "")
				if key, ok := api.MirrorHashes[p.PodUid]; ok {
					sp.Pod, sp.StaticHash = key, p.PodUid
				} else if key, ok := api.SeedPodUIDs[p.PodUid]; ok {
					sp.Pod = key
				} else {
					t.Fatalf("process %d on %s is in unknown pod %s", p.Pid, node, p.PodUid)
				}
			}
			ids[p.Pid] = len(sc.Processes)
			sc.Processes = append(sc.Processes, sp)
		}
		out = append(out, sc)
	}
	return out
}

// StartSeed starts the reference cluster's six nodes from the bundle in
// bundleDir: each node's processes in its cgroups, and its agent reporting as
// cluster "seed" to server(node).
func StartSeed(t testing.TB, bins Binaries, cg *simproc.Cgroups, bundleDir string, api *APIState, server func(node string) string) (map[string]*Node, map[string]NodeScenario) {
	t.Helper()
	nodes, scen := map[string]*Node{}, map[string]NodeScenario{}
	for _, sc := range SeedScenario(t, bundleDir, api) {
		n := StartNode(t, sc.Name, cg, sc.HostFiles)
		for _, p := range sc.Processes {
			spec, err := p.Spec(api)
			if err != nil {
				t.Fatal(err)
			}
			n.StartProcess(t, spec)
		}
		n.StartAgent(t, bins, "seed", server(sc.Name))
		nodes[sc.Name], scen[sc.Name] = n, sc
	}
	return nodes, scen
}
