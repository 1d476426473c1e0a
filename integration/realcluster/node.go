package realcluster

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/kubeatlas/kubeatlas/integration/harness"
)

// The node's addresses. They live only in the network namespace the test
// makes, and collide with nothing on the host (checked in Start).
const (
	NodeIP        = "10.254.0.10"
	nodeCIDR      = NodeIP + "/24"
	PodSubnet     = "10.254.64.0/18"
	ServiceSubnet = "10.254.128.0/20"
	NodeName      = "kubeatlas-rc"
	ClusterName   = "kubeatlas-rc"
	PauseImage    = "registry.k8s.io/pause:3.10.2"
)

// Node is a single-node kubeadm cluster: containerd and a kubelet as host
// daemons in their own unit cgroups, the control plane as static pods. Every
// process runs in one network namespace and one mount namespace that the
// test makes; in the mount namespace the directories kubeadm, the kubelet
// and containerd write to are bind mounts of the node's own directory, so
// removing the namespaces and that directory removes everything.
type Node struct {
	t    T
	Bins Binaries
	Dir  string
	// NetNS is the network namespace's name under /run/netns.
	NetNS string
	// Cgroup is the node's cgroup path, the same in every hierarchy, beneath
	// this process's own.
	Cgroup string
	Socket string

	// holder is unshare, which made the namespaces; holderPID is its child,
	// the node's PID 1, whose namespaces every node process joins.
	holder              *exec.Cmd
	holderPID           int
	containerd, kubelet *daemon
	hierarchies         []string
	madeDirs            []string
	madeCgroups         []string
	kept                bool
	tls                 bool
	cleanups            []func()
}

// binds are the directories the node writes to, each a bind mount of a
// directory of its own inside the mount namespace.
var binds = []string{
	"/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/cni/net.d", "/var/lib/cni",
	"/var/log/pods", "/var/log/containers", "/run/containerd", "/run/netns", "/opt/cni/bin",
	"/run/flannel", "/lib/modules", "/etc/kubeatlas",
}

// Start brings the node up: packages, namespaces, cgroups, containerd, the
// images, then `kubeadm init` with the kubelet started as its unit would be.
// Everything is undone by t.Cleanup, in reverse.
func Start(t T, bins Binaries) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the real cluster needs root: namespaces, cgroups, containerd and a kubelet")
	}
	ensurePackages(t)
	dir, err := os.MkdirTemp("", "kubeatlas-rc-")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, Bins: bins, Dir: dir, NetNS: filepath.Base(dir), Socket: filepath.Join(dir, "containerd.sock")}
	t.Cleanup(n.stop)
	n.step("sweep", func() error {
		SweepStale(t.Logf, false)
		// Nodes share the host's mount points (/etc/kubernetes, …) beneath
		// their own mounts: one at a time on a machine.
		others, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubeatlas-rc-*", "state.json"))
		if len(others) > 0 {
			return fmt.Errorf("another node is up on this machine (%s): one node runs at a time; `make cluster-down` removes the one `make cluster` left", filepath.Dir(others[0]))
		}
		return nil
	})
	n.step("namespaces", n.namespaces)
	n.step("cgroups", n.makeCgroups)
	n.step("holder", func() error {
		if err := n.place(n.holder.Process.Pid, "holder"); err != nil {
			return err
		}
		return n.place(n.holderPID, "holder")
	})
	n.step("containerd", n.startContainerd)
	n.step("images", n.importImages)
	n.step("kubeadm init", n.kubeadmInit)
	n.step("flannel", n.applyFlannel)
	n.step("pods ready", n.waitPodsReady)
	return n
}

func (n *Node) step(name string, f func() error) {
	n.t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		n.t.Fatalf("real cluster: %s: %v", name, err)
	}
	n.t.Logf("real cluster: %s in %s", name, time.Since(start).Round(time.Millisecond))
}

// ensurePackages installs containerd, runc and the CNI plugins when one is
// missing.
func ensurePackages(t T) {
	t.Helper()
	var missing []string
	for bin, pkg := range map[string]string{"containerd": "containerd", "runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins", "ip": "iproute2", "nsenter": "util-linux", "iptables": "iptables"} {
		if strings.HasPrefix(bin, "/") {
			if _, err := os.Stat(bin); err == nil {
				continue
			}
		} else if _, err := exec.LookPath(bin); err == nil {
			continue
		}
		missing = append(missing, pkg)
	}
	if len(missing) == 0 {
		return
	}
	t.Logf("installing %s", strings.Join(missing, " "))
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install %s: %v\n%s", strings.Join(missing, " "), err, out)
	}
}

