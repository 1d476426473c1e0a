// Command gen writes the examples/seed-cluster bundle: the reference kubeadm
// 1.27 cluster (six nodes) as API objects, per-node host files and
// `kubeatlas-agent snapshot` outputs. Snapshots are built with the agent's own
// parsers (cgroup, recognition, redaction, manifests, kubelet config) from the
// host files written here, so they are what the agent reports on such nodes.
//
//	go run ./examples/seed-cluster/gen -out examples/seed-cluster
package main

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/cgroup"
	"github.com/kubeatlas/kubeatlas/agent/manifest"
	"github.com/kubeatlas/kubeatlas/internal/stablejson"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
	"github.com/kubeatlas/kubeatlas/redact"
)

const cluster = "seed"

// collectedAt is the collecting machine's clock; node clocks are compared with it.
var collectedAt = time.Date(2023, 5, 10, 8, 0, 0, 0, time.UTC)

// workerSkew is how far the workers' clocks run ahead.
const workerSkew = 2*time.Hour + 13*time.Minute + 7*time.Second

type nodeSpec struct {
	name, ip string
	control  bool
	skew     time.Duration
	bootAgo  time.Duration // real time
	ageOfDS  time.Duration // age of DaemonSet pods on it (real time)
}

var nodes = []nodeSpec{
	{"test", "192.168.19.134", true, 3 * time.Second, 11 * time.Hour, 28 * time.Hour},
	{"zzk-1", "192.168.19.128", false, workerSkew, 10*time.Hour + 40*time.Minute, 28 * time.Hour},
	{"zzk-2", "192.168.19.130", false, workerSkew + 2*time.Second, 10*time.Hour + 38*time.Minute, 28 * time.Hour},
	{"zzk-3", "192.168.19.131", false, workerSkew + 1*time.Second, 10*time.Hour + 41*time.Minute, 28 * time.Hour},
	{"zzk-4", "192.168.19.132", false, workerSkew + 3*time.Second, 10*time.Hour + 39*time.Minute, 28 * time.Hour},
	{"zzk-5", "192.168.19.133", false, workerSkew + 2*time.Second, 10*time.Hour + 37*time.Minute, 28 * time.Hour},
}

const (
	kubeletArgs  = "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.aliyuncs.com/google_containers/pause:3.9"
	etcdArgs     = "--advertise-client-urls=https://192.168.19.134:2379 --cert-file=/etc/kubernetes/pki/etcd/server.crt --client-cert-auth=true --data-dir=/var/lib/etcd --experimental-initial-corrupt-check=true --experimental-watch-progress-notify-interval=5s --initial-advertise-peer-urls=https://192.168.19.134:2380 --initial-cluster=test=https://192.168.19.134:2380 --key-file=/etc/kubernetes/pki/etcd/server.key --listen-client-urls=https://127.0.0.1:2379,https://192.168.19.134:2379 --listen-metrics-urls=http://127.0.0.1:2381 --listen-peer-urls=https://192.168.19.134:2380 --name=test --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt --peer-client-cert-auth=true --peer-key-file=/etc/kubernetes/pki/etcd/peer.key --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt --snapshot-count=10000 --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"
	apiArgs      = "--advertise-address=192.168.19.134 --allow-privileged=true --authorization-mode=Node,RBAC --client-ca-file=/etc/kubernetes/pki/ca.crt --enable-admission-plugins=NodeRestriction --enable-bootstrap-token-auth=true --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key --etcd-servers=https://127.0.0.1:2379 --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname --proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt --proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key --requestheader-allowed-names=front-proxy-client --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt --requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group --requestheader-username-headers=X-Remote-User --secure-port=6443 --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file=/etc/kubernetes/pki/sa.pub --service-account-signing-key-file=/etc/kubernetes/pki/sa.key --service-cluster-ip-range=10.96.0.0/12 --tls-cert-file=/etc/kubernetes/pki/apiserver.crt --tls-private-key-file=/etc/kubernetes/pki/apiserver.key"
	kcmArgs      = "--allocate-node-cidrs=true --authentication-kubeconfig=/etc/kubernetes/controller-manager.conf --authorization-kubeconfig=/etc/kubernetes/controller-manager.conf --bind-address=127.0.0.1 --client-ca-file=/etc/kubernetes/pki/ca.crt --cluster-cidr=10.244.0.0/16 --cluster-name=kubernetes --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt --cluster-signing-key-file=/etc/kubernetes/pki/ca.key --controllers=*,bootstrapsigner,tokencleaner --kubeconfig=/etc/kubernetes/controller-manager.conf --leader-elect=true --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt --root-ca-file=/etc/kubernetes/pki/ca.crt --service-account-private-key-file=/etc/kubernetes/pki/sa.key --service-cluster-ip-range=10.96.0.0/12 --use-service-account-credentials=true"
	schedArgs    = "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf --authorization-kubeconfig=/etc/kubernetes/scheduler.conf --bind-address=127.0.0.1 --kubeconfig=/etc/kubernetes/scheduler.conf --leader-elect=true"
	registry     = "registry.aliyuncs.com/google_containers/"
	flannelImage = "docker.io/flannel/flannel:v0.22.0"
)

