package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// TestKubeadmCertificates has the real kubeadm write its certificates and
// kubeconfigs (`kubeadm init phase certs all`, `kubeadm init phase kubeconfig
// all`) into a node's host root, the real agent take a snapshot of that
// node, and the CLI read it as a bundle: every certificate kubeadm made is
// listed with kubeadm's own lifetimes (ten years for the CAs, one year for
// the rest), with its issuer found on the node, and no key reaches the
// snapshot.
func TestKubeadmCertificates(t *testing.T) {
	bins := harness.Build(t)
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	pki := filepath.Join(host, "etc", "kubernetes", "pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc", filepath.Join(host, "proc")); err != nil {
		t.Fatal(err)
	}
	kubeadm := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bins.Kubeadm, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// kubeadm refuses a loopback address; it only writes the address into
	// certificates and kubeconfigs (a documentation address, never dialled).
	common := []string{"--kubernetes-version", harness.KubernetesVersion, "--apiserver-advertise-address", "192.0.2.10", "--cert-dir", pki}
	kubeadm(append([]string{"init", "phase", "certs", "all"}, common...)...)
	kubeadm(append([]string{"init", "phase", "kubeconfig", "all", "--kubeconfig-dir", filepath.Join(host, "etc", "kubernetes"), "--node-name", "cp-1"}, common...)...)

	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(filepath.Join(bundle, "nodes"), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err := exec.Command(bins.Agent, "snapshot", "--cluster", "kubeadm", "--node-name", "cp-1", "--host-root", host).Output()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "nodes", "cp-1.json"), snap, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "bundle.yaml"), []byte("cluster: kubeadm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No key of kubeadm's reaches the snapshot.
	keys, _ := filepath.Glob(filepath.Join(pki, "*.key"))
	keys = append(keys, filepath.Join(pki, "etcd", "ca.key"))
	for _, k := range keys {
		data, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 2 && strings.Contains(string(snap), lines[1]) {
			t.Errorf("the snapshot holds key material of %s", k)
		}
	}
	if strings.Contains(string(snap), "PRIVATE KEY") {
		t.Error("the snapshot holds a private key block")
	}

	var resp v1.ListCertificatesResponse
	out, err := exec.Command(bins.CLI, "--bundle", bundle, "-o", "json", "get", "certificates").Output()
	if err != nil {
		t.Fatalf("get certificates: %v", err)
	}
	if err := protojson.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*v1.Certificate{}
	for _, nc := range resp.Certificates {
		byName[nc.Certificate.Name()] = nc.Certificate
	}
	year := 365 * 24 * time.Hour
	for name, want := range map[string]struct {
		life time.Duration
		ca   bool
	}{
		"/etc/kubernetes/pki/ca.crt":                                                                            {10 * year, true},
		"/etc/kubernetes/pki/front-proxy-ca.crt":                                                                {10 * year, true},
		"/etc/kubernetes/pki/etcd/ca.crt":                                                                       {10 * year, true},
		"/etc/kubernetes/pki/apiserver.crt":                                                                     {year, false},
		"/etc/kubernetes/pki/apiserver-kubelet-client.crt":                                                      {year, false},
		"/etc/kubernetes/pki/apiserver-etcd-client.crt":                                                         {year, false},
		"/etc/kubernetes/pki/front-proxy-client.crt":                                                            {year, false},
		"/etc/kubernetes/pki/etcd/server.crt":                                                                   {year, false},
		"/etc/kubernetes/pki/etcd/peer.crt":                                                                     {year, false},
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt":                                                       {year, false},
		"/etc/kubernetes/admin.conf users[kubernetes-admin].client-certificate-data":                            {year, false},
		"/etc/kubernetes/scheduler.conf users[system:kube-scheduler].client-certificate-data":                   {year, false},
		"/etc/kubernetes/controller-manager.conf users[system:kube-controller-manager].client-certificate-data": {year, false},
	} {
		c := byName[name]
		if c == nil {
			t.Errorf("%s not listed", name)
			continue
		}
		life := c.NotAfter.AsTime().Sub(c.NotBefore.AsTime())
		// kubeadm backdates NotBefore a little; allow a day either way.
		if life < want.life-24*time.Hour || life > want.life+24*time.Hour || c.IsCa != want.ca || !c.IssuerOnNode {
			t.Errorf("%s: valid %v, CA %v, issuer on node %v; want %v, CA %v", name, life.Round(time.Hour), c.IsCa, c.IssuerOnNode, want.life, want.ca)
		}
	}
	if c := byName["/etc/kubernetes/pki/apiserver.crt"]; c != nil && !strings.Contains(strings.Join(c.DnsNames, ","), "kubernetes.default.svc") {
		t.Errorf("apiserver.crt SANs: %v", c.DnsNames)
	}
	// Nothing kubeadm just made expires within 30 days.
	out, err = exec.Command(bins.CLI, "--bundle", bundle, "get", "findings").CombinedOutput()
	if err != nil || strings.Contains(string(out), "certificate-") {
		t.Errorf("findings: %v\n%s", err, out)
	}
}
