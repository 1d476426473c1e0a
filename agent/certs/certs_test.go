package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// issued is a generated certificate with its key.
type issued struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 100

// issue makes a certificate valid from notBefore to notAfter, signed by
// parent (self-signed when nil).
func issue(t *testing.T, cn string, ca bool, notBefore, notAfter time.Time, parent *issued) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"kubeatlas-test"}},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true, IsCA: ca,
		DNSNames: []string{cn + ".example"}, IPAddresses: []net.IP{net.ParseIP("10.96.0.1")},
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (i *issued) keyPEM(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func write(t *testing.T, root, path string, data []byte) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// garbageKey is a private-key block whose body is not base64: decoding it
// would fail, so a scan that succeeds never decoded it.
const garbageKey = "-----BEGIN RSA PRIVATE KEY-----\n!!!! not base64, and never to be decoded !!!!\n-----END RSA PRIVATE KEY-----\n"

func proc(pid int32, component, impl string, flags map[string]string) *v1.Process {
	hc := &v1.HostedComponent{Component: component, Implementation: impl}
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		hc.Flags = append(hc.Flags, &v1.Flag{Name: n, Values: []string{flags[n]}})
	}
	return &v1.Process{Pid: pid, Components: []*v1.HostedComponent{hc}}
}

// spy wraps a Reader's file reads and records them.
func spy(r *Reader) *[]string {
	var read []string
	inner := r.read
	r.read = func(path string) ([]byte, error) {
		read = append(read, path)
		return inner(path)
	}
	return &read
}

func byName(certs []*v1.Certificate) map[string]*v1.Certificate {
	m := map[string]*v1.Certificate{}
	for _, c := range certs {
		m[c.Name()] = c
	}
	return m
}

