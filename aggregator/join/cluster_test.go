package join

import (
	"strings"
	"testing"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
)

// hostInstance is what the join makes of a host process's command line.
func hostInstances(node string, argv ...string) []*v1.ComponentInstance {
	var out []*v1.ComponentInstance
	for _, c := range recognize.Recognize(argv).Components {
		out = append(out, &v1.ComponentInstance{Cluster: "c", Node: node, Component: c.Name, Implementation: c.Implementation,
			How: v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS, Flags: c.Flags.Proto(), Id: node + "/host/" + c.Name + "/" + c.Implementation})
	}
	return out
}

// Managed control planes: no reporting node runs the control plane, and the
// provider is named by the strongest sign there is.
func TestManagedControlPlanes(t *testing.T) {
	kubelet := hostInstances("n1", "/usr/bin/kubelet", "--config=/etc/kubernetes/kubelet/config.json")
	for _, tt := range []struct {
		name     string
		in       ClusterInput
		mode     v1.ClusterMode
		provider string
		evidence string
	}{
		{"EKS by version", ClusterInput{AnyAgent: true, APIVersion: "v1.29.3-eks-adc7111"}, v1.ClusterMode_CLUSTER_MODE_MANAGED, "EKS", "EKS build"},
		{"GKE by version", ClusterInput{AnyAgent: true, APIConnected: true, APIVersion: "v1.30.2-gke.1587003"}, v1.ClusterMode_CLUSTER_MODE_MANAGED, "GKE", "GKE build"},
		{"AKS by host", ClusterInput{AnyAgent: true, APIConnected: true, APIVersion: "v1.29.4", APIHost: "prod-dns-1a2b3c4d.hcp.westeurope.azmk8s.io"},
			v1.ClusterMode_CLUSTER_MODE_MANAGED, "AKS", "address prod-dns-1a2b3c4d.hcp.westeurope.azmk8s.io is AKS's"},
		{"EKS by host", ClusterInput{AnyAgent: true, APIHost: "ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com"}, v1.ClusterMode_CLUSTER_MODE_MANAGED, "EKS", "EKS's"},
		{"GKE by node labels", ClusterInput{AnyAgent: true, APIConnected: true, NodeLabelProvider: "GKE", NodeLabel: "cloud.google.com/gke-nodepool"},
			v1.ClusterMode_CLUSTER_MODE_MANAGED, "GKE", "cloud.google.com/gke-nodepool"},
		{"HyperShift by node labels", ClusterInput{AnyAgent: true, APIConnected: true, NodeLabelProvider: "HyperShift", NodeLabel: "hypershift.openshift.io/nodePool"},
			v1.ClusterMode_CLUSTER_MODE_MANAGED, "HyperShift", "hypershift.openshift.io/nodePool"},
		// The API answers (discovery), even before every informer synced.
		{"unnamed, API answers", ClusterInput{ControlPlane: nil, AnyAgent: true, APIVersion: "v1.29.0"}, v1.ClusterMode_CLUSTER_MODE_MANAGED, "", "no node that reports runs kube-apiserver"},
		{"an IP address names nobody", ClusterInput{AnyAgent: true, APIConnected: true, APIHost: "34.118.1.2"}, v1.ClusterMode_CLUSTER_MODE_MANAGED, "", ""},
		// A provider's build with the apiserver on a reporting node is
		// not managed: what runs decides.
		{"self-managed despite a label", ClusterInput{ControlPlane: hostInstances("cp1", "kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"),
			AnyAgent: true, APIConnected: true, NodeLabelProvider: "EKS", NodeLabel: "eks.amazonaws.com/nodegroup"}, v1.ClusterMode_CLUSTER_MODE_STANDALONE, "", ""},
		{"nothing known", ClusterInput{}, v1.ClusterMode_CLUSTER_MODE_UNKNOWN, "", ""},
		{"agents but no API", ClusterInput{ControlPlane: kubelet[:0], AnyAgent: true}, v1.ClusterMode_CLUSTER_MODE_UNKNOWN, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := Cluster(tt.in)
			if res.Mode != tt.mode || res.Provider != tt.provider {
				t.Fatalf("mode %v provider %q, want %v %q", res.Mode, res.Provider, tt.mode, tt.provider)
			}
			if !strings.Contains(evidenceText(res.Evidence), tt.evidence) {
				t.Errorf("evidence lacks %q:\n%s", tt.evidence, evidenceText(res.Evidence))
			}
			if tt.mode == v1.ClusterMode_CLUSTER_MODE_MANAGED && res.Datastore.GetImplementation() != "managed" {
				t.Errorf("datastore %v, want managed", res.Datastore)
			}
		})
	}
}

