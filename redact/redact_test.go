package redact

import (
	"strings"
	"testing"
)

// corpus is command lines carrying secrets; every secret contains "S3CR3T".
var corpus = [][]string{
	{"kube-apiserver", "--token-auth-file=/etc/kubernetes/tokens.csv", "--etcd-servers=https://root:S3CR3T-pw@10.0.0.1:2379"},
	{"kubelet", "--bootstrap-token=abcdef.S3CR3T0123456789"},
	{"kubelet", "--bootstrap-token", "abcdef.S3CR3T0123456789"},
	{"etcd", "--password=S3CR3T"},
	{"etcd", "-password", "S3CR3T"},
	{"flanneld", "--etcd-password=S3CR3T"},
	{"calico-node", "--datastore-secret=S3CR3T"},
	{"agent", "--api-key=S3CR3T"},
	{"agent", "--apikey", "S3CR3T"},
	{"agent", "--client-secret=S3CR3T"},
	{"agent", "--aws-secret-access-key=S3CR3T"},
	{"agent", "--access-key", "S3CR3T"},
	{"agent", "--credentials=S3CR3T"},
	{"agent", "--passphrase=S3CR3T"},
	{"agent", "--db-passwd=S3CR3T"},
	{"agent", "--encryption-key=S3CR3T"},
	{"agent", "--private-key=S3CR3T"},
	{"agent", "--psk=S3CR3T"},
	{"k3s", "server", "--token", "K10S3CR3T::server:S3CR3T"},
	{"k3s", "server", "--agent-token=S3CR3T"},
	{"k3s", "server", "--datastore-endpoint=postgres://k3s:S3CR3T@db:5432/k3s"},
	{"curl", "-H", "Authorization: Bearer S3CR3T.eyJhbGci"},
	{"app", "--url=mysql://user:S3CR3T@tcp(db:3306)/x"},
	{"app", "--upstreams=http://a:S3CR3T@h1,http://b:S3CR3T2@h2"},
	{"env", "DB_PASSWORD=S3CR3T", "GITHUB_TOKEN=S3CR3T", "run"},
	{"cloud-controller-manager", "--cloud-config=/etc/cfg", "--openstack-password=S3CR3T"},
	{"http://admin:S3CR3T@host/bin"},
	{"agent", "--TOKEN=S3CR3T"},
	{"agent", "---token=S3CR3T"},
	{"agent", "--x-token=S3CR3T", "--y-token", "S3CR3T"},
}

func TestArgvCorpusHasNoLeaks(t *testing.T) {
	for _, argv := range corpus {
		got := Argv(argv)
		for _, a := range got {
			if strings.Contains(a, "S3CR3T") {
				t.Errorf("secret leaked: %q -> %q", argv, got)
			}
		}
		if len(got) != len(argv) {
			t.Errorf("length changed: %q -> %q", argv, got)
		}
	}
}

func TestArgvKeepsUsefulValues(t *testing.T) {
	argv := []string{
		"kube-apiserver",
		"--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
		"--service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
		"--enable-bootstrap-token-auth=true",
		"--token-auth-file", "/etc/kubernetes/tokens.csv",
		"--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
		"--etcd-servers=https://127.0.0.1:2379",
		"--service-account-max-token-expiration=48h",
		"--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
		"--authentication-token-webhook-cache-ttl=2m",
	}
	got := Argv(argv)
	for i := range argv {
		if got[i] != argv[i] {
			t.Errorf("changed %q to %q", argv[i], got[i])
		}
	}
}

func TestArgvDoesNotChangeInput(t *testing.T) {
	argv := []string{"x", "--token=abc"}
	_ = Argv(argv)
	if argv[1] != "--token=abc" {
		t.Fatal("input modified")
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		name, value, want string
		redacted          bool
	}{
		{"token", "abc", Marker, true},
		{"token", "true", "true", false},
		{"etcd-servers", "https://u:p@h:1", "https://u:" + Marker + "@h:1", true},
		{"etcd-servers", "https://h:1", "https://h:1", false},
		{"kubeconfig", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/kubelet.conf", false},
	}
	for _, tt := range tests {
		got, r := Value(tt.name, tt.value)
		if got != tt.want || r != tt.redacted {
			t.Errorf("Value(%q, %q) = %q, %v; want %q, %v", tt.name, tt.value, got, r, tt.want, tt.redacted)
		}
	}
}

func FuzzArgv(f *testing.F) {
	f.Add("--token=abc", "x")
	f.Add("--password", "S3CR3T")
	f.Add("http://u:p@h", "\xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		out := Argv([]string{"prog", a, b})
		if len(out) != 3 {
			t.Fatalf("length %d", len(out))
		}
		// Redaction is idempotent.
		again := Argv(out)
		for i := range out {
			if again[i] != out[i] {
				t.Fatalf("not idempotent: %q -> %q", out, again)
			}
		}
	})
}
