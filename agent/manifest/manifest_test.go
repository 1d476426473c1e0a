package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/recognize"
)

const goodPod = `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --token-auth-file=/etc/kubernetes/tokens.csv
    - --etcd-servers=https://u:s3cret@127.0.0.1:2379
    image: registry.k8s.io/kube-apiserver:v1.27.0
    name: kube-apiserver
`

func TestParse(t *testing.T) {
	m := Parse("/etc/kubernetes/manifests/kube-apiserver.yaml", []byte(goodPod))
	if m.ParseError != "" || m.PodName != "kube-apiserver" || m.PodNamespace != "kube-system" || len(m.Containers) != 1 || len(m.Sha256) != 64 {
		t.Fatalf("parsed %v", m)
	}
	cmd := strings.Join(m.Containers[0].Command, " ")
	if strings.Contains(cmd, "s3cret") || !strings.Contains(cmd, "/etc/kubernetes/tokens.csv") {
		t.Errorf("command not redacted right: %s", cmd)
	}
	for _, bad := range []string{"", "kind: Pod\n", "apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n", "{{{", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n", "\xff\xfe"} {
		if m := Parse("/x.yaml", []byte(bad)); m.ParseError == "" {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestDirReadsAsTheKubeletDoes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/kubernetes/manifests")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"kube-apiserver.yaml": goodPod, ".hidden.yaml": goodPod, "broken.yaml": "kind: [", "sub/nested.yaml": goodPod}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Dir(root, "/etc/kubernetes/manifests", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "/etc/kubernetes/manifests/broken.yaml" || got[0].ParseError == "" || got[1].ParseError != "" {
		t.Fatalf("got %v", got)
	}
	prev := map[string]*v1StaticPodManifest{}
	for _, m := range got {
		prev[m.Path] = m
	}
	again, _ := Dir(root, "/etc/kubernetes/manifests", prev)
	if again[1] != got[1] {
		t.Error("an unchanged manifest was read again")
	}
	if none, err := Dir(root, "/does/not/exist", nil); err != nil || none != nil {
		t.Errorf("missing dir: %v %v", none, err)
	}
}

func TestKubelet(t *testing.T) {
	root := t.TempDir()
	write := func(p, body string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\nstaticPodPath: /etc/static\ncgroupDriver: systemd\n")
	write(KubeadmFlagsFile, `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/crio/crio.sock --bootstrap-token=abc.def"`+"\n")
	info := Kubelet(root, "/", recognize.ParseFlags([]string{"--config=/var/lib/kubelet/config.yaml"}))
	if info.StaticPodPath != "/etc/static" || info.StaticPodPathSource != "config" || info.CgroupDriver != "systemd" ||
		info.ContainerRuntimeEndpoint != "unix:///run/crio/crio.sock" || len(info.Errors) != 0 {
		t.Errorf("info %v", info)
	}
	if strings.Contains(strings.Join(info.KubeadmFlags, " "), "abc.def") {
		t.Error("kubeadm flags not redacted")
	}
	flagWins := Kubelet(root, "/", recognize.ParseFlags([]string{"--config=/var/lib/kubelet/config.yaml", "--pod-manifest-path=/srv/pods"}))
	if flagWins.StaticPodPath != "/srv/pods" || flagWins.StaticPodPathSource != "flag" {
		t.Errorf("flag: %v", flagWins)
	}
	// Relative paths: the flag's against the kubelet's working directory,
	// the config's staticPodPath against the config file's directory.
	write("/srv/node1/kubelet-config.yaml", "kind: KubeletConfiguration\nstaticPodPath: manifests\n")
	rel := Kubelet(root, "/srv/node1", recognize.ParseFlags([]string{"--config=kubelet-config.yaml"}))
	if rel.ConfigPath != "/srv/node1/kubelet-config.yaml" || rel.StaticPodPath != "/srv/node1/manifests" || rel.StaticPodPathSource != "config" || len(rel.Errors) != 0 {
		t.Errorf("relative config: %v", rel)
	}
	relFlag := Kubelet(root, "/srv/node1", recognize.ParseFlags([]string{"--pod-manifest-path=static"}))
	if relFlag.StaticPodPath != "/srv/node1/static" {
		t.Errorf("relative flag: %v", relFlag)
	}
	write("/var/lib/kubelet/bad.yaml", "kind: [")
	bad := Kubelet(root, "/", recognize.ParseFlags([]string{"--config=/var/lib/kubelet/bad.yaml"}))
	if len(bad.Errors) == 0 || bad.StaticPodPath != DefaultDir || bad.StaticPodPathSource != "default" {
		t.Errorf("bad config: %v", bad)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodPod))
	f.Add([]byte("kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec: {containers: [{name: c, args: [--password, x]}]}"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := Parse("/m.yaml", data)
		if m.ParseError == "" && m.PodName == "" {
			t.Fatal("parsed a pod without a name")
		}
		if _, err := protoSize(m); err != nil {
			t.Fatalf("not encodable: %v", err)
		}
	})
}