func TestNodeLabelProvider(t *testing.T) {
	for labels, want := range map[string]string{
		"eks.amazonaws.com/nodegroup":      "EKS",
		"cloud.google.com/gke-nodepool":    "GKE",
		"kubernetes.azure.com/cluster":     "AKS",
		"hypershift.openshift.io/nodePool": "HyperShift",
		"topology.kubernetes.io/zone":      "",
		"node.kubernetes.io/instance-type": "",
	} {
		if got, _ := NodeLabelProvider(map[string]string{labels: "x"}); got != want {
			t.Errorf("%s: %q, want %q", labels, got, want)
		}
	}
}

// The datastore, as each distribution sets it up.
func TestDatastores(t *testing.T) {
	apiserver := func(node string, flags ...string) []*v1.ComponentInstance {
		return hostInstances(node, append([]string{"kube-apiserver"}, flags...)...)
	}
	etcd := func(node string) []*v1.ComponentInstance {
		return hostInstances(node, "etcd", "--name="+node, "--listen-client-urls=https://10.0.0.1:2379")
	}
	cat := func(parts ...[]*v1.ComponentInstance) []*v1.ComponentInstance {
		var out []*v1.ComponentInstance
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tt := range []struct {
		name      string
		cp        []*v1.ComponentInstance
		impl      string
		nodes     string
		endpoints string
	}{
		{"kubeadm stacked etcd", cat(apiserver("cp1", "--etcd-servers=https://127.0.0.1:2379"), etcd("cp1")), "etcd", "cp1", "https://127.0.0.1:2379"},
		{"kubeadm external etcd, no agent there", apiserver("cp1", "--etcd-servers=https://10.0.0.5:2379,https://10.0.0.6:2379"),
			"external", "", "https://10.0.0.5:2379,https://10.0.0.6:2379"},
		{"the hard way, etcd nodes with agents", cat(apiserver("cp1", "--etcd-servers=https://10.0.0.5:2379"), etcd("etcd1"), etcd("etcd2")), "etcd", "etcd1,etcd2", "https://10.0.0.5:2379"},
		{"k3s default", hostInstances("s1", "/usr/local/bin/k3s", "server"), "kine-sqlite", "s1", ""},
		{"k3s embedded etcd", hostInstances("s1", "/usr/local/bin/k3s", "server", "--cluster-init"), "etcd", "s1", ""},
		{"k3s over MySQL", hostInstances("s1", "/usr/local/bin/k3s", "server", "--datastore-endpoint=mysql://k3s:***@tcp(db:3306)/k3s"),
			"kine-mysql", "s1", "mysql://k3s:***@tcp(db:3306)/k3s"},
		{"k3s over Postgres", hostInstances("s1", "/usr/local/bin/k3s", "server", "--datastore-endpoint=postgres://db:5432/k3s"), "kine-postgres", "s1", "postgres://db:5432/k3s"},
		{"k3s over external etcd", hostInstances("s1", "/usr/local/bin/k3s", "server", "--datastore-endpoint=https://etcd1:2379,https://etcd2:2379"),
			"external", "", "https://etcd1:2379,https://etcd2:2379"},
		{"MicroK8s", cat(hostInstances("m1", "/snap/microk8s/7964/kubelite", "--apiserver-args-file=/var/snap/microk8s/7964/args/kube-apiserver"),
			hostInstances("m1", "/snap/microk8s/7964/bin/k8s-dqlite", "--storage-dir=/var/snap/microk8s/7964/var/kubernetes/backend/", "--listen=unix:///var/snap/microk8s/7964/var/kubernetes/backend/kine.sock:12379")),
			"k8s-dqlite", "m1", ""},
		{"kine socket, no process seen", apiserver("m1", "--etcd-servers=unix:///var/snap/microk8s/current/var/kubernetes/backend/kine.sock:12379"), "kine", "", "unix:///var/snap/microk8s/current/var/kubernetes/backend/kine.sock:12379"},
		{"kine on its own", cat(apiserver("cp1", "--etcd-servers=http://127.0.0.1:2379"), hostInstances("cp1", "/usr/bin/kine", "--endpoint=postgres://db/kine")), "kine-postgres", "cp1", "http://127.0.0.1:2379"},
		{"local etcd not seen", apiserver("cp1", "--etcd-servers=https://127.0.0.1:2379"), "etcd", "", "https://127.0.0.1:2379"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := Cluster(ClusterInput{ControlPlane: tt.cp, AnyAgent: true, APIConnected: true})
			d := res.Datastore
			if d == nil {
				t.Fatal("no datastore")
			}
			if d.Implementation != tt.impl || strings.Join(d.Nodes, ",") != tt.nodes || strings.Join(d.Endpoints, ",") != tt.endpoints {
				t.Fatalf("datastore %s on %v, endpoints %v; want %s on %s, %s", d.Implementation, d.Nodes, d.Endpoints, tt.impl, tt.nodes, tt.endpoints)
			}
			if len(d.Evidence) == 0 {
				t.Error("no evidence")
			}
			for _, in := range tt.cp {
				if in.Component == v1.ComponentEtcd && strings.HasPrefix(d.Implementation, "kine") {
					t.Errorf("kine is %s, and an etcd instance too", d.Implementation)
				}
			}
		})
	}
}

