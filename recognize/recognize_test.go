package recognize

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/redact"
)

func names(r Result) []string {
	var out []string
	for _, c := range r.Components {
		out = append(out, c.Name+"/"+c.Implementation)
	}
	return out
}

func TestRecognize(t *testing.T) {
	tests := []struct {
		cmd   string
		want  []string
		infra bool
		conf  string
	}{
		{"/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf", []string{"kubelet/kubelet"}, false, "/var/lib/kubelet/config.yaml"},
		{"etcd --data-dir=/var/lib/etcd --name=test", []string{"etcd/etcd"}, false, ""},
		{"kube-apiserver --secure-port=6443", []string{"kube-apiserver/kube-apiserver"}, false, ""},
		{"kube-controller-manager --leader-elect=true", []string{"kube-controller-manager/kube-controller-manager"}, false, ""},
		{"kube-scheduler --bind-address=127.0.0.1", []string{"kube-scheduler/kube-scheduler"}, false, ""},
		{"/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=test", []string{"kube-proxy/kube-proxy"}, false, "/var/lib/kube-proxy/config.conf"},
		{"/opt/bin/flanneld --ip-masq --kube-subnet-mgr", []string{"cni/flannel"}, false, ""},
		{"/coredns -conf /etc/coredns/Corefile", []string{"cluster-dns/coredns"}, false, "/etc/coredns/Corefile"},
		{"/usr/bin/containerd", []string{"container-runtime/containerd"}, false, ""},
		{"/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", []string{"container-runtime/dockerd"}, false, ""},
		{"/usr/bin/crio --config /etc/crio/crio.conf", []string{"container-runtime/cri-o"}, false, "/etc/crio/crio.conf"},
		{"calico-node -felix", []string{"cni/calico"}, false, ""},
		{"cilium-agent --config-dir=/tmp/cilium/config-map", []string{"cni/cilium"}, false, "/tmp/cilium/config-map"},
		{"/bin/kindnetd", []string{"cni/kindnet"}, false, ""},
		{"/usr/local/bin/aws-cloud-controller-manager --cloud-provider=aws", []string{"cloud-controller-manager/aws-cloud-controller-manager"}, false, ""},
		{"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc -address /run/containerd/containerd.sock", nil, true, ""},
		{"/pause", nil, true, ""},
		{"/usr/libexec/crio/conmon -b /run/x", nil, true, ""},
		{"/hyperkube kube-apiserver --secure-port=6443", []string{"kube-apiserver/hyperkube"}, false, ""},
		{"/hyperkube proxy --config=/x", []string{"kube-proxy/hyperkube"}, false, "/x"},
		{"/hyperkube nonsense", nil, false, ""},
		{"/usr/local/bin/k3s server --cluster-init", []string{"kube-apiserver/k3s", "kube-controller-manager/k3s", "kube-scheduler/k3s", "etcd/k3s", "cloud-controller-manager/k3s", "kubelet/k3s", "kube-proxy/k3s", "cni/flannel"}, false, ""},
		{"/usr/local/bin/k3s agent --flannel-backend=none", []string{"kubelet/k3s", "kube-proxy/k3s"}, false, ""},
		{"/snap/microk8s/current/kubelite --apiserver-args-file=/x", []string{"kube-apiserver/kubelite", "kube-controller-manager/kubelite", "kube-scheduler/kubelite", "kubelet/kubelite", "kube-proxy/kubelite"}, false, ""},
		{"/usr/local/bin/rke2 server", nil, true, ""},
		{"bash -c sleep", nil, false, ""},
		{"sshd: root@pts/0", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			r := Recognize(strings.Fields(tt.cmd))
			if got := names(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("components = %v, want %v", got, tt.want)
			}
			if r.Infrastructure != tt.infra {
				t.Errorf("infrastructure = %v, want %v", r.Infrastructure, tt.infra)
			}
			if len(r.Components) > 0 && r.Components[len(r.Components)-1].ConfigFile != tt.conf && r.Components[0].ConfigFile != tt.conf {
				t.Errorf("config file = %q, want %q", r.Components[0].ConfigFile, tt.conf)
			}
		})
	}
}

func TestRecognizeRewrittenTitle(t *testing.T) {
	r := Recognize([]string{"/usr/local/bin/k3s server"})
	if len(r.Components) == 0 || r.Components[0].Name != "kube-apiserver" {
		t.Fatalf("k3s title not recognised: %v", names(r))
	}
}

