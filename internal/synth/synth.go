// Package synth builds realistic synthetic fleets for tests, benchmarks and
// the load harness. Production binaries never link it.
package synth

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/cgroup"
	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
)

var ordinary = []string{
	"/lib/systemd/systemd-journald", "/lib/systemd/systemd-udevd", "/usr/sbin/sshd -D", "/usr/sbin/cron -f",
	"/usr/bin/python3 /opt/app/server.py --port 8080 --workers 4", "nginx: worker process", "/usr/sbin/rsyslogd -n -iNONE",
	"/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only",
	"/usr/local/bin/node /srv/api/index.js", "postgres: checkpointer", "/usr/bin/java -Xmx2g -jar /opt/svc/app.jar",
	"-bash", "/usr/lib/postfix/sbin/master -w", "[kworker/u8:2-events_unbound]",
}

// SyntheticProcesses returns n processes shaped like a worker node of the
// reference cluster: kubelet, containerd, kube-proxy and flannel, then
// ordinary processes, about a third of them in pod cgroups. seed varies them.
func SyntheticProcesses(n, seed int) []*v1.Process {
	start := time.Unix(1_700_000_000, 0)
	mk := func(pid int32, argv []string, cg string) *v1.Process {
		info := cgroup.ParsePath(cg)
		p := &v1.Process{Pid: pid, Ppid: 1, StartTime: timestamppb.New(start.Add(time.Duration(pid) * time.Millisecond)), User: "root",
			Argv: argv, RssBytes: uint64(pid) * 4096, CpuSeconds: float64(pid) / 100, CgroupPath: cg,
			PodUid: info.PodUID, ContainerId: info.ContainerID, SystemdUnit: info.Unit}
		if len(argv) > 0 && argv[0] != "" {
			p.Exe = argv[0]
		}
		for _, c := range recognize.Recognize(argv).Components {
			p.Components = append(p.Components, c.Proto())
		}
		return p
	}
	uid := func(i int) string { return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", seed, i, i%4096, i%4096, i) }
	cid := func(i int) string { return fmt.Sprintf("%016x%016x%016x%016x", seed, i, seed*7+i, i*13) }
	podCG := func(i int) string {
		return fmt.Sprintf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope", uid(i), cid(i))
	}
	out := []*v1.Process{
		mk(1, []string{"/sbin/init"}, "/init.scope"),
		mk(698, []string{"/usr/bin/containerd"}, "/system.slice/containerd.service"),
		mk(755, []string{"/usr/bin/kubelet", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
			"--config=/var/lib/kubelet/config.yaml", "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"}, "/system.slice/kubelet.service"),
		mk(1176, []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", fmt.Sprintf("--hostname-override=node-%d", seed)}, podCG(1)),
		mk(1442, []string{"/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"}, podCG(2)),
	}
	// One node in a thousand runs etcd as a host daemon, as control-plane
	// nodes of standalone clusters do.
	if seed%1000 == 0 && n > len(out) {
		out = append(out, mk(1300, []string{"/usr/local/bin/etcd", "--name=" + fmt.Sprint(seed), "--data-dir=/var/lib/etcd"}, "/system.slice/etcd.service"))
	}
	for i := len(out); i < n; i++ {
		pid := int32(2000 + i)
		argv := []string{ordinary[(i+seed)%len(ordinary)]}
		cg := "/system.slice/app-" + fmt.Sprint(i%17) + ".service"
		if i%3 == 0 {
			cg = podCG(i)
		}
		out = append(out, mk(pid, argv, cg))
	}
	return out
}

// LoadFleet applies a synthetic fleet: clusters × nodes, procs processes per
// node, as live agent reports.
func LoadFleet(e *apply.Applier, clusters, nodes, procs int) error {
	now := time.Now()
	for c := 0; c < clusters; c++ {
		cluster := fmt.Sprintf("cluster-%02d", c)
		for n := 0; n < nodes; n++ {
			node := fmt.Sprintf("node-%05d", n)
			if err := e.ApplyInventory(apply.Inventory{
				Cluster: cluster, Node: node, Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node, WallClock: timestamppb.New(now)},
				Kubelet:   &v1.KubeletInfo{StaticPodPath: "/etc/kubernetes/manifests", ContainerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"},
				Processes: SyntheticProcesses(procs, c*nodes+n), State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: now, Reference: now,
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// NewApplier returns an applier over a fresh store.
func NewApplier() *apply.Applier {
	st, err := state.NewStore()
	if err != nil {
		panic(err)
	}
	return apply.New(st, apply.Config{})
}