// Managed clouds' node agents, from their DaemonSets as the providers ship
// them: EKS's aws-node (amazon-vpc-cni-k8s config/master/aws-k8s-cni.yaml),
// a CSI node plugin, and GKE's kube-proxy static pod.
func TestCloudNodeAgents(t *testing.T) {
	const (
		cniCID    = "1111111111111111111111111111111111111111111111111111111111111111"
		policyCID = "2222222222222222222222222222222222222222222222222222222222222222"
		ebsCID    = "3333333333333333333333333333333333333333333333333333333333333333"
		regCID    = "4444444444444444444444444444444444444444444444444444444444444444"
		awsUID    = "0f0e0d0c-0b0a-4909-8807-060504030201"
		ebsUID    = "1f1e1d1c-1b1a-4919-8817-161514131211"
	)
	ds := func(name string) *v1.ObjectRef {
		return &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-system", Name: name}
	}
	workloads := map[string]*state.Workload{
		"aws-node-uid":     {Kind: "DaemonSet", Namespace: "kube-system", Name: "aws-node", UID: "aws-node-uid"},
		"ebs-csi-node-uid": {Kind: "DaemonSet", Namespace: "kube-system", Name: "ebs-csi-node", UID: "ebs-csi-node-uid"},
	}
	awsNode := &state.Pod{ID: "c/kube-system/aws-node-x", Cluster: "c", Namespace: "kube-system", Name: "aws-node-x", UID: awsUID, NodeName: "n1",
		Owner: ds("aws-node"), OwnerUID: "aws-node-uid", Phase: "Running",
		Containers: []state.PodContainer{
			{Name: "aws-node", Image: "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.2", ContainerID: cniCID},
			{Name: "aws-eks-nodeagent", Image: "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon/aws-network-policy-agent:v1.1.2",
				Args: []string{"--enable-ipv6=false", "--enable-network-policy=false"}, ContainerID: policyCID},
		}}
	ebsNode := &state.Pod{ID: "c/kube-system/ebs-csi-node-y", Cluster: "c", Namespace: "kube-system", Name: "ebs-csi-node-y", UID: ebsUID, NodeName: "n1",
		Owner: ds("ebs-csi-node"), OwnerUID: "ebs-csi-node-uid", Phase: "Running",
		Containers: []state.PodContainer{
			{Name: "ebs-plugin", Image: "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.30.0", Args: []string{"node", "--endpoint=$(CSI_ENDPOINT)"}, ContainerID: ebsCID},
			{Name: "node-driver-registrar", Image: "public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.10.1", ContainerID: regCID},
		}}
	vpcCNI := proc(10, "/app/aws-vpc-cni", awsUID, cniCID, "")
	ipamd := proc(11, "/app/aws-k8s-agent", awsUID, cniCID, "")
	ipamd.Ppid = 10
	controller := proc(20, "/controller --enable-ipv6=false --enable-network-policy=false", awsUID, policyCID, "")
	ebs := proc(30, "/bin/aws-ebs-csi-driver node --endpoint=unix:/csi/csi.sock", ebsUID, ebsCID, "")
	reg := proc(31, "/csi-node-driver-registrar --csi-address=/csi/csi.sock", ebsUID, regCID, "")
	reg.Infrastructure = recognize.Recognize(reg.Argv).Infrastructure
	res := Node(NodeInput{Cluster: "c", Node: &state.Node{Name: "n1", API: &state.NodeAPI{}, Agent: reporting()}, APIConnected: true,
		Workload: func(uid string) *state.Workload { return workloads[uid] },
		Procs:    []*v1.Process{vpcCNI, ipamd, controller, ebs, reg}, Pods: []*state.Pod{awsNode, ebsNode}})
	insts, _ := summary(res)
	want := []string{
		"cloud-node-agent/aws-eks-nodeagent DaemonSet pid=20 manifest=",
		"cni/aws-vpc-cni DaemonSet pid=11 manifest=",
		"csi/ebs.csi.aws.com DaemonSet pid=30 manifest=",
	}
	if strings.Join(insts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("instances:\n%s\nwant:\n%s", strings.Join(insts, "\n"), strings.Join(want, "\n"))
	}
}