func TestScanReadsWhatComponentsName(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ca := issue(t, "kubernetes", true, now.Add(-time.Hour), now.AddDate(10, 0, 0), nil)
	etcdCA := issue(t, "etcd-ca", true, now.Add(-time.Hour), now.AddDate(10, 0, 0), nil)
	serving := issue(t, "kube-apiserver", false, now.Add(-time.Hour), now.AddDate(1, 0, 0), ca)
	expired := issue(t, "apiserver-etcd-client", false, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), etcdCA)
	foreign := issue(t, "front-proxy-client", false, now.Add(-time.Hour), now.Add(10*24*time.Hour),
		issue(t, "some-other-ca", true, now.Add(-time.Hour), now.AddDate(1, 0, 0), nil))
	write(t, root, "/etc/kubernetes/pki/ca.crt", ca.pem)
	write(t, root, "/etc/kubernetes/pki/ca.key", ca.keyPEM(t))
	write(t, root, "/etc/kubernetes/pki/apiserver.crt", serving.pem)
	write(t, root, "/etc/kubernetes/pki/apiserver.key", serving.keyPEM(t))
	write(t, root, "/etc/kubernetes/pki/etcd/ca.crt", etcdCA.pem)
	write(t, root, "/etc/kubernetes/pki/apiserver-etcd-client.crt", expired.pem)
	write(t, root, "/srv/proxy/front-proxy-client.crt", foreign.pem)
	write(t, root, "/etc/kubernetes/pki/sa.pub", []byte("not read"))

	procs := []*v1.Process{proc(100, "kube-apiserver", "kube-apiserver", map[string]string{
		"tls-cert-file":              "/etc/kubernetes/pki/apiserver.crt",
		"tls-private-key-file":       "/etc/kubernetes/pki/apiserver.key",
		"client-ca-file":             "/etc/kubernetes/pki/ca.crt",
		"etcd-cafile":                "/etc/kubernetes/pki/etcd/ca.crt",
		"etcd-certfile":              "/etc/kubernetes/pki/apiserver-etcd-client.crt",
		"etcd-keyfile":               "/etc/kubernetes/pki/apiserver-etcd-client.key",
		"proxy-client-cert-file":     "proxy/front-proxy-client.crt", // relative to its working directory
		"service-account-key-file":   "/etc/kubernetes/pki/sa.pub",
		"kubelet-client-certificate": "/etc/kubernetes/pki/missing.crt",
	})}
	r := New(Config{HostRoot: root, ProcDir: filepath.Join(root, "proc")})
	read := spy(r)
	got := byName(r.Scan(procs, &v1.KubeletInfo{}, func(int32) string { return "/srv" }))

	for _, p := range *read {
		if strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".pub") {
			t.Errorf("read %s: no file is opened only for a key", p)
		}
	}
	c := got["/etc/kubernetes/pki/apiserver.crt"]
	if c == nil {
		t.Fatalf("apiserver.crt not reported; got %v", keys(got))
	}
	if c.Subject != "CN=kube-apiserver,O=kubeatlas-test" || c.Issuer != "CN=kubernetes,O=kubeatlas-test" || c.IsCa || c.SelfSigned || !c.IssuerOnNode {
		t.Errorf("apiserver.crt = %v", c)
	}
	if !slices.Equal(c.DnsNames, []string{"kube-apiserver.example"}) || !slices.Equal(c.IpAddresses, []string{"10.96.0.1"}) {
		t.Errorf("SANs = %v %v", c.DnsNames, c.IpAddresses)
	}
	if c.Serial != serving.cert.SerialNumber.Text(16) || !c.NotAfter.AsTime().Equal(serving.cert.NotAfter) || len(c.Sha256) != 64 {
		t.Errorf("serial %s, not after %v, sha256 %q", c.Serial, c.NotAfter.AsTime(), c.Sha256)
	}
	wantUses := []string{"kube-apiserver/100/tls-cert-file", "/0/kubeadm"}
	if u := uses(c); !slices.Equal(u, []string{"/0/kubeadm", "kube-apiserver/100/tls-cert-file"}) {
		t.Errorf("uses = %v, want %v", u, wantUses)
	}
	if ca := got["/etc/kubernetes/pki/ca.crt"]; ca == nil || !ca.IsCa || !ca.SelfSigned || !ca.IssuerOnNode {
		t.Errorf("ca.crt = %v", ca)
	}
	if e := got["/etc/kubernetes/pki/apiserver-etcd-client.crt"]; e == nil || !e.IssuerOnNode || !e.NotAfter.AsTime().Before(now) {
		t.Errorf("the expired etcd client certificate = %v", e)
	}
	if f := got["/srv/proxy/front-proxy-client.crt"]; f == nil || f.IssuerOnNode {
		t.Errorf("a certificate whose CA is not on the node = %v, want issuer_on_node false", f)
	}
	if m := got["/etc/kubernetes/pki/missing.crt"]; m == nil || !strings.Contains(m.Error, "no such file") || m.Subject != "" {
		t.Errorf("a named file that is missing = %v, want an error row", m)
	} else if strings.Contains(m.Error, root) {
		t.Errorf("the error names the agent's host root: %q", m.Error)
	}
}

func keys(m map[string]*v1.Certificate) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func uses(c *v1.Certificate) []string {
	var out []string
	for _, u := range c.Uses {
		out = append(out, u.Component+"/"+itoa(u.Pid)+"/"+u.Flag)
	}
	return out
}

func itoa(i int32) string { return big.NewInt(int64(i)).String() }

