package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/internal/simproc"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestMain(m *testing.M) {
	simproc.MaybeRun()
	os.Exit(m.Run())
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		comm  string
		ticks uint64
		bad   bool
	}{
		{"1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 42 170000 3000 18446744073709551615", "systemd", 42, false},
		{"77 (a) b) (c) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9001 1 1 1", "a) b) (c", 9001, false},
		{"5 (x) S 1", "", 0, true},
		{"garbage", "", 0, true},
		{"5 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 NaN 1 1", "", 0, true},
	}
	for _, tt := range tests {
		st, err := parseStat([]byte(tt.in))
		if (err != nil) != tt.bad || st.comm != tt.comm || st.start != tt.ticks {
			t.Errorf("parseStat(%q) = %+v, %v", tt.in, st, err)
		}
	}
	st, err := parseStat([]byte(tests[0].in))
	if err != nil || st.ppid != 0 || st.utime != 5 || st.stime != 6 || st.rssPages != 3000 {
		t.Errorf("fields: %+v, %v", st, err)
	}
	st, err = parseStat([]byte("9 (k) S 4242 1 1 0 -1 0 0 0 0 0 11 12 0 0 20 0 1 0 7 1 99\n"))
	if err != nil || st.ppid != 4242 || st.utime != 11 || st.stime != 12 || st.start != 7 || st.rssPages != 99 {
		t.Errorf("a line ending at rss: %+v, %v", st, err)
	}
}

func TestBound(t *testing.T) {
	got, trunc := bound([]string{"abc", "d\xffe", strings.Repeat("é", 10)}, 10)
	if !trunc {
		t.Error("not truncated")
	}
	total := 0
	for _, a := range got {
		total += len(a)
		if !strings.Contains(a, "\uFFFD") && a != "abc" && !strings.HasPrefix(a, "é") {
			t.Errorf("unexpected word %q", a)
		}
	}
	if got[1] != "d\uFFFDe" {
		t.Errorf("invalid UTF-8 not replaced: %q", got[1])
	}
}

// hostRoot builds a node's host root: the real /proc and /sys, and the
// reference node's kubelet files.
func hostRoot(t *testing.T, node string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"proc", "sys"} {
		if err := os.Symlink("/"+d, filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join("..", "..", "examples", "seed-cluster", "hosts", node)
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func needRootCgroups(t *testing.T) *simproc.Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating cgroups needs root")
	}
	cg, err := simproc.NewCgroups(fmt.Sprintf("kubeatlas-collect-%d", os.Getpid()))
	if err != nil {
		t.Skipf("skipping: cannot create cgroups here: %v", err)
	}
	return cg
}

