package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// certificates puts kubeadm's CA and an apiserver serving certificate that
// expires in 10 days where the node "test" keeps them (its kube-apiserver's
// --tls-cert-file names that file). The real agent finds them on its next
// scan; the aggregator lists them and raises CERTIFICATE_EXPIRING, through
// the CLI and grpcurl. Removing the files clears the finding again.
func certificates(t *testing.T, e *env) {
	dir := filepath.Join(e.nodes["test"].HostRoot, "etc", "kubernetes", "pki")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caKey, _, caPEM, caCert := makeCert(t, "kubernetes", true, now.AddDate(10, 0, 0), nil, nil)
	_, leafKey, leafPEM, _ := makeCert(t, "kube-apiserver", false, now.Add(10*24*time.Hour+time.Hour), caCert, caKey)
	files := map[string][]byte{"ca.crt": caPEM, "apiserver.crt": leafPEM, "apiserver.key": leafKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed := false
	remove := func() {
		if !removed {
			removed = true
			for name := range files {
				_ = os.Remove(filepath.Join(dir, name))
			}
		}
	}
	defer remove()

	err := harness.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		var resp v1.ListCertificatesResponse
		if err := e.cli(t, &resp, "get", "certificates", "--cluster", "seed", "--node", "test", "--expiring-within", "30d"); err != nil {
			return err
		}
		if len(resp.Certificates) != 1 {
			return fmt.Errorf("%d certificates expire within 30 days, want 1: %v", len(resp.Certificates), resp.Certificates)
		}
		c := resp.Certificates[0].Certificate
		if c.Path != "/etc/kubernetes/pki/apiserver.crt" || c.Subject != "CN=kube-apiserver" || !c.IssuerOnNode || c.IsCa {
			return fmt.Errorf("the expiring certificate: %v", c)
		}
		if u := c.UsedBy(); !strings.Contains(u, "kube-apiserver --tls-cert-file") {
			return fmt.Errorf("used by %q", u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.waitFindings(t, 10*time.Second, "test CERTIFICATE_EXPIRING /etc/kubernetes/pki/apiserver.crt"); err != nil {
		t.Fatal(err)
	}
	out := run2(t, e, "-d", `{"cluster":"seed","node":"test","filter":"certificate.is_ca"}`, e.agg.Addr, "kubeatlas.v1.InventoryService/ListCertificates")
	if !strings.Contains(out, `"path": "/etc/kubernetes/pki/ca.crt"`) || strings.Contains(out, "apiserver.crt") {
		t.Errorf("grpcurl ListCertificates with a filter:\n%s", out)
	}
	if d := run2(t, e, e.agg.Addr, "describe", "kubeatlas.v1.Certificate"); !strings.Contains(d, "The agent reads only CERTIFICATE") {
		t.Errorf("describe shows no comment for Certificate:\n%s", d)
	}
	body := strings.Join(strings.Split(strings.TrimSpace(string(leafKey)), "\n")[1:3], "")
	all := run2(t, e, "-d", `{}`, e.agg.Addr, "kubeatlas.v1.InventoryService/ListCertificates")
	if strings.Contains(all, body) || strings.Contains(all, "PRIVATE KEY") {
		t.Errorf("the key reached the aggregator")
	}

	remove()
	err = harness.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		got, err := e.findings(t)
		if err != nil {
			return err
		}
		if strings.Contains(strings.Join(got, "\n"), "CERTIFICATE_EXPIRING") {
			return fmt.Errorf("the finding is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func run2(t *testing.T, e *env, args ...string) string {
	t.Helper()
	out, err := grpcurlRun(e.bins.Grpcurl, args...)
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// makeCert returns a key (and its PEM), a certificate (PEM) and the parsed
// certificate, signed by parent (self-signed when nil).
func makeCert(t *testing.T, cn string, ca bool, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, []byte, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, BasicConstraintsValid: true, IsCA: ca}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c
}
