// Package realcluster runs a real single-node kubeadm cluster on this
// machine: containerd and a kubelet as host daemons, the control plane as
// static pods from images built here, all inside network and mount
// namespaces the test makes, so that nothing of it touches the host.
package realcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kubeatlas/kubeatlas/integration/harness"
)

// Binaries are the node's programs, besides those of harness.Binaries.
type Binaries struct {
	harness.Binaries
	Kubelet, ControllerManager, Scheduler, Proxy, Crictl, Pause string
	// CoreDNS and Flanneld build from their own modules; InstallCNI is
	// integration/cmd/kubeatlas-install-cni.
	CoreDNS, Flanneld, InstallCNI string
	// Images is where image archives are cached, beside the binaries.
	Images string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build builds the node's binaries once per go.sum, in the cache the harness
// keeps its own in, and the harness's binaries.
func Build(t testing.TB) Binaries {
	t.Helper()
	b, err := BuildAll()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildAll is Build for programs that are not tests.
func BuildAll() (Binaries, error) {
	hb, err := harness.BuildBinaries()
	if err != nil {
		return Binaries{}, err
	}
	buildOnce.Do(func() { built, buildErr = build(hb) })
	return built, buildErr
}

func build(hb harness.Binaries) (Binaries, error) {
	root, err := harness.ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	cache, err := harness.CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(cache, "node")
	b := Binaries{
		Binaries:          hb,
		Kubelet:           filepath.Join(dir, "kubelet"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		Scheduler:         filepath.Join(dir, "kube-scheduler"),
		Proxy:             filepath.Join(dir, "kube-proxy"),
		Crictl:            filepath.Join(dir, "crictl"),
		Pause:             filepath.Join(dir, "kubeatlas-pause"),
		CoreDNS:           filepath.Join(dir, "coredns"),
		Flanneld:          filepath.Join(dir, "flanneld"),
		InstallCNI:        filepath.Join(dir, "kubeatlas-install-cni"),
		Images:            filepath.Join(dir, "images"),
	}
	all := []string{b.Kubelet, b.ControllerManager, b.Scheduler, b.Proxy, b.Crictl, b.Pause, b.InstallCNI}
	if slices.ContainsFunc(all, func(p string) bool { _, err := os.Stat(p); return err != nil }) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return b, err
		}
		tmp, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			return b, err
		}
		defer os.RemoveAll(tmp)
		v := "k8s.io/component-base/version"
		ld := fmt.Sprintf("-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=37 -X %s.gitTreeState=clean", v, harness.KubernetesVersion, v, v, v)
		if err := harness.GoBuild(root, tmp, ld, "k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kube-proxy"); err != nil {
			return b, err
		}
		if err := harness.GoBuild(root, tmp, "", "sigs.k8s.io/cri-tools/cmd/crictl", "./cmd/kubeatlas-pause", "./cmd/kubeatlas-install-cni"); err != nil {
			return b, err
		}
		for _, p := range all {
			if err := os.Rename(filepath.Join(tmp, filepath.Base(p)), p); err != nil {
				return b, err
			}
		}
	}
	// CoreDNS builds in module mode from its own go.mod, so its dependencies
	// never meet the integration module's.
	if _, err := os.Stat(b.CoreDNS); err != nil {
		tmp, err := os.MkdirTemp(dir, "install-")
		if err != nil {
			return b, err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", "github.com/coredns/coredns@"+CoreDNSVersion)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+tmp, "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go install coredns: %v\n%s", err, out)
		}
		if err := os.Rename(filepath.Join(tmp, "coredns"), b.CoreDNS); err != nil {
			return b, err
		}
	}
	// flannel needs a module of its own: one of its cloud backends imports a
	// Tencent Cloud client the module proxy does not serve, which
	// flannelbuild/vpc stands in for (every call of it fails). Its UDP
	// backend needs cgo, so flanneld links libc; its image carries it.
	if _, err := os.Stat(b.Flanneld); err != nil {
		tmp, err := os.MkdirTemp(dir, "flannel-")
		if err != nil {
			return b, err
		}
		defer os.RemoveAll(tmp)
		mod := fmt.Sprintf("module kubeatlas.test/flanneld\n\ngo 1.26\n\nrequire github.com/flannel-io/flannel %s\n\n"+
			"replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => %s\n\ntool github.com/flannel-io/flannel\n",
			FlannelVersion, filepath.Join(root, "realcluster", "flannelbuild", "vpc"))
		if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(mod), 0o644); err != nil {
			return b, err
		}
		for _, argv := range [][]string{{"mod", "tidy"}, {"build", "-o", b.Flanneld, "github.com/flannel-io/flannel"}} {
			cmd := exec.Command("go", argv...)
			cmd.Dir = tmp
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				return b, fmt.Errorf("building flanneld: go %s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
	}
	return b, nil
}

// The versions of the two node programs that build outside the module.
const (
	CoreDNSVersion = "v1.14.6"
	FlannelVersion = "v0.28.10"
)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