func TestParseFlags(t *testing.T) {
	f := ParseFlags([]string{"sub", "--a=b", "--c", "d", "-e", "--bool", "--x=1", "--x=2", "-n", "-5", "--", "--pos"})
	want := map[string][]string{"a": {"b"}, "c": {"d"}, "e": {"true"}, "bool": {"true"}, "x": {"1", "2"}, "n": {"-5"}}
	if !reflect.DeepEqual(f.Values, want) {
		t.Errorf("values = %v, want %v", f.Values, want)
	}
	if !reflect.DeepEqual(f.Positional, []string{"sub", "--pos"}) {
		t.Errorf("positional = %v", f.Positional)
	}
}

func TestFlagsProtoMarksRedacted(t *testing.T) {
	f := ParseFlags(redact.Argv([]string{"x", "--token=abc", "--etcd-servers=https://u:p@h", "--v=2"})[1:])
	got := map[string]bool{}
	for _, fl := range f.Proto() {
		got[fl.Name] = fl.Redacted
	}
	want := map[string]bool{"token": true, "etcd-servers": true, "v": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("redacted = %v, want %v", got, want)
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add("--a=b --c d -e")
	f.Add("-- --x")
	f.Add("--=x - -- \xff")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		fl := ParseFlags(args)
		n := len(fl.Positional)
		for _, v := range fl.Values {
			n += len(v)
		}
		if n > len(args) {
			t.Fatalf("more values (%d) than words (%d)", n, len(args))
		}
		_ = Recognize(append([]string{"kubelet"}, args...))
	})
}

// Wrappers are what they run, once; lookalikes are not what they look like.
func TestWrappersAndLookalikes(t *testing.T) {
	tests := []struct {
		name  string
		argv  []string
		want  []string
		infra bool
	}{
		// The kernel starts a script named like a binary as
		// "<interpreter> <script path> <args>".
		{"script named like a binary", []string{"/bin/bash", "/usr/local/bin/etcd", "--name=m1", "--data-dir=/var/lib/etcd"}, []string{"etcd/etcd"}, false},
		{"script with shell options", []string{"/bin/sh", "-e", "/usr/local/bin/kube-apiserver", "--secure-port=6443"}, []string{"kube-apiserver/kube-apiserver"}, false},
		{"busybox sh script", []string{"busybox", "sh", "/opt/bin/kube-proxy", "--config=/x"}, []string{"kube-proxy/kube-proxy"}, false},
		// Pod specs and wrappers that hand a one-line script to sh -c.
		{"sh -c exec", []string{"/bin/sh", "-c", "set -e; mkdir -p /var/run/x && exec /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=$(NODE_NAME)"},
			[]string{"kube-proxy/kube-proxy"}, false},
		{"sh -ec single command", []string{"/bin/bash", "-ec", "kube-apiserver --secure-port=6443 --etcd-servers='https://127.0.0.1:2379'"}, []string{"kube-apiserver/kube-apiserver"}, false},
		{"sh -c loop is no command", []string{"/bin/sh", "-c", "while true; do sleep 1; done"}, nil, false},
		{"sh -c with an expansion for a program", []string{"sh", "-c", "$BIN --x"}, nil, false},
		{"plain shell", []string{"-bash"}, nil, false},
		// OpenShift's kube-apiserver container: watch-termination runs
		// the apiserver after "--" and watches it; it is not a second one.
		{"watch-termination", []string{"watch-termination", "--termination-touch-file=/var/log/kube-apiserver/.terminating", "--", "hyperkube", "kube-apiserver", "--openshift-config=/x"}, nil, true},
		{"tini", []string{"/tini", "--", "/usr/local/bin/etcd"}, nil, true},
		// etcd's proxies forward to etcd servers; they serve no data.
		{"etcd grpc-proxy", []string{"etcd", "grpc-proxy", "start", "--endpoints=https://10.0.0.1:2379"}, nil, false},
		{"etcd gateway", []string{"/usr/local/bin/etcd", "gateway", "start", "--endpoints=10.0.0.1:2379"}, nil, false},
		{"etcd server", []string{"/usr/local/bin/etcd", "--name=m1"}, []string{"etcd/etcd"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Recognize(tt.argv)
			if got := names(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("components = %v, want %v", got, tt.want)
			}
			if r.Infrastructure != tt.infra {
				t.Errorf("infrastructure = %v, want %v", r.Infrastructure, tt.infra)
			}
		})
	}
}

func FuzzScriptCommand(f *testing.F) {
	f.Add("exec kube-proxy --config=/x")
	f.Add("a && b || c; exec $X 'y' \"z\"")
	f.Add("$(\x00")
	f.Fuzz(func(t *testing.T, s string) {
		_ = Recognize([]string{"sh", "-c", s})
	})
}
