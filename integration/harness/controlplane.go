package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	URL        string
	Token      string
	Kubeconfig string
	Client     kubernetes.Interface
	Config     *rest.Config
	etcd, api  *Process
	dir        string
	apiArgs    []string
	bins       Binaries
	t          testing.TB
}

// StartControlPlane starts etcd and kube-apiserver on random loopback ports
// with token authentication and RBAC. Both stop, and their data goes, when
// the test ends.
func StartControlPlane(t testing.TB, bins Binaries) *ControlPlane {
	t.Helper()
	dir := t.TempDir()
	etcdPort, peerPort, apiPort := FreePort(t), FreePort(t), FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	etcd := StartProcess(t, dir, "etcd", bins.Etcd, "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort), "--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(peerPort), "--log-level", "warn")
	token := randomToken(t)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeServiceAccountKey(t, dir)
	cp := &ControlPlane{URL: "https://127.0.0.1:" + strconv.Itoa(apiPort), Token: token, etcd: etcd, dir: dir, bins: bins, t: t}
	cp.apiArgs = []string{
		"--etcd-servers=" + etcdURL, "--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(dir, "certs"), "--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC", "--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/12", "--disable-admission-plugins=ServiceAccount", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none", "--allow-privileged=true",
	}
	cp.api = StartProcess(t, dir, "kube-apiserver", bins.APIServer, cp.apiArgs...)
	cp.Config = &rest.Config{Host: cp.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	cp.Client = cs
	if err := cp.WaitReady(90 * time.Second); err != nil {
		t.Fatalf("kube-apiserver not ready: %v\n%s", err, Tail(cp.api.Log, 40))
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, cp.URL, token)
	if err := os.WriteFile(cp.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}

// WaitReady polls /readyz until it answers ok.
func (cp *ControlPlane) WaitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	return Eventually(timeout, 250*time.Millisecond, func() error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// StopAPIServer stops kube-apiserver (etcd keeps its data).
func (cp *ControlPlane) StopAPIServer() { cp.api.Stop() }

// StartAPIServer starts kube-apiserver again on the same port and data.
func (cp *ControlPlane) StartAPIServer(t testing.TB) {
	t.Helper()
	cp.api = StartProcess(cp.t, cp.dir, "kube-apiserver", cp.bins.APIServer, cp.apiArgs...)
	if err := cp.WaitReady(90 * time.Second); err != nil {
		t.Fatalf("kube-apiserver not ready after restart: %v", err)
	}
}

func randomToken(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func writeServiceAccountKey(t testing.TB, dir string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
}