// Command runs argv inside the node's network, mount and PID namespaces.
// nsenter forks into the PID namespace and waits for argv; cancelling ctx
// kills both.
func (n *Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"--target", strconv.Itoa(n.holderPID), "--mount", "--net", "--pid", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/etc/kubernetes/admin.conf")
	cmd.Cancel = func() error { killTree(cmd, syscall.SIGKILL); return nil }
	return cmd
}

// killTree signals a command started by Command: nsenter's child in the
// node, then nsenter.
func killTree(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process == nil {
		return
	}
	for _, pid := range children(cmd.Process.Pid) {
		_ = syscall.Kill(pid, sig)
	}
	_ = cmd.Process.Signal(sig)
}

// children lists a process's children, as this process sees their PIDs.
func children(pid int) []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if c, err := strconv.Atoi(f); err == nil {
			pids = append(pids, c)
		}
	}
	return pids
}

// nsPID is a process's PID in its innermost PID namespace (the node's, for
// the node's processes): the last field of NSpid in its status.
func nsPID(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			return strconv.Atoi(f[len(f)-1])
		}
	}
	return 0, fmt.Errorf("process %d: no NSpid in its status", pid)
}

// daemon is a long-running process of the node, as a systemd unit would
// run it: in the node's namespaces and in its unit's cgroup from its first
// instruction.
type daemon struct {
	cmd *exec.Cmd // nsenter, in this process's PID namespace
	// PID is the daemon's PID as this process sees it, NodePID as the
	// node (and so the kubelet, containerd and kubeatlas) sees it.
	PID, NodePID int
}