// The kubelet's rotated client certificate holds certificate and key in one
// file. Only the certificate is decoded: the key block here is not even
// base64, so decoding it would fail, and nothing of it reaches the report.
func TestKeyBlocksAreNeverDecoded(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ca := issue(t, "kubernetes", true, now.Add(-time.Hour), now.AddDate(10, 0, 0), nil)
	client := issue(t, "system:node:worker-1", false, now.Add(-time.Hour), now.AddDate(1, 0, 0), ca)
	realKey := client.keyPEM(t)
	both := append(append(append([]byte(nil), garbageKey...), client.pem...), realKey...)
	write(t, root, "/var/lib/kubelet/pki/kubelet-client-current.pem", both)
	write(t, root, "/var/lib/kubelet/pki/kubelet.key", realKey)
	write(t, root, "/etc/kubernetes/pki/ca.crt", ca.pem)
	write(t, root, "/var/lib/kubelet/config.yaml", []byte("kind: KubeletConfiguration\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"))

	procs := []*v1.Process{proc(7, "kubelet", "kubelet", map[string]string{"config": "/var/lib/kubelet/config.yaml"})}
	r := New(Config{HostRoot: root})
	certs := r.Scan(procs, &v1.KubeletInfo{ConfigPath: "/var/lib/kubelet/config.yaml"}, func(int32) string { return "" })
	got := byName(certs)
	c := got["/var/lib/kubelet/pki/kubelet-client-current.pem"]
	if c == nil || c.Error != "" || c.Subject != "CN=system:node:worker-1,O=kubeatlas-test" || !c.IssuerOnNode {
		t.Fatalf("kubelet-client-current.pem = %v (all: %v)", c, keys(got))
	}
	if u := uses(c); !slices.Equal(u, []string{"kubelet/7/cert-dir"}) {
		t.Errorf("uses = %v", u)
	}
	if ca := got["/etc/kubernetes/pki/ca.crt"]; ca == nil || !slices.Contains(uses(ca), "kubelet/7/authentication.x509.clientCAFile") {
		t.Errorf("the kubelet config's clientCAFile is not reported as used: %v", ca)
	}
	out, err := protojson.Marshal(&v1.NodeInventory{Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	body := pemBody(realKey)
	for _, needle := range []string{"PRIVATE KEY", body[:40], base64.StdEncoding.EncodeToString([]byte(body[:30]))} {
		if bytes.Contains(out, []byte(needle)) {
			t.Errorf("the report holds key material %q", needle)
		}
	}
}

func pemBody(p []byte) string {
	lines := strings.Split(strings.TrimSpace(string(p)), "\n")
	return strings.Join(lines[1:len(lines)-1], "")
}

func TestKubeconfigs(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ca := issue(t, "kubernetes", true, now.Add(-time.Hour), now.AddDate(10, 0, 0), nil)
	admin := issue(t, "kubernetes-admin", false, now.Add(-time.Hour), now.Add(5*24*time.Hour), ca)
	sched := issue(t, "system:kube-scheduler", false, now.Add(-time.Hour), now.AddDate(1, 0, 0), ca)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	adminConf := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: " + b64(ca.pem) +
		"\n    server: https://10.0.0.1:6443\n  name: kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: " +
		b64(admin.pem) + "\n    client-key-data: " + b64([]byte(garbageKey)) + "\n"
	write(t, root, "/etc/kubernetes/admin.conf", []byte(adminConf))
	// A kubeconfig naming its files, relative to its own directory, with
	// the user's key first in its list.
	schedConf := "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    certificate-authority: pki/ca.crt\nusers:\n- name: scheduler\n  user:\n    client-key: pki/scheduler.key\n    client-certificate: pki/scheduler.crt\n    token: abc.def\n"
	write(t, root, "/etc/kubernetes/scheduler.conf", []byte(schedConf))
	write(t, root, "/etc/kubernetes/pki/ca.crt", ca.pem)
	write(t, root, "/etc/kubernetes/pki/scheduler.crt", sched.pem)
	write(t, root, "/etc/kubernetes/pki/scheduler.key", sched.keyPEM(t))
	write(t, root, "/etc/kubernetes/broken.conf", []byte("users: [unclosed"))

	procs := []*v1.Process{
		proc(20, "kube-scheduler", "kube-scheduler", map[string]string{"kubeconfig": "/etc/kubernetes/scheduler.conf", "authentication-kubeconfig": "/etc/kubernetes/scheduler.conf"}),
		proc(21, "kube-proxy", "kube-proxy", map[string]string{"kubeconfig": "/etc/kubernetes/broken.conf"}),
	}
	r := New(Config{HostRoot: root})
	read := spy(r)
	got := byName(r.Scan(procs, &v1.KubeletInfo{}, func(int32) string { return "" }))
	if slices.ContainsFunc(*read, func(p string) bool { return strings.HasSuffix(p, ".key") }) {
		t.Errorf("read a key file: %v", *read)
	}
	a := got["/etc/kubernetes/admin.conf users[kubernetes-admin].client-certificate-data"]
	if a == nil || a.Subject != "CN=kubernetes-admin,O=kubeatlas-test" || !a.IssuerOnNode || !slices.Equal(uses(a), []string{"/0/kubeadm"}) {
		t.Errorf("admin.conf's client certificate = %v (all: %v)", a, keys(got))
	}
	if c := got["/etc/kubernetes/admin.conf clusters[kubernetes].certificate-authority-data"]; c == nil || !c.IsCa {
		t.Errorf("admin.conf's CA = %v", c)
	}
	s := got["/etc/kubernetes/pki/scheduler.crt"]
	if s == nil || !slices.Equal(uses(s), []string{"/0/kubeadm", "kube-scheduler/20/authentication-kubeconfig", "kube-scheduler/20/kubeconfig"}) {
		t.Errorf("scheduler.crt named by scheduler.conf = %v", s)
	}
	if b := got["/etc/kubernetes/broken.conf"]; b == nil || !strings.Contains(b.Error, "not a kubeconfig") {
		t.Errorf("a malformed kubeconfig = %v, want an error row", b)
	}
}

func TestWithoutSecrets(t *testing.T) {
	in := "users:\n- name: a\n  user:\n    client-key-data: SECRET1\n    client-certificate-data: KEEP1\n" +
		"- name: b\n  user:\n    token: SECRET2\n    client-key: |\n      SECRET3\n      SECRET4\n    client-certificate: KEEP2\n" +
		"- client-key-data: SECRET5\n  name: c\n" +
		"- user:\n    password: SECRET6\n    username: KEEP3\n"
	out := string(withoutSecrets([]byte(in)))
	for _, s := range []string{"SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "SECRET6"} {
		if strings.Contains(out, s) {
			t.Errorf("%s survived:\n%s", s, out)
		}
	}
	for _, s := range []string{"KEEP1", "KEEP2", "KEEP3", "name: c"} {
		if !strings.Contains(out, s) {
			t.Errorf("%s was cut:\n%s", s, out)
		}
	}
}

func TestFlagKind(t *testing.T) {
	for name, want := range map[string]int{
		"tls-cert-file": flagCert, "client-ca-file": flagCert, "kubelet-client-certificate": flagCert,
		"kubelet-certificate-authority": flagCert, "etcd-certfile": flagCert, "etcd-cafile": flagCert,
		"cert-file": flagCert, "peer-cert-file": flagCert, "trusted-ca-file": flagCert, "peer-trusted-ca-file": flagCert,
		"requestheader-client-ca-file": flagCert, "cluster-signing-cert-file": flagCert, "root-ca-file": flagCert,
		"proxy-client-cert-file": flagCert, "oidc-ca-file": flagCert, "datastore-cafile": flagCert, "datastore-certfile": flagCert,
		"kubeconfig": flagKubeconfig, "authentication-kubeconfig": flagKubeconfig, "bootstrap-kubeconfig": flagKubeconfig,
		"cert-dir":             flagCertDir,
		"tls-private-key-file": flagOther, "key-file": flagOther, "peer-key-file": flagOther, "etcd-keyfile": flagOther,
		"service-account-key-file": flagOther, "kubelet-client-key": flagOther, "datastore-keyfile": flagOther,
		"cluster-signing-key-file": flagOther, "config": flagOther, "v": flagOther,
	} {
		if got := flagKind(name); got != want {
			t.Errorf("flagKind(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestParsePEM(t *testing.T) {
	now := time.Now()
	a := issue(t, "a", true, now, now.Add(time.Hour), nil)
	b := issue(t, "b", false, now, now.Add(time.Hour), a)
	certs, err := ParsePEM(append(append([]byte(garbageKey), a.pem...), b.pem...))
	if err != nil || len(certs) != 2 || certs[1].Subject.CommonName != "b" {
		t.Fatalf("a bundle of two after a key: %v, %v", certs, err)
	}
	for name, in := range map[string]string{
		"empty":     "",
		"key only":  garbageKey,
		"truncated": "-----BEGIN CERTIFICATE-----\nMIIB",
		"not DER":   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		if _, err := ParsePEM([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// An unchanged file is not read again on the next scan; a changed one is.
func TestScanCachesUnchangedFiles(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	a := issue(t, "a", false, now, now.Add(time.Hour), nil)
	write(t, root, "/pki/a.crt", a.pem)
	procs := []*v1.Process{proc(1, "etcd", "etcd", map[string]string{"cert-file": "/pki/a.crt"})}
	r := New(Config{HostRoot: root})
	read := spy(r)
	cwd := func(int32) string { return "" }
	first := r.Scan(procs, &v1.KubeletInfo{}, cwd)
	second := r.Scan(procs, &v1.KubeletInfo{}, cwd)
	if len(*read) != 1 || len(first) != 1 || len(second) != 1 || first[0].Sha256 != second[0].Sha256 {
		t.Fatalf("two scans of one unchanged file: %d reads, %v / %v", len(*read), first, second)
	}
	b := issue(t, "b", false, now, now.Add(2*time.Hour), nil)
	write(t, root, "/pki/a.crt", b.pem)
	future := now.Add(time.Minute)
	_ = os.Chtimes(filepath.Join(root, "/pki/a.crt"), future, future)
	third := r.Scan(procs, &v1.KubeletInfo{}, cwd)
	if len(*read) != 2 || third[0].Subject != "CN=b,O=kubeatlas-test" {
		t.Errorf("after a change: %d reads, %v", len(*read), third)
	}
}

// FuzzKubeconfig feeds arbitrary bytes to the kubeconfig reader: it never
// panics, and what it keeps never holds a client key's value.
func FuzzKubeconfig(f *testing.F) {
	f.Add([]byte("users:\n- name: a\n  user:\n    client-key-data: S3CR3TKEY\n    client-certificate-data: AAAA\n"))
	f.Add([]byte("{\"kind\":\"Config\",\"users\":[{\"name\":\"a\",\"user\":{\"client-key-data\":\"S3CR3TKEY\"}}]}"))
	f.Add([]byte("clusters:\n- cluster:\n    certificate-authority: /x\n  name: \"\\xff\"\n"))
	f.Add([]byte("- client-key: |\n    S3CR3TKEY\n  name: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := parseKubeconfig(data)
		if err != nil {
			return
		}
		for _, e := range refs.entries {
			if strings.Contains(e.file, "S3CR3TKEY") && !bytes.Contains(data, []byte("client-certificate")) && !bytes.Contains(data, []byte("certificate-authority")) {
				t.Errorf("a key's value became a certificate reference: %q", e.file)
			}
		}
		if out := withoutSecrets(data); bytes.Contains(data, []byte("client-key-data: S3CR3TKEY\n")) && bytes.Contains(out, []byte("S3CR3TKEY")) &&
			bytes.Count(data, []byte("S3CR3TKEY")) == 1 {
			t.Errorf("the key line survived:\n%s", out)
		}
	})
}

// FuzzParsePEM: arbitrary bytes never panic the PEM reader.
func FuzzParsePEM(f *testing.F) {
	f.Add([]byte(garbageKey))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParsePEM(data)
		if err == nil && len(certs) == 0 {
			t.Error("no error and no certificate")
		}
	})
}

// Names inside a certificate are free text from the node: a credential in
// them is redacted as in argv.
func TestCertificateTextIsRedacted(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	c := issue(t, "https://admin:S3CR3T@example.com", false, now, now.Add(time.Hour), nil)
	write(t, root, "/pki/odd.crt", c.pem)
	procs := []*v1.Process{proc(1, "etcd", "etcd", map[string]string{"cert-file": "/pki/odd.crt"})}
	certs := New(Config{HostRoot: root}).Scan(procs, &v1.KubeletInfo{}, func(int32) string { return "" })
	out, _ := protojson.Marshal(&v1.NodeInventory{Certificates: certs})
	if len(certs) != 1 || bytes.Contains(out, []byte("S3CR3T")) {
		t.Errorf("a credential in a certificate's names left the node: %s", out)
	}
}