// GKE's legacy dataplane runs kube-proxy as a static pod from
// /etc/kubernetes/manifests/kube-proxy.manifest; its mirror pod is
// "kube-proxy-<node>", and GKE's node names start with "gke-".
func TestGKEKubeProxyStaticPod(t *testing.T) {
	const node = "gke-prod-default-pool-1a2b3c4d-xyz1"
	const gkeHash = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	man := &v1.StaticPodManifest{Path: "/etc/kubernetes/manifests/kube-proxy.manifest", PodName: "kube-proxy", PodNamespace: "kube-system",
		Containers: []*v1.ManifestContainer{{Name: "kube-proxy", Image: "gke.gcr.io/kube-proxy-amd64:v1.29.4-gke.1043002",
			Command: []string{"/bin/sh", "-c", "exec kube-proxy --master=https://34.1.2.3 --kubeconfig=/var/lib/kube-proxy/kubeconfig --cluster-cidr=10.4.0.0/14 --oom-score-adj=-998 --v=2 1>>/var/log/kube-proxy.log 2>&1"}}}}
	mirror := &state.Pod{ID: "c/kube-system/kube-proxy-" + node, Cluster: "c", Namespace: "kube-system", Name: "kube-proxy-" + node, UID: "mirror-uid",
		NodeName: node, MirrorHash: gkeHash, ConfigSource: "file", Owner: &v1.ObjectRef{Kind: "Node", Name: node}, Phase: "Running",
		Containers: []state.PodContainer{{Name: "kube-proxy", Image: man.Containers[0].Image, Command: man.Containers[0].Command, ContainerID: cid}}}
	kp := proc(40, "kube-proxy --master=https://34.1.2.3 --kubeconfig=/var/lib/kube-proxy/kubeconfig", gkeHash, cid, "")
	res := Node(NodeInput{Cluster: "c", Node: &state.Node{Name: node, API: &state.NodeAPI{}, Agent: reporting()}, APIConnected: true,
		Procs: []*v1.Process{kp}, Manifests: []*v1.StaticPodManifest{man}, Pods: []*state.Pod{mirror}})
	insts, _ := summary(res)
	if strings.Join(insts, "\n") != "kube-proxy/kube-proxy static pod pid=40 manifest=/etc/kubernetes/manifests/kube-proxy.manifest" {
		t.Fatalf("instances: %v", insts)
	}
}

// The "kubernetes" Service's endpoints only corroborate: never enough alone,
// and absent when an endpoint is a node's address.
func TestAPIEndpointsCorroborate(t *testing.T) {
	nodes := map[string]bool{"10.0.0.11": true}
	isNode := func(a string) bool { return nodes[a] }
	res := Cluster(ClusterInput{AnyAgent: true, APIConnected: true, APIEndpoints: []string{"172.16.0.2"}, IsNodeAddress: isNode})
	if res.Mode != v1.ClusterMode_CLUSTER_MODE_MANAGED || !strings.Contains(evidenceText(res.Evidence), "(172.16.0.2) are no node's address") {
		t.Fatalf("mode %v, evidence:\n%s", res.Mode, evidenceText(res.Evidence))
	}
	res = Cluster(ClusterInput{AnyAgent: true, APIConnected: true, APIEndpoints: []string{"10.0.0.11"}, IsNodeAddress: isNode})
	if strings.Contains(evidenceText(res.Evidence), "no node's address") {
		t.Fatal("an endpoint that is a node's address corroborated")
	}
	// Alone, with the API silent, it decides nothing.
	res = Cluster(ClusterInput{APIEndpoints: []string{"172.16.0.2"}, IsNodeAddress: isNode})
	if res.Mode != v1.ClusterMode_CLUSTER_MODE_UNKNOWN {
		t.Fatalf("mode %v from endpoints alone", res.Mode)
	}
}
