package collect

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/internal/simproc"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// TestHostileCommandLines runs processes whose command lines any local user
// could start, and scans them with the real collector: no panic, every
// string valid UTF-8 (so the inventory marshals), and no secret in it.
func TestHostileCommandLines(t *testing.T) {
	argvs := [][]string{
		// Case folding changes byte lengths: offsets from a lower-cased copy
		// must never index the original.
		{"/bin/bash", "bash", "-c", "sleep 300; :", strings.Repeat("\u023a", 10) + "bearer "},
		// Cut at 200 bytes, the é would be split.
		{"/bin/sleep", "kube-proxy --x=" + strings.Repeat("a", 184) + "é", "300"},
		// argv holds any bytes.
		{"/bin/bash", "bash", "-c", "sleep 300; :", "--token=\xff\xfeS3CR3TBYTES", "\xfe\xff"},
		// A process title rewritten into argv[0].
		{"/bin/sleep", "kube-apiserver --token=S3CR3TTITLE --etcd-servers=https://root:S3CR3TPASS@10.0.0.1:2379", "300"},
		// A secret inside an sh -c script.
		{"/bin/sh", "sh", "-c", "sleep 300; /usr/bin/curl -H 'Authorization: Bearer S3CR3TSHELL' --password -S3CR3TDASH"},
	}
	var pids []int
	for _, a := range argvs {
		cmd := exec.Command(a[0])
		cmd.Args = a[1:]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		pids = append(pids, cmd.Process.Pid)
	}
	c, err := New(Config{Cluster: "c", MaxArgvBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, p := range inv.Processes {
		for _, pid := range pids {
			if int(p.Pid) == pid {
				found++
			}
		}
	}
	if found != len(pids) {
		t.Fatalf("found %d of the %d processes", found, len(pids))
	}
	b, err := proto.Marshal(inv)
	if err != nil {
		t.Fatalf("the inventory does not marshal: %v", err)
	}
	if bytes.Contains(b, []byte("S3CR3T")) {
		for _, p := range inv.Processes {
			if strings.Contains(strings.Join(p.Argv, " "), "S3CR3T") {
				t.Errorf("secret sent: %q", p.Argv)
			}
		}
	}
	for _, p := range inv.Processes {
		for _, a := range p.Argv {
			if !utf8.ValidString(a) {
				t.Errorf("invalid UTF-8 in %q", p.Argv)
			}
		}
	}
}

// TestSentRecordsAreNeverChanged: a process read before the kubelet's runtime
// endpoint was known gets its runtime later, in a new record. The record
// already returned (and perhaps sent) keeps what it said, so the next diff
// sees the change and sends it.
func TestSentRecordsAreNeverChanged(t *testing.T) {
	cg := needRootCgroups(t)
	t.Cleanup(func() {
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	const cid = "dbf2431c433ac84f770c8fd8b7a63a4b1824f9b972d320179fb1df2ae6d5aec4"
	procsFile, err := cg.Procs("kubepods/burstable/podfcd4f26bdc1bed51b77a2cd425acaf73/" + cid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := simproc.Start(simproc.Spec{Argv: []string{"kube-apiserver", "--secure-port=6443"}, CgroupProcs: []string{procsFile}, BinDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	// A host with no kubelet files: the runtime endpoint is not known yet.
	// Its /proc shows this test's process alone, so that a kubelet running
	// elsewhere on the machine (another test's, a real one) names no runtime.
	root := t.TempDir()
	if err := os.Symlink("/sys", filepath.Join(root, "sys")); err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"stat", "sys", strconv.Itoa(p.Pid)} {
		if err := os.Symlink(filepath.Join("/proc", e), filepath.Join(proc, e)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Config{HostRoot: root, Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	find := func(all []*v1.Process) *v1.Process {
		for _, q := range all {
			if int(q.Pid) == p.Pid {
				return q
			}
		}
		t.Fatalf("process %d not scanned", p.Pid)
		return nil
	}
	inv1, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := find(inv1.Processes)
	if first.Runtime != v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED || first.ContainerId != cid {
		t.Fatalf("first scan: runtime %v, container %q", first.Runtime, first.ContainerId)
	}
	// The kubelet's flags appear, naming containerd.
	env := filepath.Join(root, "var", "lib", "kubelet", "kubeadm-flags.env")
	if err := os.MkdirAll(filepath.Dir(env), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, []byte(`KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv2, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second := find(inv2.Processes)
	if second.Runtime != v1.ContainerRuntime_CONTAINER_RUNTIME_CONTAINERD {
		t.Fatalf("second scan: runtime %v", second.Runtime)
	}
	if first.Runtime != v1.ContainerRuntime_CONTAINER_RUNTIME_UNSPECIFIED || first == second {
		t.Fatal("the record returned by the first scan was changed in place")
	}
	// The next scan reuses the changed copy.
	inv3, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if third := find(inv3.Processes); third != second {
		t.Error("the changed copy was not kept for the next scan")
	}
}

// A kubelet started with a relative --config reads it from its working
// directory, and a relative staticPodPath in it from the config's directory.
func TestRelativePathsResolveAgainstTheProcess(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubelet-config.yaml"), []byte("kind: KubeletConfiguration\nstaticPodPath: manifests\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := simproc.Start(simproc.Spec{Argv: []string{"kubelet", "--config=kubelet-config.yaml"}, BinDir: t.TempDir(), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	c, err := New(Config{Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k := inv.Kubelet; k.ConfigPath != filepath.Join(dir, "kubelet-config.yaml") || k.StaticPodPath != filepath.Join(dir, "manifests") || k.StaticPodPathSource != "config" {
		t.Fatalf("kubelet %v", k)
	}
	for _, q := range inv.Processes {
		if int(q.Pid) == p.Pid && (len(q.Components) != 1 || q.Components[0].ConfigFile != filepath.Join(dir, "kubelet-config.yaml")) {
			t.Fatalf("the kubelet's config file %v", q.Components)
		}
	}
}

// The sandbox of a pod is known from containerd's shim, whatever its binary.
func TestSandboxesFromTheRuntime(t *testing.T) {
	const sandbox, app, moby = "9b93e761dde6fc5659f8a8121fd43aeffd30723844ad11df3a60e635b9fe8cb1",
		"dbf2431c433ac84f770c8fd8b7a63a4b1824f9b972d320179fb1df2ae6d5aec4", "55dcae41fbeec0ede3c2fe7f79e2369b4ae39d3b3a34b0980ef68cf9c5685faf"
	procs := []*v1.Process{
		{Pid: 10, Argv: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", sandbox, "-address", "/run/containerd/containerd.sock"}, Infrastructure: true},
		{Pid: 11, Ppid: 10, Argv: []string{"/usr/local/bin/sleeper"}, ContainerId: sandbox, PodUid: "u"},
		{Pid: 12, Ppid: 10, Argv: []string{"/app/server"}, ContainerId: app, PodUid: "u"},
		{Pid: 20, Argv: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", moby, "-address", "/run/containerd/containerd.sock"}, Infrastructure: true},
		{Pid: 21, Ppid: 20, Argv: []string{"nginx"}, ContainerId: moby},
	}
	orig := procs[1]
	var cached []int32
	markSandboxes(procs, func(p *v1.Process) { cached = append(cached, p.Pid) })
	if !procs[1].Infrastructure || procs[2].Infrastructure || procs[4].Infrastructure {
		t.Fatalf("sandbox %v, app %v, docker container %v", procs[1].Infrastructure, procs[2].Infrastructure, procs[4].Infrastructure)
	}
	if orig.Infrastructure || len(cached) != 1 || cached[0] != 11 {
		t.Fatal("a record already returned was changed in place, or the copy not cached")
	}
}
