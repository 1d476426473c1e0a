package cli

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/server"
)

var update = flag.Bool("update", false, "rewrite golden files")

const seedBundle = "../../examples/seed-cluster"

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update if intended):\n%s", path, got)
	}
}

// TestBundleGolden runs every printer in every format against the reference bundle.
func TestBundleGolden(t *testing.T) {
	for _, kind := range []string{"clusters", "nodes", "components", "processes", "manifests", "findings", "versions"} {
		for _, format := range []string{"table", "wide", "json", "yaml"} {
			args := []string{"--bundle", seedBundle, "get", kind, "-o", format}
			if kind == "processes" {
				args = append(args, "--node", "test")
			}
			t.Run(kind+"-"+format, func(t *testing.T) {
				out, err := run(t, args...)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "get-"+kind+"-"+format, out)
			})
		}
	}
	for name, args := range map[string][]string{
		"where-kube-proxy":             {"where", "kube-proxy"},
		"where-kube-proxy-wide":        {"where", "kube-proxy", "-o", "wide"},
		"where-dockerd":                {"where", "dockerd"},
		"describe-node-test":           {"describe", "node", "test"},
		"describe-component-apiserver": {"describe", "component", "kube-apiserver"},
		"describe-cluster-seed":        {"describe", "cluster", "seed"},
		"demo":                         {"demo"},
		"demo-json":                    {"demo", "-o", "json"},
		"where-etcd-json":              {"where", "etcd", "-o", "json"},
		"where-kubelet-yaml":           {"where", "kubelet", "-o", "yaml"},
		"describe-node-test-json":      {"describe", "node", "test", "-o", "json"},
		"describe-component-etcd-yaml": {"describe", "component", "etcd", "-o", "yaml"},
		"describe-cluster-seed-json":   {"describe", "cluster", "seed", "-o", "json"},
		"describe-component-flannel":   {"describe", "component", "flannel"},
		"where-datastore":              {"where", "datastore"},
		"filter-flannel":               {"get", "components", "--filter", `component.implementation == "flannel"`},
		"filter-or":                    {"get", "components", "--filter", `component.component == "etcd"`, "--filter", `component.how == "DEPLOYMENT_KIND_DEPLOYMENT"`},
		"filter-flags":                 {"get", "components", "-o", "wide", "--filter", `component.flags[?"authorization-mode"].orValue("") == "Node,RBAC"`},
		"filter-findings":              {"get", "findings", "--filter", `finding.kind == "FINDING_KIND_CLOCK_SKEW" && finding.node != "zzk-5"`},
		"filter-processes":             {"get", "processes", "--filter", `process.argv.exists(a, a.startsWith("--kubeconfig"))`},
		"filter-nodes":                 {"get", "nodes", "--filter", `"control-plane" in node.roles`},
		"filter-clusters":              {"get", "clusters", "--filter", `cluster.datastore.implementation == "etcd"`},
		"filter-manifests":             {"get", "manifests", "--filter", `manifest.images.exists(i, i.contains("etcd"))`},
		"where-datastore-json":         {"where", "datastore", "-o", "json"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(name, "demo") {
				args = append([]string{"--bundle", seedBundle}, args...)
			}
			out, err := run(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, out)
		})
	}
}

func TestDemoAnswersTheReferenceQuestion(t *testing.T) {
	out, err := run(t, "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kube-apiserver            kube-apiserver            test                static pod",
		"kubelet                   kubelet                   all 6 nodes         host process   systemd unit kubelet.service",
		"cni                       flannel                   all 6 nodes         DaemonSet      DaemonSet kube-flannel/kube-flannel-ds",
		"cluster-dns               coredns                   test (2 replicas)   Deployment",
		"docker.service (not used by Kubernetes)",
		"Cluster mode: STATIC_POD",
		"clock-skew",
		"restarted 8 times",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// startSeedAggregator runs a real aggregator on 127.0.0.1:0 holding the
// reference bundle, until the test ends.
func startSeedAggregator(t *testing.T) *server.Aggregator {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agg, err := server.New(server.Config{Listener: lis, ShutdownGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Load(agg.Applier, seedBundle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return agg
}

// TestAgainstServer runs the CLI against a real aggregator on 127.0.0.1:0 and
// checks it answers exactly as the bundle does offline.
func TestAgainstServer(t *testing.T) {
	agg := startSeedAggregator(t)
	for _, args := range [][]string{
		{"get", "components", "-o", "json"},
		{"get", "findings", "-o", "yaml"},
		{"where", "kube-proxy"},
		{"describe", "node", "test"},
	} {
		live, err := run(t, append([]string{"--server", agg.Addr(), "--insecure"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		offline, err := run(t, append([]string{"--bundle", seedBundle}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if live != offline {
			t.Errorf("%v: live and offline answers differ:\n%s\n---\n%s", args, live, offline)
		}
	}
	_, err := run(t, "--server", agg.Addr(), "--insecure", "describe", "node", "nope")
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing node: %v", err)
	}
}

func TestPlainErrors(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	_, err = run(t, "--server", addr, "--insecure", "--timeout", "2s", "get", "clusters")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the aggregator at "+addr) {
		t.Errorf("unreachable: %v", err)
	}
	for _, args := range [][]string{
		{"--bundle", seedBundle, "get", "pods"},
		{"--bundle", seedBundle, "get", "nodes", "-o", "xml"},
		{"--bundle", seedBundle, "get", "components", "--how", "magic"},
		{"--bundle", "/nonexistent", "get", "clusters"},
		{"--bundle", seedBundle, "--bundle", seedBundle, "get", "clusters"},
		{"--bundle", seedBundle, "where", "kube-nothing"},
		{"--bundle", seedBundle, "get", "components", "--filter", `component.implementaton == "flannel"`},
		{"--bundle", seedBundle, "get", "components", "--filter", `component.pid`},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