// uid makes a stable UUID from a name.
func uid(name string) string {
	s := sha256.Sum256([]byte("uid/" + name))
	h := hex.EncodeToString(s[:16])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// containerID makes a stable 64-hex container ID.
func containerID(name string) string {
	s := sha256.Sum256([]byte("container/" + name))
	return hex.EncodeToString(s[:])
}

// configHash makes a kubelet-style 32-hex config hash for a static pod.
func configHash(name string) string {
	s := md5.Sum([]byte("static/" + name))
	return hex.EncodeToString(s[:])
}

type staticPod struct {
	name, image, qos string
	command          []string
	restarts         int32
	lastRestartAgo   time.Duration
	pid, shim, pause int32
	extraYAML        string
}

var staticPods = []staticPod{
	{"etcd", registry + "etcd:3.5.7-0", "burstable", append([]string{"etcd"}, strings.Fields(etcdArgs)...), 1, 11 * time.Hour, 1326, 1122, 1180, ""},
	{"kube-apiserver", registry + "kube-apiserver:v1.27.0", "burstable", append([]string{"kube-apiserver"}, strings.Fields(apiArgs)...), 7, 4*time.Hour + 59*time.Minute, 18419, 1094, 1171, ""},
	{"kube-controller-manager", registry + "kube-controller-manager:v1.27.0", "burstable", append([]string{"kube-controller-manager"}, strings.Fields(kcmArgs)...), 8, 139 * time.Minute, 57299, 1107, 1174, ""},
	{"kube-scheduler", registry + "kube-scheduler:v1.27.0", "burstable", append([]string{"kube-scheduler"}, strings.Fields(schedArgs)...), 8, 139 * time.Minute, 57379, 1116, 1177, ""},
}

func manifestYAML(sp staticPod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n")
	switch sp.name {
	case "etcd":
		b.WriteString("  annotations:\n    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://192.168.19.134:2379\n")
	case "kube-apiserver":
		b.WriteString("  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 192.168.19.134:6443\n")
	}
	fmt.Fprintf(&b, "  creationTimestamp: null\n  labels:\n    component: %s\n    tier: control-plane\n  name: %s\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n", sp.name, sp.name)
	for _, a := range sp.command {
		fmt.Fprintf(&b, "    - %s\n", yamlScalar(a))
	}
	fmt.Fprintf(&b, "    image: %s\n    imagePullPolicy: IfNotPresent\n    name: %s\n    resources:\n      requests:\n        cpu: %s\n", sp.image, sp.name, map[string]string{"etcd": "100m", "kube-apiserver": "250m", "kube-controller-manager": "200m", "kube-scheduler": "100m"}[sp.name])
	if sp.name == "etcd" {
		b.WriteString("        memory: 100Mi\n")
	}
	b.WriteString("  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\nstatus: {}\n")
	return b.String()
}

func yamlScalar(s string) string {
	if strings.ContainsAny(s, "*:,{}[]&!|>'\"%@`#") && !strings.HasPrefix(s, "--") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	if strings.Contains(s, "=*") {
		return "'" + s + "'"
	}
	return s
}

func main() {
	out := flag.String("out", "examples/seed-cluster", "bundle directory to write")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

func run(out string) error {
	for _, d := range []string{"api", "nodes", "hosts"} {
		if err := os.RemoveAll(filepath.Join(out, d)); err != nil {
			return err
		}
	}
	if err := write(filepath.Join(out, "bundle.yaml"), fmt.Sprintf("# The reference kubeadm 1.27 cluster; see README.md.\ncluster: %s\n# The clock of the machine that took the bundle; node clocks are compared with it.\ncollectedAt: %s\n", cluster, collectedAt.Format(time.RFC3339))); err != nil {
		return err
	}
	var api apiWriter
	api.namespaces()
	api.workloads()
	for _, n := range nodes {
		api.node(n)
	}
	for _, n := range nodes {
		inv, err := snapshot(out, n, &api)
		if err != nil {
			return err
		}
		data, err := stablejson.Marshal(inv)
		if err != nil {
			return err
		}
		if err := write(filepath.Join(out, "nodes", n.name+".json"), string(data)+"\n"); err != nil {
			return err
		}
	}
	for name, body := range api.files() {
		if err := write(filepath.Join(out, "api", name), body); err != nil {
			return err
		}
	}
	return nil
}

func write(path, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// proc is one process on a node, in that node's own clock.
type proc struct {
	pid, ppid int32
	argv      string
	cgroup    string
	started   time.Time
	rss       uint64
	cpu       float64
}

func podSlice(qos, podUID string) string {
	u := strings.ReplaceAll(podUID, "-", "_")
	if qos == "guaranteed" {
		return "/kubepods.slice/kubepods-pod" + u + ".slice"
	}
	return fmt.Sprintf("/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice", qos, qos, u)
}

func snapshot(out string, n nodeSpec, api *apiWriter) (*v1.NodeInventory, error) {
	hostRoot := filepath.Join(out, "hosts", n.name)
	nodeNow := collectedAt.Add(n.skew)
	boot := nodeNow.Add(-n.bootAgo)
	at := func(ago time.Duration) time.Time { return nodeNow.Add(-ago) }
	sinceBoot := func(d time.Duration) time.Time { return boot.Add(d) }
	// Host files the agent reads.
	if err := write(filepath.Join(hostRoot, "var/lib/kubelet/config.yaml"), kubeletConfigYAML); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(hostRoot, manifest.KubeadmFlagsFile), `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.aliyuncs.com/google_containers/pause:3.9"`+"\n"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(hostRoot, manifest.DefaultDir), 0o755); err != nil {
		return nil, err
	}
	procs := []proc{
		{1, 0, "/sbin/init", "/init.scope", sinceBoot(0), 12 << 20, 41.2},
		{402, 1, "/lib/systemd/systemd-journald", "/system.slice/systemd-journald.service", sinceBoot(2 * time.Second), 30 << 20, 12.4},
		{655, 1, "/usr/sbin/sshd -D", "/system.slice/ssh.service", sinceBoot(6 * time.Second), 7 << 20, 0.3},
		{698, 1, "/usr/bin/containerd", "/system.slice/containerd.service", sinceBoot(6 * time.Second), 52 << 20, 1893.1},
		{903, 1, "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", "/system.slice/docker.service", sinceBoot(8 * time.Second), 81 << 20, 211.9},
	}
	kubeletPID := int32(755)
	if n.control {
		kubeletPID = 761
	}
	procs = append(procs, proc{kubeletPID, 1, "/usr/bin/kubelet " + kubeletArgs, "/system.slice/kubelet.service", sinceBoot(7 * time.Second), 96 << 20, 5120.4})
	if n.control {
		for _, sp := range staticPods {
			hash := configHash(sp.name + "-" + n.name)
			body := manifestYAML(sp)
			if err := write(filepath.Join(hostRoot, manifest.DefaultDir, sp.name+".yaml"), body); err != nil {
				return nil, err
			}
			slice := podSlice(sp.qos, hash)
			cid := containerID(sp.name + "-" + n.name + "/" + sp.name)
			pauseID := containerID(sp.name + "-" + n.name + "/pause")
			started := at(sp.lastRestartAgo)
			procs = append(procs,
				proc{sp.shim, 1, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id " + pauseID + " -address /run/containerd/containerd.sock", "/system.slice/containerd.service", sinceBoot(40 * time.Second), 9 << 20, 3.1},
				proc{sp.pause, sp.shim, "/pause", slice + "/cri-containerd-" + pauseID + ".scope", sinceBoot(41 * time.Second), 1 << 20, 0.01},
				proc{sp.pid, sp.shim, strings.Join(sp.command, " "), slice + "/cri-containerd-" + cid + ".scope", started, 300 << 20, 900.5})
			api.staticPod(n, sp, hash, cid, collectedAt.Add(-sp.lastRestartAgo), collectedAt.Add(-sp.lastRestartAgo-time.Second))
		}
	}
	// DaemonSet pods: kube-proxy and flannel.
	proxyPod, flannelPod := dsPodNames(n.name)
	restarts := int32(1)
	if n.name == "zzk-1" {
		restarts = 2
	}
	lastRestartReal := n.bootAgo - 50*time.Second
	proxyPID, proxyShim, flannelPID, flannelShim := int32(1176), int32(1079), int32(1442), int32(1090)
	if n.control {
		proxyPID, proxyShim, flannelPID, flannelShim = 1639, 1449, 1866, 1411
	}
	for _, ds := range []struct {
		pod, app, argv, qos string
		pid, shim           int32
	}{
		{proxyPod, "kube-proxy", "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=" + n.name, "besteffort", proxyPID, proxyShim},
		{flannelPod, "kube-flannel", "/opt/bin/flanneld --ip-masq --kube-subnet-mgr", "burstable", flannelPID, flannelShim},
	} {
		podUID := uid(ds.pod)
		cid := containerID(ds.pod + "/" + ds.app)
		pauseID := containerID(ds.pod + "/pause")
		slice := podSlice(ds.qos, podUID)
		procs = append(procs,
			proc{ds.shim, 1, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id " + pauseID + " -address /run/containerd/containerd.sock", "/system.slice/containerd.service", sinceBoot(45 * time.Second), 9 << 20, 2.2},
			proc{ds.shim + 40, ds.shim, "/pause", slice + "/cri-containerd-" + pauseID + ".scope", sinceBoot(46 * time.Second), 1 << 20, 0.01},
			proc{ds.pid, ds.shim, ds.argv, slice + "/cri-containerd-" + cid + ".scope", sinceBoot(50 * time.Second), 40 << 20, 61.7})
		// The kubelet stamps restart times with the node's own clock.
		finished := collectedAt.Add(n.skew).Add(-lastRestartReal)
		api.dsPod(n, ds.pod, ds.app, podUID, cid, restarts, finished)
	}
	if n.control {
		for i, c := range []struct {
			pod       string
			pid, shim int32
			ip        string
		}{{"coredns-7bdc4cb885-2qgtj", 2093, 2034, "10.244.0.5"}, {"coredns-7bdc4cb885-wj5cr", 2214, 2161, "10.244.0.4"}} {
			podUID := uid(c.pod)
			cid := containerID(c.pod + "/coredns")
			pauseID := containerID(c.pod + "/pause")
			slice := podSlice("burstable", podUID)
			procs = append(procs,
				proc{c.shim, 1, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id " + pauseID + " -address /run/containerd/containerd.sock", "/system.slice/containerd.service", sinceBoot(70 * time.Second), 9 << 20, 1.2},
				proc{c.shim + 20, c.shim, "/pause", slice + "/cri-containerd-" + pauseID + ".scope", sinceBoot(71 * time.Second), 1 << 20, 0.01},
				proc{c.pid, c.shim, "/coredns -conf /etc/coredns/Corefile", slice + "/cri-containerd-" + cid + ".scope", sinceBoot(73*time.Second + time.Duration(i)*time.Second), 22 << 20, 120.3})
			api.corednsPod(n, c.pod, podUID, cid, c.ip, collectedAt.Add(-n.bootAgo+70*time.Second))
		}
	}
	procs = append(procs,
		proc{30211, 655, "sshd: root@pts/0", "/user.slice/user-0.slice/session-4.scope", at(20 * time.Minute), 9 << 20, 0.2},
		proc{30240, 30211, "-bash", "/user.slice/user-0.slice/session-4.scope", at(20 * time.Minute), 5 << 20, 0.1})

	inv := &v1.NodeInventory{
		Identity: &v1.NodeIdentity{
			Cluster: cluster, NodeName: n.name, Hostname: n.name,
			MachineId:     hex.EncodeToString([]byte(fmt.Sprintf("%-16s", n.name))),
			BootId:        uid("boot/" + n.name),
			KernelVersion: "5.15.0-71-generic", OsImage: "Ubuntu 22.04.2 LTS", AgentVersion: "v0.1.0",
			WallClock: timestamppb.New(nodeNow), BootTime: timestamppb.New(boot),
		},
		Stats: &v1.ScanStats{ProcessesSeen: uint32(len(procs))},
	}
	var kubeletFlags recognize.Flags
	for _, p := range procs {
		argv := strings.Fields(p.argv)
		if strings.HasPrefix(p.argv, "sshd: ") {
			argv = []string{p.argv}
		}
		argv = redact.Argv(argv)
		cg := cgroup.ParsePath(p.cgroup)
		rec := &v1.Process{
			Pid: p.pid, Ppid: p.ppid, StartTime: timestamppb.New(p.started.Truncate(10 * time.Millisecond)),
			User: "root", Argv: argv, RssBytes: p.rss, CpuSeconds: p.cpu,
			CgroupPath: cg.Path, PodUid: cg.PodUID, ContainerId: cg.ContainerID, SystemdUnit: cg.Unit,
		}
		switch cg.Runtime {
		case cgroup.RuntimeContainerd:
			rec.Runtime = v1.ContainerRuntime_CONTAINER_RUNTIME_CONTAINERD
		}
		switch cg.QOS {
		case cgroup.QOSBurstable:
			rec.QosClass = v1.QOSClass_QOS_CLASS_BURSTABLE
		case cgroup.QOSBestEffort:
			rec.QosClass = v1.QOSClass_QOS_CLASS_BEST_EFFORT
		case cgroup.QOSGuaranteed:
			rec.QosClass = v1.QOSClass_QOS_CLASS_GUARANTEED
		}
		if !strings.HasPrefix(argv[0], "/") && !strings.HasPrefix(argv[0], "-") && !strings.Contains(argv[0], ":") {
			rec.Exe = "/usr/local/bin/" + argv[0]
		} else if strings.HasPrefix(argv[0], "/") {
			rec.Exe = argv[0]
		}
		r := recognize.Recognize(argv)
		rec.Infrastructure = r.Infrastructure
		for _, c := range r.Components {
			rec.Components = append(rec.Components, c.Proto())
			if c.Name == v1.ComponentKubelet {
				kubeletFlags = c.Flags
			}
		}
		if rec.Components != nil {
			inv.Stats.ComponentProcesses++
		}
		inv.Processes = append(inv.Processes, rec)
	}
	sortProcs(inv.Processes)
	inv.Kubelet = manifest.Kubelet(hostRoot, "/", kubeletFlags)
	mans, err := manifest.Dir(hostRoot, inv.Kubelet.StaticPodPath, nil)
	if err != nil {
		return nil, err
	}
	for _, m := range mans {
		// The files' times on the node: written by kubeadm init, 41 hours ago.
		m.Mtime = timestamppb.New(nodeNow.Add(-41*time.Hour - 5*time.Minute))
	}
	inv.Manifests = mans
	return inv, nil
}

const kubeletConfigYAML = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
kind: KubeletConfiguration
rotateCertificates: true
runtimeRequestTimeout: 0s
staticPodPath: /etc/kubernetes/manifests
`

func sortProcs(ps []*v1.Process) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Pid < ps[j-1].Pid; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func dsPodNames(node string) (proxy, flannel string) {
	proxyNames := map[string]string{"test": "kube-proxy-8hkml", "zzk-1": "kube-proxy-xgvz8", "zzk-2": "kube-proxy-xxbdn", "zzk-3": "kube-proxy-qs8bt", "zzk-4": "kube-proxy-kzspb", "zzk-5": "kube-proxy-l9tz7"}
	flannelNames := map[string]string{"test": "kube-flannel-ds-q6fkt", "zzk-1": "kube-flannel-ds-x464d", "zzk-2": "kube-flannel-ds-d2qzw", "zzk-3": "kube-flannel-ds-5v98d", "zzk-4": "kube-flannel-ds-j42lk", "zzk-5": "kube-flannel-ds-7p4mt"}
	return proxyNames[node], flannelNames[node]
}
