// Package harness runs kubeatlas against real parts: etcd and kube-apiserver
// built from their Go modules, simulated nodes made of real processes in real
// cgroups and namespaces, real agents, a real aggregator and real grpcurl.
package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// KubernetesVersion is the kube-apiserver built and the version it reports.
const KubernetesVersion = "v1.37.2"

// Binaries are the programs the harness runs.
type Binaries struct {
	Etcd, APIServer, Grpcurl, Kubectl string
	// Kubeadm is kubeadm of the same release, for its own certificates.
	Kubeadm                string
	Agent, Aggregator, CLI string
	// Hostile is the adversarial agent (integration/cmd/kubeatlas-hostile).
	Hostile string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// ModuleRoot is the integration module's directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/kubeatlas/kubeatlas/integration\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("integration module not found above %s", dir)
		}
		dir = parent
	}
}

// GoBuild builds pkgs in dir (a module) into out, statically
// (CGO_ENABLED=0).
func GoBuild(dir, out, ldflags string, pkgs ...string) error {
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// Build builds every binary once per test process. etcd, kube-apiserver and
// grpcurl are cached across runs (keyed by the module's go.sum); the kubeatlas
// binaries are rebuilt, which the Go build cache makes quick.
func Build(t testing.TB) Binaries {
	t.Helper()
	b, err := BuildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildBinaries is Build for programs that are not tests.
func BuildBinaries() (Binaries, error) {
	buildOnce.Do(func() { built, buildErr = build() })
	return built, buildErr
}

// CachedPackages are the packages whose binaries are kept in CacheDir: the
// harness's and the real cluster's (realcluster).
var CachedPackages = []string{
	"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl", "k8s.io/kubernetes/cmd/kubeadm",
	"go.etcd.io/etcd/server/v3", "github.com/fullstorydev/grpcurl/cmd/grpcurl",
	"k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-controller-manager",
	"k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kube-proxy",
	"sigs.k8s.io/cri-tools/cmd/crictl", "./cmd/kubeatlas-pause", "./cmd/kubeatlas-install-cni",
}

var (
	cacheOnce sync.Once
	cacheDir  string
	cacheErr  error
)

// CacheDir is where third-party binaries built from the integration module
// are kept across runs: beneath the user's cache directory, keyed by what
// they are built from (the Go version, every module in CachedPackages'
// dependencies at its version, and this module's own packages among them,
// file by file). A dependency of the tests alone changes nothing there.
func CacheDir() (string, error) {
	cacheOnce.Do(func() { cacheDir, cacheErr = cacheKeyDir() })
	return cacheDir, cacheErr
}

func cacheKeyDir() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	args := append([]string{"list", "-deps", "-f",
		"{{if .Module}}{{if .Module.Main}}local {{.ImportPath}} {{.Dir}} {{join .GoFiles \",\"}}{{else}}{{.Module.Path}}@{{.Module.Version}}{{with .Module.Replace}}=>{{.Path}}@{{.Version}}{{end}}{{end}}{{end}}"},
		CachedPackages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("listing what the cached binaries are built from: %v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	lines = slices.Compact(lines)
	h := sha256.New()
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	h.Write(goVersion)
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "local" {
			h.Write([]byte(l + "\n"))
			continue
		}
		// This module's own package: its import path and its files, not
		// where this checkout happens to be.
		h.Write([]byte("local " + f[1] + "\n"))
		dir, files := f[2], ""
		if len(f) > 3 {
			files = f[3]
		}
		for _, f := range strings.Split(files, ",") {
			if f == "" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return "", err
			}
			h.Write(data)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "kubeatlas-integration", hex.EncodeToString(h.Sum(nil)[:8])), nil
}

func build() (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	third, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		Etcd:      filepath.Join(third, "etcd"),
		APIServer: filepath.Join(third, "kube-apiserver"),
		Grpcurl:   filepath.Join(third, "grpcurl"),
		Kubectl:   filepath.Join(third, "kubectl"),
		Kubeadm:   filepath.Join(third, "kubeadm"),
	}
	if err := buildThirdParty(root, third, b); err != nil {
		return b, err
	}
	// The kubeatlas binaries go to a directory named after this process;
	// the directories of processes that are gone are removed first, so that
	// test runs do not pile up copies of them.
	removeDeadOwn()
	own := filepath.Join(os.TempDir(), fmt.Sprintf("kubeatlas-integration-bin-%d", os.Getpid()))
	if err := os.MkdirAll(own, 0o755); err != nil {
		return b, err
	}
	// The kubeatlas binaries build in their own module, with its go.sum.
	if err := GoBuild(filepath.Dir(root), own, "", "./agent/cmd/kubeatlas-agent", "./aggregator/cmd/kubeatlas-aggregator", "./client/cmd/kubeatlas"); err != nil {
		return b, err
	}
	if err := GoBuild(root, own, "", "./cmd/kubeatlas-hostile"); err != nil {
		return b, err
	}
	b.Hostile = filepath.Join(own, "kubeatlas-hostile")
	b.Agent = filepath.Join(own, "kubeatlas-agent")
	b.Aggregator = filepath.Join(own, "kubeatlas-aggregator")
	b.CLI = filepath.Join(own, "kubeatlas")
	return b, nil
}

// buildThirdParty builds etcd, kube-apiserver, kubectl, kubeadm and grpcurl
// into the cache when they are not there. Test processes of several packages
// start at once: one builds, the others wait for it (a lock on the cache)
// rather than build the same binaries on the same cores.
func buildThirdParty(root, third string, b Binaries) error {
	if allExist(b.Etcd, b.APIServer, b.Grpcurl, b.Kubectl, b.Kubeadm) {
		return nil
	}
	if err := os.MkdirAll(third, 0o755); err != nil {
		return err
	}
	unlock, err := LockFile(filepath.Join(third, ".build.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if allExist(b.Etcd, b.APIServer, b.Grpcurl, b.Kubectl, b.Kubeadm) {
		return nil // built while this process waited
	}
	tmp, err := os.MkdirTemp(third, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	v := "k8s.io/component-base/version"
	ld := fmt.Sprintf("-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=37 -X %s.gitTreeState=clean", v, KubernetesVersion, v, v, v)
	if err := GoBuild(root, tmp, ld, "k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl", "k8s.io/kubernetes/cmd/kubeadm"); err != nil {
		return err
	}
	if err := GoBuild(root, filepath.Join(tmp, "etcd"), "", "go.etcd.io/etcd/server/v3"); err != nil {
		return err
	}
	if err := GoBuild(root, tmp, "", "github.com/fullstorydev/grpcurl/cmd/grpcurl"); err != nil {
		return err
	}
	for _, name := range []string{"etcd", "grpcurl", "kube-apiserver", "kubectl", "kubeadm"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(third, name)); err != nil {
			return err
		}
	}
	return nil
}

// LockFile takes an exclusive lock on path (made if missing), shared with
// every process on the machine, and returns what releases it.
func LockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func allExist(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// removeDeadOwn removes the binaries directories of test processes that
// have exited.
func removeDeadOwn() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubeatlas-integration-bin-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "kubeatlas-integration-bin-"))
		if err != nil {
			continue // not one of ours, or an older random name
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = os.RemoveAll(d)
	}
}
