package redact

import "testing"

// The command lines of a typical node: what the agent redacts once per new
// process and the aggregator once more per record it takes in.
var benchArgvs = [][]string{
	{"kube-apiserver", "--advertise-address=192.168.19.134", "--allow-privileged=true", "--authorization-mode=Node,RBAC",
		"--client-ca-file=/etc/kubernetes/pki/ca.crt", "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
		"--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt", "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
		"--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key", "--etcd-servers=https://127.0.0.1:2379",
		"--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt", "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
		"--secure-port=6443", "--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--service-account-signing-key-file=/etc/kubernetes/pki/sa.key", "--service-cluster-ip-range=10.96.0.0/12",
		"--tls-cert-file=/etc/kubernetes/pki/apiserver.crt", "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key"},
	{"/usr/bin/kubelet", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml", "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.9"},
	{"/usr/local/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "dbf2431c433ac84f770c8fd8b7a63a4b1824f9b972d320179fb1df2ae6d5aec4", "-address", "/run/containerd/containerd.sock"},
	{"/pause"},
	{"/bin/sh", "-c", "exec /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=$(NODE_NAME)"},
	{"sshd: root@pts/0"},
	{"/usr/lib/systemd/systemd-journald"},
}

func BenchmarkArgv(b *testing.B) {
	words := 0
	for _, a := range benchArgvs {
		words += len(a)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range benchArgvs {
			_ = Argv(a)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(benchArgvs)), "ns/argv")
}
