package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/certs"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// certBundle scans a node's generated certificates with the agent's reader
// and writes them into an offline bundle collected at 2026-11-30.
func certBundle(t *testing.T) string {
	t.Helper()
	host, dir := t.TempDir(), t.TempDir()
	serial := int64(0)
	issue := func(cn string, ca bool, notAfter string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		na, _ := time.Parse(time.DateOnly, notAfter)
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter: na, BasicConstraintsValid: true, IsCA: ca}
		signer, sk := tmpl, key
		if parent != nil {
			signer, sk = parent, parentKey
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, sk)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	put := func(path string, data []byte) {
		full := filepath.Join(host, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, caKey, caPEM := issue("kubernetes", true, "2099-01-01", nil, nil)
	_, _, servingPEM := issue("kube-apiserver", false, "2026-12-15", ca, caKey)
	_, _, etcdPEM := issue("kube-apiserver-etcd-client", false, "2020-06-01", ca, caKey)
	_, _, adminPEM := issue("kubernetes-admin", false, "2099-01-01", ca, caKey)
	put("/etc/kubernetes/pki/ca.crt", caPEM)
	put("/etc/kubernetes/pki/apiserver.crt", servingPEM)
	put("/etc/kubernetes/pki/apiserver-etcd-client.crt", etcdPEM)
	put("/etc/kubernetes/admin.conf", []byte("apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: "+
		base64.StdEncoding.EncodeToString(adminPEM)+"\n    client-key-data: c2VjcmV0LWtleS1ieXRlcw==\n"))
	apiserver := &v1.Process{Pid: 4242, Components: []*v1.HostedComponent{{Component: "kube-apiserver", Implementation: "kube-apiserver", Flags: []*v1.Flag{
		{Name: "client-ca-file", Values: []string{"/etc/kubernetes/pki/ca.crt"}},
		{Name: "etcd-certfile", Values: []string{"/etc/kubernetes/pki/apiserver-etcd-client.crt"}},
		{Name: "tls-cert-file", Values: []string{"/etc/kubernetes/pki/apiserver.crt"}},
	}}}}
	found := certs.New(certs.Config{HostRoot: host}).Scan([]*v1.Process{apiserver}, &v1.KubeletInfo{}, func(int32) string { return "" })
	collected := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	inv := &v1.NodeInventory{
		Identity:     &v1.NodeIdentity{Cluster: "lab", NodeName: "cp-1", Hostname: "cp-1", WallClock: timestamppb.New(collected)},
		Kubelet:      &v1.KubeletInfo{StaticPodPath: "/etc/kubernetes/manifests", StaticPodPathSource: "default"},
		Certificates: found,
	}
	data, err := protojson.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("c2VjcmV0LWtleS1ieXRlcw")) {
		t.Fatal("the kubeconfig's key reached the inventory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes", "cp-1.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bundle.yaml"), []byte("cluster: lab\ncollectedAt: 2026-11-30T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCertificatesGolden lists a bundle's certificates, the expiring ones,
// their findings, and the node that holds them.
func TestCertificatesGolden(t *testing.T) {
	dir := certBundle(t)
	clock := func() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) }
	for name, args := range map[string][]string{
		"get-certificates":          {"get", "certificates"},
		"get-certificates-wide":     {"get", "certificates", "-o", "wide", "--filter", "!certificate.is_ca"},
		"get-certificates-expiring": {"get", "certificates", "--expiring-within", "30d"},
		"certificate-findings":      {"get", "findings", "--filter", `finding.kind.startsWith("FINDING_KIND_CERTIFICATE")`},
		"describe-node-cp-1":        {"describe", "node", "cp-1"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := newRootCmd(&options{clock: clock})
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"--bundle", dir}, args...))
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			golden(t, name, out.String())
		})
	}
	if _, err := run(t, "--bundle", dir, "get", "certificates", "--expiring-within", "soon"); err == nil || !strings.Contains(err.Error(), "30d") {
		t.Errorf("a bad --expiring-within: %v", err)
	}
	if _, err := run(t, "--bundle", dir, "get", "nodes", "--expiring-within", "30d"); err == nil {
		t.Error("--expiring-within on nodes: no error")
	}
}