// startDaemon starts argv as unit: a shell joins the unit's cgroup in every
// hierarchy, then becomes argv.
func (n *Node) startDaemon(unit string, log *os.File, argv ...string) (*daemon, error) {
	var script strings.Builder
	for _, mnt := range n.hierarchies {
		fmt.Fprintf(&script, "echo $$ > '%s'\n", filepath.Join(mnt, n.Cgroup, "system.slice", unit, "cgroup.procs"))
	}
	script.WriteString(`exec "$@"`)
	cmd := n.Command(context.Background(), append([]string{"sh", "-c", script.String(), unit}, argv...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd}
	err := harness.Eventually(10*time.Second, 10*time.Millisecond, func() error {
		c := children(cmd.Process.Pid)
		if len(c) == 0 {
			return fmt.Errorf("nsenter (%d) has not forked %s", cmd.Process.Pid, unit)
		}
		d.PID = c[0]
		var err error
		d.NodePID, err = nsPID(d.PID)
		return err
	})
	if err != nil {
		killTree(cmd, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	return d, nil
}

// running reports whether the daemon has not been stopped.
func (d *daemon) running() bool { return d != nil && d.cmd.ProcessState == nil }

// stop stops the daemon with SIGTERM, and SIGKILL after ten seconds.
func (d *daemon) stop() {
	if !d.running() {
		return
	}
	_ = syscall.Kill(d.PID, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		killTree(d.cmd, syscall.SIGKILL)
		<-done
	}
}

// Run runs argv in the node and returns its standard output.
func (n *Node) Run(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := n.Command(ctx, argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Kubectl runs kubectl as the cluster's admin.
func (n *Node) Kubectl(args ...string) (string, error) {
	return n.Run(append([]string{n.Bins.Kubectl}, args...)...)
}

// Crictl runs crictl against the node's containerd.
func (n *Node) Crictl(args ...string) (string, error) {
	return n.Run(append([]string{n.Bins.Crictl, "--runtime-endpoint", "unix://" + n.Socket, "--timeout", "20s"}, args...)...)
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Node) namespaces() error {
	out, err := exec.Command("ip", "-o", "addr").Output()
	if err != nil {
		return err
	}
	if strings.Contains(string(out), " 10.254.") {
		return errors.New("10.254.0.0/16 is in use on this host; the node's addresses would collide")
	}
	if err := run("ip", "netns", "add", n.NetNS); err != nil {
		return err
	}
	n.cleanups = append(n.cleanups, func() { _ = run("ip", "netns", "del", n.NetNS) })
	for _, argv := range [][]string{
		{"link", "set", "lo", "up"},
		// A veth pair (this kernel has no dummy links): the node's address
		// sits on one end, and both ends stay inside the namespace.
		{"link", "add", "ka0", "type", "veth", "peer", "name", "ka1"},
		{"addr", "add", nodeCIDR, "dev", "ka0"},
		{"link", "set", "ka0", "up"},
		{"link", "set", "ka1", "up"},
		{"route", "add", "default", "dev", "ka0"},
	} {
		if err := run(append([]string{"ip", "-n", n.NetNS}, argv...)...); err != nil {
			return err
		}
	}
	// The mount namespace: a holder process keeps it (and its mounts)
	// alive; everything else joins it with nsenter.
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, b := range binds {
		own := filepath.Join(n.Dir, "fs", strings.ReplaceAll(strings.Trim(b, "/"), "/", "-"))
		if err := os.MkdirAll(own, 0o755); err != nil {
			return err
		}
		// Mount points missing on the host are made, and every level made
		// is remembered, outermost first, for stop to remove.
		var missing []string
		for d := b; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			missing = append([]string{d}, missing...)
		}
		if err := os.MkdirAll(b, 0o755); err != nil {
			return err
		}
		n.madeDirs = append(n.madeDirs, missing...)
		fmt.Fprintf(&script, "mount --bind %s %s\n", own, b)
	}
	// PID 1 of the node's PID namespace reaps orphans, as a node's init does.
	fmt.Fprintf(&script, "mount --make-rshared /var/lib/kubelet\necho ready\nexec %s\n", n.Bins.Pause)
	if err := n.save(); err != nil {
		return err
	}
	// The PID namespace, with /proc mounted for it, keeps the node's
	// processes apart from the host's: its agent sees the node's, as on a
	// machine of its own.
	n.holder = exec.Command("nsenter", "--net=/run/netns/"+n.NetNS, "--", "unshare", "--mount", "--propagation", "private",
		"--pid", "--fork", "--kill-child", "--mount-proc", "--", "sh", "-c", script.String())
	stdout, err := n.holder.StdoutPipe()
	if err != nil {
		return err
	}
	n.holder.Stderr = os.Stderr
	if err := n.holder.Start(); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		return fmt.Errorf("the mount namespace did not come up: %q %v", line, err)
	}
	c := children(n.holder.Process.Pid)
	if len(c) != 1 {
		return fmt.Errorf("unshare (%d) has %d children, want the node's PID 1", n.holder.Process.Pid, len(c))
	}
	n.holderPID = c[0]
	if err := n.save(); err != nil {
		return err
	}
	// Debian's CNI plugins, where the kubelet and containerd look.
	return run("nsenter", "--target", strconv.Itoa(n.holderPID), "--mount", "--", "sh", "-c", "cp -a /usr/lib/cni/. /opt/cni/bin/")
}

// makeCgroups makes the node's cgroup in every v1 hierarchy (or the unified
// one), beneath this process's own, with the two unit cgroups a systemd host
// would have.
func (n *Node) makeCgroups() error {
	own, err := ownCgroups()
	if err != nil {
		return err
	}
	// One path must lie beneath this process's cgroup in every hierarchy:
	// the deepest of them, when the others are its prefixes.
	deepest := "/"
	for _, p := range own {
		if len(p) > len(deepest) {
			deepest = p
		}
	}
	for mnt, p := range own {
		if !strings.HasPrefix(deepest, p) {
			return fmt.Errorf("this process's cgroups differ between hierarchies (%s in %s); no one path lies beneath all", p, mnt)
		}
		n.hierarchies = append(n.hierarchies, mnt)
	}
	n.Cgroup = filepath.Join(deepest, n.NetNS)
	for _, mnt := range n.hierarchies {
		for _, unit := range []string{"containerd.service", "kubelet.service", "holder"} {
			if err := n.mkCgroup(mnt, filepath.Join(n.Cgroup, "system.slice", unit)); err != nil {
				return err
			}
		}
	}
	return n.save()
}

// mkCgroup makes a cgroup level by level, remembering each level it made
// (stop removes them, deepest first). A new cpuset cgroup takes no task
// until it has cpus and memory nodes, so it gets its parent's.
func (n *Node) mkCgroup(mnt, path string) error {
	dir := mnt
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); errors.Is(err, os.ErrExist) {
			continue
		} else if err != nil {
			return err
		}
		n.madeCgroups = append(n.madeCgroups, dir)
		if filepath.Base(mnt) == "cpuset" || strings.Contains(filepath.Base(mnt), "cpuset") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// ownCgroups maps each cgroup mount point to this process's path in it.
func ownCgroups() (map[string]string, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{} // controllers (or "" for v2) → path
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			paths[parts[1]] = parts[2]
		}
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(mounts), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[3] != "/" {
			continue
		}
		mnt, fstype, opts := fields[4], fields[sep+1], fields[sep+3]
		switch fstype {
		case "cgroup2":
			// The unified hierarchy, alone or beside v1 ones (hybrid).
			if p, ok := paths[""]; ok {
				out[mnt] = p
			}
		case "cgroup":
			for ctrl, p := range paths {
				if ctrl == "" {
					continue
				}
				if hasAll(opts, ctrl) {
					out[mnt] = p
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup hierarchy found")
	}
	return out, nil
}

func hasAll(opts, ctrls string) bool {
	have := map[string]bool{}
	for _, o := range strings.Split(opts, ",") {
		have[o] = true
	}
	for _, c := range strings.Split(ctrls, ",") {
		if !have[c] {
			return false
		}
	}
	return true
}

// place moves a process into a unit cgroup of the node in every hierarchy.
func (n *Node) place(pid int, unit string) error {
	for _, mnt := range n.hierarchies {
		procs := filepath.Join(mnt, n.Cgroup, "system.slice", unit, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) startContainerd() error {
	conf := filepath.Join(n.Dir, "containerd.toml")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
`, filepath.Join(n.Dir, "containerd", "root"), filepath.Join(n.Dir, "containerd", "state"), n.Socket, PauseImage)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(n.Dir, "containerd.log"))
	if err != nil {
		return err
	}
	if n.containerd, err = n.startDaemon("containerd.service", log, "containerd", "--config", conf); err != nil {
		return err
	}
	return harness.Eventually(60*time.Second, 250*time.Millisecond, func() error {
		_, err := n.Run("ctr", "--address", n.Socket, "version")
		return err
	})
}

// images are the node's images, under the names kubeadm asks for (as
// `kubeadm config images list` gives them), and flannel's.
func (n *Node) images() ([]Image, error) {
	out, err := exec.Command(n.Bins.Kubeadm, "config", "images", "list", "--kubernetes-version", "v1.37.2").Output()
	if err != nil {
		return nil, fmt.Errorf("kubeadm config images list: %w", err)
	}
	refs := map[string]string{} // kube-apiserver → registry.k8s.io/kube-apiserver:v1.37.2
	for _, ref := range strings.Fields(string(out)) {
		repo, _, _ := strings.Cut(ref, ":")
		refs[filepath.Base(repo)] = ref
	}
	bin := func(name, path string) Image {
		return Image{Ref: refs[name], Files: map[string]string{"usr/local/bin/" + filepath.Base(path): path}}
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns", "pause"} {
		if refs[name] == "" {
			return nil, fmt.Errorf("kubeadm lists no %s image:\n%s", name, out)
		}
	}
	if refs["pause"] != PauseImage {
		return nil, fmt.Errorf("kubeadm asks for %s, but containerd's sandbox image is %s", refs["pause"], PauseImage)
	}
	iptables := []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}
	proxy := bin("kube-proxy", n.Bins.Proxy)
	if err := proxy.AddHostPrograms(iptables, "/usr/lib/x86_64-linux-gnu/xtables"); err != nil {
		return nil, err
	}
	flannel := Image{Ref: FlannelImage, Files: map[string]string{
		"usr/local/bin/flanneld":              n.Bins.Flanneld,
		"usr/local/bin/kubeatlas-install-cni": n.Bins.InstallCNI,
	}}
	if err := flannel.AddHostPrograms(iptables, "/usr/lib/x86_64-linux-gnu/xtables"); err != nil {
		return nil, err
	}
	return []Image{
		bin("kube-apiserver", n.Bins.APIServer),
		bin("kube-controller-manager", n.Bins.ControllerManager),
		bin("kube-scheduler", n.Bins.Scheduler),
		bin("etcd", n.Bins.Etcd),
		proxy,
		flannel,
		{Ref: refs["coredns"], Files: map[string]string{"coredns": n.Bins.CoreDNS}, Entrypoint: []string{"/coredns"}},
		{Ref: refs["pause"], Files: map[string]string{"pause": n.Bins.Pause}, Entrypoint: []string{"/pause"}},
	}, nil
}

// FlannelImage is the CNI DaemonSet's image, built here.
const FlannelImage = "kubeatlas.test/flannel:" + FlannelVersion

func (n *Node) importImages() error {
	images, err := n.images()
	if err != nil {
		return err
	}
	for _, img := range images {
		archive, err := img.Archive(n.Bins.Images)
		if err != nil {
			return err
		}
		if _, err := n.Run("ctr", "--address", n.Socket, "-n", "k8s.io", "images", "import", archive); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) kubeadmInit() error {
	conf := filepath.Join(n.Dir, "kubeadm.yaml")
	cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %[1]s
  bindPort: 6443
nodeRegistration:
  name: %[2]s
  criSocket: unix://%[3]s
  imagePullPolicy: Never
  ignorePreflightErrors: [all]
  kubeletExtraArgs:
  - name: node-ip
    value: %[1]s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
clusterName: %[4]s
networking:
  podSubnet: %[5]s
  serviceSubnet: %[6]s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: %[7]s
failCgroupV1: false
failSwapOn: false
# The test shares this machine's disk: the default thresholds (imagefs under
# 15 percent free) would taint the node with disk pressure on a busy disk, and
# image garbage collection would delete images that cannot be pulled again.
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
containerRuntimeEndpoint: unix://%[3]s
`, NodeIP, NodeName, n.Socket, ClusterName, PodSubnet, ServiceSubnet, n.Cgroup)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(n.Dir, "kubeadm.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	init := n.Command(ctx, n.Bins.Kubeadm, "init", "--config", conf, "-v", "1")
	init.Stdout, init.Stderr = log, log
	if err := init.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- init.Wait() }()
	// kubeadm writes the kubelet's configuration and asks systemd to start
	// it; there is no systemd here, so the node starts it as its unit would.
	flags := filepath.Join(n.Dir, "fs", "var-lib-kubelet", "kubeadm-flags.env")
	for {
		if _, err := os.Stat(flags); err == nil {
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("kubeadm init ended before the kubelet could start (%v):\n%s", err, tail(log.Name(), 40))
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := n.startKubelet(flags); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return fmt.Errorf("kubeadm init: %v\n%s\nkubelet:\n%s", err, tail(log.Name(), 40), tail(filepath.Join(n.Dir, "kubelet.log"), 40))
	}
	return nil
}

func (n *Node) startKubelet(flagsFile string) error {
	var env []byte
	// The file is written in one go; wait until it holds its line.
	err := harness.Eventually(10*time.Second, 250*time.Millisecond, func() error {
		var err error
		env, err = os.ReadFile(flagsFile)
		if err == nil && !strings.Contains(string(env), "KUBELET_KUBEADM_ARGS=") {
			err = errors.New("empty")
		}
		return err
	})
	if err != nil {
		return err
	}
	line := strings.TrimSpace(string(env))
	line = strings.TrimPrefix(line, "KUBELET_KUBEADM_ARGS=")
	line = strings.Trim(line, `"`)
	argv := append([]string{n.Bins.Kubelet,
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml"}, strings.Fields(line)...)
	log, err := os.OpenFile(filepath.Join(n.Dir, "kubelet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.kubelet, err = n.startDaemon("kubelet.service", log, argv...)
	return err
}

// stop undoes Start, in the order the kubelet and containerd need: the
// kubelet first (else it restarts what is stopped), every pod, containerd,
// whatever is left in the node's cgroups, the namespaces, the cgroups, the
// directories.
func (n *Node) stop() {
	if n.t.Failed() {
		n.keepLogs()
	}
	n.kubelet.stop()
	if n.containerd.running() {
		if _, err := n.Crictl("rmp", "--all", "--force"); err != nil {
			n.t.Logf("removing pods: %v", err)
		}
		n.containerd.stop()
	}
	// Shims and containers that outlived containerd.
	for range 50 {
		if n.killCgroupProcs() == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n.holder != nil && n.holder.Process != nil {
		kill(n.holder)
	}
	for i := len(n.cleanups) - 1; i >= 0; i-- {
		n.cleanups[i]()
	}
	n.removeMade()
	if err := os.RemoveAll(n.Dir); err != nil {
		n.t.Logf("removing %s: %v", n.Dir, err)
	}
}

func kill(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// killCgroupProcs kills every process in the node's cgroups and returns how
// many it found.
func (n *Node) killCgroupProcs() int {
	found := 0
	for _, mnt := range n.hierarchies {
		_ = filepath.WalkDir(filepath.Join(mnt, n.Cgroup), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					found++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
	return found
}

// removeTree removes a cgroup and everything beneath it, deepest first.
func removeTree(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}

func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// HostRoot is the node's file system as its processes see it: the mount
// namespace's root, through the holder process.
func (n *Node) HostRoot() string { return fmt.Sprintf("/proc/%d/root", n.holderPID) }

// LocalKubeconfig writes the admin kubeconfig with its server replaced by
// addr (a Forward of the API server), keeping the certificate's name.
func (n *Node) LocalKubeconfig(t T, addr string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.Dir, "fs", "etc-kubernetes", "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	server := "https://" + NodeIP + ":6443"
	if !strings.Contains(string(data), "server: "+server) {
		t.Fatalf("admin.conf does not name %s", server)
	}
	out := strings.Replace(string(data), "server: "+server, "server: https://"+addr+"\n    tls-server-name: kubernetes", 1)
	path := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runHost runs a program on this host (not in the node) and returns its
// standard output.
func (n *Node) runHost(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// keepLogs copies the node's logs out of its directory, which stop removes,
// so that a failed run can be read afterwards.
func (n *Node) keepLogs() {
	dst := filepath.Join(os.TempDir(), n.NetNS+"-logs")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(n.Dir, "*.log"))
	pods, _ := filepath.Glob(filepath.Join(n.Dir, "fs", "var-log-pods", "*", "*", "*.log"))
	for _, l := range append(logs, pods...) {
		if data, err := os.ReadFile(l); err == nil {
			name := strings.TrimPrefix(strings.ReplaceAll(strings.TrimPrefix(l, n.Dir), "/", "_"), "_")
			_ = os.WriteFile(filepath.Join(dst, name), data, 0o644)
		}
	}
	n.t.Logf("the node's logs are kept in %s", dst)
}

//go:embed flannel.yaml
var flannelYAML string

// applyFlannel installs the CNI DaemonSet once the controller manager has
// given the node its pod CIDR.
func (n *Node) applyFlannel() error {
	var cidr string
	err := harness.Eventually(2*time.Minute, 250*time.Millisecond, func() error {
		out, err := n.Kubectl("get", "node", NodeName, "-o", "jsonpath={.spec.podCIDR}")
		if err == nil && out == "" {
			err = errors.New("the node has no pod CIDR yet")
		}
		cidr = out
		return err
	})
	if err != nil {
		return err
	}
	tmpl, err := template.New("flannel").Parse(flannelYAML)
	if err != nil {
		return err
	}
	path := filepath.Join(n.Dir, "flannel.yaml")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = tmpl.Execute(f, map[string]string{"PodCIDR": cidr, "PodSubnet": PodSubnet, "Image": FlannelImage})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = n.Kubectl("apply", "-f", path)
	return err
}

// waitPodsReady waits until the cluster's pods are all Ready: the control
// plane, kube-proxy, flannel and CoreDNS, each there at least once.
func (n *Node) waitPodsReady() error {
	var last string
	err := harness.Eventually(4*time.Minute, 250*time.Millisecond, func() error {
		out, err := n.Kubectl("get", "pods", "-A", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return err
		}
		last = out
		var notReady []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if name, status, _ := strings.Cut(line, " "); status != "True" {
				notReady = append(notReady, name)
			}
		}
		for _, want := range []string{"kube-proxy-", "kube-flannel-ds-", "coredns-", "kube-apiserver-", "etcd-"} {
			if !strings.Contains(out, want) {
				notReady = append(notReady, want+"…")
			}
		}
		if len(notReady) > 0 {
			return fmt.Errorf("not ready: %s", strings.Join(notReady, ", "))
		}
		return nil
	})
	if err != nil {
		wide, _ := n.Kubectl("get", "pods", "-A", "-o", "wide")
		return fmt.Errorf("%v\n%s%s", err, wide, last)
	}
	return nil
}

// The tags kubeatlas's own images get here: not "latest", so the kubelet
// uses the imported image instead of trying to pull it.
const (
	AgentImage      = "kubeatlas.test/kubeatlas-agent:test"
	AggregatorImage = "kubeatlas.test/kubeatlas-aggregator:test"
)

// DeployKubeatlas builds and imports kubeatlas's two images, then applies
// a directory of deploy/ (the TLS base or an overlay) with real kustomize
// (`kubectl apply -k`), through a kustomization of the node's own that only
// names the images and the cluster. With tls, the certificates come from
// `kubeatlas certs`, as the README tells a user to make them: the node's
// agent certificate under /etc/kubeatlas/pki on the node, the aggregator's
// in the kubeatlas-aggregator-tls Secret, and a query client's for the CLI
// (ClientFlags). It waits for the agent DaemonSet and the aggregator
// Deployment.
func (n *Node) DeployKubeatlas(overlay string, tls bool) error {
	for _, img := range []Image{
		{Ref: AgentImage, Files: map[string]string{"kubeatlas-agent": n.Bins.Agent}, Entrypoint: []string{"/kubeatlas-agent"}},
		{Ref: AggregatorImage, Files: map[string]string{"kubeatlas-aggregator": n.Bins.Aggregator}, Entrypoint: []string{"/kubeatlas-aggregator"}},
	} {
		archive, err := img.Archive(filepath.Join(n.Dir, "images"))
		if err != nil {
			return err
		}
		if _, err := n.Run("ctr", "--address", n.Socket, "-n", "k8s.io", "images", "import", archive); err != nil {
			return err
		}
	}
	// A single node is also the control plane: let the aggregator on it.
	if _, err := n.Kubectl("taint", "nodes", NodeName, "node-role.kubernetes.io/control-plane:NoSchedule-"); err != nil {
		return err
	}
	dir := filepath.Join(n.Dir, "kubeatlas")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, overlay)
	if err != nil {
		return err
	}
	cluster := func(kind, name string) string {
		return fmt.Sprintf(`- target: {kind: %s, name: %s}
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/env/0
      value: {name: CLUSTER_NAME, value: %s}
`, kind, name, ClusterName)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- {name: kubeatlas/kubeatlas-agent, newName: %s, newTag: %s}
- {name: kubeatlas/kubeatlas-aggregator, newName: %s, newTag: %s}
patches:
%s%s`, rel, strings.Split(AgentImage, ":")[0], "test", strings.Split(AggregatorImage, ":")[0], "test",
		cluster("DaemonSet", "kubeatlas-agent"), cluster("Deployment", "kubeatlas-aggregator"))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		return err
	}
	if tls {
		if err := n.makeCerts(); err != nil {
			return err
		}
	}
	if _, err := n.Kubectl("apply", "-k", dir); err != nil {
		return err
	}
	if tls {
		pki := filepath.Join(n.Dir, "pki")
		if _, err := n.Kubectl("-n", "kubeatlas", "create", "secret", "generic", "kubeatlas-aggregator-tls",
			"--from-file=tls.crt="+filepath.Join(pki, "server.crt"), "--from-file=tls.key="+filepath.Join(pki, "server.key"),
			"--from-file=ca.crt="+filepath.Join(pki, "ca.crt")); err != nil {
			return err
		}
		n.tls = true
	}
	for _, w := range []string{"daemonset/kubeatlas-agent", "deployment/kubeatlas-aggregator"} {
		if _, err := n.Kubectl("-n", "kubeatlas", "rollout", "status", w, "--timeout=180s"); err != nil {
			pods, _ := n.Kubectl("get", "pods", "-A", "-o", "wide")
			desc, _ := n.Kubectl("-n", "kubeatlas", "describe", "pods")
			return fmt.Errorf("%v\n%s\n%s", err, pods, desc)
		}
	}
	return nil
}

// T is what Start needs of its caller: testing.TB has it, and so does the
// kubeatlas-cluster command. Cleanup functions undo Start.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
	TempDir() string
}

// state is what a later process needs to remove a node whose test died
// before its cleanup ran.
type state struct {
	Owner       int
	NetNS       string
	Cgroup      string
	Hierarchies []string
	MadeDirs    []string
	MadeCgroups []string
	// Kept is set by Keep: the node outlives its owner on purpose, and only
	// SweepStale with kept set removes it.
	Kept bool
	// Holder is the node's PID 1, whose namespaces are the node's.
	Holder int
}

func (n *Node) save() error {
	data, err := json.Marshal(state{os.Getpid(), n.NetNS, n.Cgroup, n.hierarchies, n.madeDirs, n.madeCgroups, n.kept, n.holderPID})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Dir, "state.json"), data, 0o644)
}

// SweepStale removes what nodes of dead test processes left behind: the
// processes in their cgroups (the holder of the mount namespace among them),
// their network namespaces, cgroups, the directories they made on the host,
// and their own directories. A node whose owner still runs is left alone.
func SweepStale(logf func(string, ...any), kept bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubeatlas-rc-*", "state.json"))
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		var st state
		if err != nil || json.Unmarshal(data, &st) != nil || st.NetNS == "" {
			continue
		}
		if st.Kept && !kept {
			continue
		}
		if !st.Kept && st.Owner > 0 && syscall.Kill(st.Owner, 0) == nil {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.Owner)); strings.Contains(string(comm), "realcluster") || strings.Contains(string(comm), "kubeatlas") {
				continue // still running
			}
		}
		logf("removing the node %s left by process %d", st.NetNS, st.Owner)
		n := &Node{Dir: filepath.Dir(f), NetNS: st.NetNS, Cgroup: st.Cgroup, hierarchies: st.Hierarchies, madeDirs: st.MadeDirs, madeCgroups: st.MadeCgroups}
		for range 50 {
			if n.killCgroupProcs() == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st.NetNS != "" {
			_ = run("ip", "netns", "del", st.NetNS)
		}
		n.removeMade()
		_ = os.RemoveAll(n.Dir)
	}
}

// removeMade removes the node's cgroups, deepest first, and the directories
// it had to make on the host for its mount points.
func (n *Node) removeMade() {
	for _, mnt := range n.hierarchies {
		if n.Cgroup != "" {
			removeTree(filepath.Join(mnt, n.Cgroup))
		}
	}
	for i := len(n.madeCgroups) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(n.madeCgroups[i])
	}
	for i := len(n.madeDirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(n.madeDirs[i]) // only when empty
	}
}

// Keep leaves the node running after its owner exits (make cluster): its
// state is marked kept, so that only SweepStale(…, true) (make
// cluster-down) removes it.
func (n *Node) Keep() error {
	n.kept = true
	return n.save()
}

// Holder is the PID whose namespaces are the node's.
func (n *Node) Holder() int { return n.holderPID }

// PortForward runs `kubectl port-forward` inside the node, from local (a
// port on the node's loopback) to a Service's port, as a user reaches a
// cluster's Service. It returns once the port answers, and a function that
// stops it.
func (n *Node) PortForward(namespace, service string, local, remote int) (func(), error) {
	pf := n.Command(context.Background(), n.Bins.Kubectl, "-n", namespace, "port-forward", "svc/"+service, fmt.Sprintf("%d:%d", local, remote))
	log, err := os.Create(filepath.Join(n.Dir, "port-forward-"+service+".log"))
	if err != nil {
		return nil, err
	}
	pf.Stdout, pf.Stderr = log, log
	if err := pf.Start(); err != nil {
		log.Close()
		return nil, err
	}
	stop := func() { killTree(pf, syscall.SIGKILL); _ = pf.Wait(); log.Close() }
	err = harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
		data, _ := os.ReadFile(log.Name())
		if !strings.Contains(string(data), "Forwarding from") {
			return fmt.Errorf("port-forward to %s/%s has not started: %s", namespace, service, data)
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// aggregatorName is the name the aggregator's certificate is for: its
// Service's, which agents dial.
const aggregatorName = "kubeatlas-aggregator.kubeatlas.svc"

// makeCerts runs `kubeatlas certs` for the aggregator, this node's agent and
// a query client, and installs the agent's where deploy/base expects it on
// the node.
func (n *Node) makeCerts() error {
	pki := filepath.Join(n.Dir, "pki")
	if _, err := n.runHost(n.Bins.CLI, "certs", "--dir", pki, "--host", aggregatorName, "--cluster", ClusterName,
		"--node", NodeName, "--client", "ops"); err != nil {
		return err
	}
	onNode := filepath.Join(n.Dir, "fs", "etc-kubeatlas", "pki")
	if err := os.MkdirAll(onNode, 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{"ca.crt": "ca.crt", "agent-" + NodeName + ".crt": "agent.crt", "agent-" + NodeName + ".key": "agent.key"} {
		data, err := os.ReadFile(filepath.Join(pki, src))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(onNode, dst), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ClientFlags are the CLI's flags for the deployed aggregator: its query
// client certificate when it was deployed with TLS.
func (n *Node) ClientFlags() []string {
	if !n.tls {
		return []string{"--insecure"}
	}
	pki := filepath.Join(n.Dir, "pki")
	return []string{"--ca-file", filepath.Join(pki, "ca.crt"), "--cert-file", filepath.Join(pki, "client-ops.crt"),
		"--key-file", filepath.Join(pki, "client-ops.key"), "--server-name", aggregatorName}
}

// StopKubelet stops the kubelet as `systemctl stop kubelet` would; the pods
// it started keep running in containerd.
func (n *Node) StopKubelet() {
	n.kubelet.stop()
}

// ReadProc reads /proc/<pid>/<name> of a node process, by its PID in the
// node (as crictl and the kubelet give it).
func (n *Node) ReadProc(pid int, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(n.HostRoot(), "proc", strconv.Itoa(pid), name))
}

// Kill sends SIGKILL to a node process, by its PID in the node.
func (n *Node) Kill(pid int) error {
	_, err := n.Run("kill", "-KILL", strconv.Itoa(pid))
	return err
}

// StartKubelet starts the kubelet again, as kubeadm's flags file says.
func (n *Node) StartKubelet() error {
	return n.startKubelet(filepath.Join(n.Dir, "fs", "var-lib-kubelet", "kubeadm-flags.env"))
}

// DeployAndReach deploys kubeatlas from the repository's deploy/base with
// mutual TLS (DeployKubeatlas) and port-forwards to the aggregator's Service
// inside the node. It returns the CLI's command line for that aggregator
// (binary, server and TLS flags), to run with Run, and a function that stops
// the port-forward.
func (n *Node) DeployAndReach() ([]string, func(), error) {
	root, err := harness.ModuleRoot()
	if err != nil {
		return nil, nil, err
	}
	if err := n.DeployKubeatlas(filepath.Join(filepath.Dir(root), "deploy", "base"), true); err != nil {
		return nil, nil, err
	}
	stop, err := n.PortForward("kubeatlas", "kubeatlas-aggregator", 17443, 7443)
	if err != nil {
		return nil, nil, err
	}
	return append([]string{n.Bins.CLI, "--server", "127.0.0.1:17443"}, n.ClientFlags()...), stop, nil
}