// TestScanRealProcesses starts the reference control-plane node's processes
// as real processes in real cgroups and checks what the collector reports.
func TestScanRealProcesses(t *testing.T) {
	cg := needRootCgroups(t)
	const (
		hash = "fcd4f26bdc1bed51b77a2cd425acaf73"
		cid  = "dbf2431c433ac84f770c8fd8b7a63a4b1824f9b972d320179fb1df2ae6d5aec4"
		puid = "5b1d3e2a-8c4f-4a6e-9d7b-1f2e3a4b5c6d"
		pcid = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	)
	specs := []struct {
		argv   string
		cgroup string
	}{
		{"/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --bootstrap-token=abcdef.0123456789abcdef", "system.slice/kubelet.service"},
		{"kube-apiserver --advertise-address=192.168.19.134 --etcd-servers=https://root:hunter2@127.0.0.1:2379 --tls-private-key-file=/etc/kubernetes/pki/apiserver.key --secure-port=6443", "kubepods/burstable/pod" + hash + "/" + cid},
		{"/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=test", "kubepods/besteffort/pod" + puid + "/" + pcid},
	}
	var procs []*simproc.Proc
	t.Cleanup(func() {
		for _, p := range procs {
			p.Stop()
		}
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	bin := t.TempDir()
	for _, s := range specs {
		procsFile, err := cg.Procs(s.cgroup)
		if err != nil {
			t.Fatal(err)
		}
		p, err := simproc.Start(simproc.Spec{Argv: strings.Fields(s.argv), CgroupProcs: []string{procsFile}, BinDir: bin, Stderr: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	c, err := New(Config{HostRoot: hostRoot(t, "test"), Cluster: "seed"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int32]*v1.Process{}
	for _, p := range inv.Processes {
		byPID[p.Pid] = p
	}
	kubelet, api, proxy := byPID[int32(procs[0].Pid)], byPID[int32(procs[1].Pid)], byPID[int32(procs[2].Pid)]
	if kubelet == nil || api == nil || proxy == nil {
		t.Fatalf("processes not found in the scan: %v %v %v", kubelet, api, proxy)
	}
	if kubelet.SystemdUnit != "kubelet.service" || kubelet.PodUid != "" || len(kubelet.Components) != 1 || kubelet.Components[0].Component != "kubelet" {
		t.Errorf("kubelet: %v", kubelet)
	}
	if filepath.Base(kubelet.Exe) != "kubelet" {
		t.Errorf("kubelet exe = %q", kubelet.Exe)
	}
	if api.PodUid != hash || api.ContainerId != cid || api.QosClass != v1.QOSClass_QOS_CLASS_BURSTABLE {
		t.Errorf("kube-apiserver cgroup facts: uid %q cid %q qos %v (cgroup %s)", api.PodUid, api.ContainerId, api.QosClass, api.CgroupPath)
	}
	if api.Runtime != v1.ContainerRuntime_CONTAINER_RUNTIME_CONTAINERD {
		t.Errorf("runtime from the kubelet's endpoint = %v", api.Runtime)
	}
	if proxy.PodUid != puid || proxy.QosClass != v1.QOSClass_QOS_CLASS_BEST_EFFORT || proxy.Components[0].Component != "kube-proxy" {
		t.Errorf("kube-proxy: %v", proxy)
	}
	for _, p := range []*v1.Process{kubelet, api} {
		for _, a := range p.Argv {
			if strings.Contains(a, "hunter2") || strings.Contains(a, "0123456789abcdef") {
				t.Errorf("secret leaked: %q", a)
			}
		}
	}
	if !strings.Contains(strings.Join(api.Argv, " "), "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key") {
		t.Errorf("key file path lost: %q", api.Argv)
	}
	if len(inv.Manifests) != 4 {
		t.Fatalf("manifests = %d, want 4", len(inv.Manifests))
	}
	for _, m := range inv.Manifests {
		if m.ParseError != "" || !strings.HasPrefix(m.Path, "/etc/kubernetes/manifests/") || m.PodNamespace != "kube-system" {
			t.Errorf("manifest %v", m)
		}
	}
	k := inv.Kubelet
	if k.StaticPodPath != "/etc/kubernetes/manifests" || k.StaticPodPathSource != "config" || k.CgroupDriver != "systemd" ||
		k.ContainerRuntimeEndpoint != "unix:///var/run/containerd/containerd.sock" || len(k.KubeadmFlags) != 2 {
		t.Errorf("kubelet info: %v", k)
	}
	if inv.Identity.NodeName == "" || inv.Identity.BootId == "" || inv.Identity.WallClock == nil {
		t.Errorf("identity: %v", inv.Identity)
	}
	// A second scan reuses what it read.
	inv2, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inv2.Processes {
		if p.Pid == api.Pid && p != api {
			t.Error("unchanged process was read again")
		}
	}
}

func TestHostDirs(t *testing.T) {
	c := Config{HostRoot: "/host"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ProcDir != "/host/proc" || c.SysDir != "/host/sys" || c.EtcDir != "/host/etc" {
		t.Errorf("dirs under the host root: %+v", c)
	}
	t.Setenv("HOST_PROC", "/mnt/proc")
	t.Setenv("HOST_ETC", "/mnt/etc")
	c = Config{HostRoot: "/host"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ProcDir != "/mnt/proc" || c.EtcDir != "/mnt/etc" || c.SysDir != "/host/sys" {
		t.Errorf("gopsutil's variables not honoured: %+v", c)
	}
	if err := (&Config{HostRoot: "relative"}).Validate(); err == nil {
		t.Error("relative host root accepted")
	}
}
