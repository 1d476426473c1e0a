package main

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// apiWriter collects the cluster's API objects as `kubectl get -o yaml` prints them.
type apiWriter struct {
	nodeItems, podItems, workloadItems, namespaceItems []runtime.RawExtension
}

func ptr[T any](v T) *T { return &v }

func (a *apiWriter) add(list *[]runtime.RawExtension, obj runtime.Object) {
	*list = append(*list, runtime.RawExtension{Object: obj})
}

func (a *apiWriter) files() map[string]string {
	out := map[string]string{}
	for name, items := range map[string][]runtime.RawExtension{
		"namespaces.yaml": a.namespaceItems, "nodes.yaml": a.nodeItems, "pods.yaml": a.podItems, "workloads.yaml": a.workloadItems,
	} {
		list := &metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: items}
		data, err := yaml.Marshal(list)
		if err != nil {
			panic(err)
		}
		out[name] = string(data)
	}
	return out
}

func meta(name, namespace string, created time.Time) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(uid(namespace + "/" + name)),
		CreationTimestamp: metav1.NewTime(created), ResourceVersion: "1"}
}

func (a *apiWriter) namespaces() {
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease", "kube-flannel"} {
		a.add(&a.namespaceItems, &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: meta(ns, "", collectedAt.Add(-41*time.Hour-10*time.Minute)), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}})
	}
}

var (
	proxyDS   = meta("kube-proxy", "kube-system", collectedAt.Add(-41*time.Hour))
	flannelDS = meta("kube-flannel-ds", "kube-flannel", collectedAt.Add(-40*time.Hour))
	corednsD  = meta("coredns", "kube-system", collectedAt.Add(-41*time.Hour))
	corednsRS = meta("coredns-7bdc4cb885", "kube-system", collectedAt.Add(-41*time.Hour))
)

func ownerRef(kind string, m metav1.ObjectMeta) metav1.OwnerReference {
	api := "apps/v1"
	if kind == "Node" {
		api = "v1"
	}
	return metav1.OwnerReference{APIVersion: api, Kind: kind, Name: m.Name, UID: m.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
}

func proxyContainer() corev1.Container {
	return corev1.Container{Name: "kube-proxy", Image: registry + "kube-proxy:v1.27.0", ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"},
		Env:             []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}}},
		SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}
}

func flannelContainer() corev1.Container {
	return corev1.Container{Name: "kube-flannel", Image: flannelImage, Command: []string{"/opt/bin/flanneld"}, Args: []string{"--ip-masq", "--kube-subnet-mgr"},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("50Mi")}}}
}

func corednsContainer() corev1.Container {
	return corev1.Container{Name: "coredns", Image: registry + "coredns:v1.10.1", Args: []string{"-conf", "/etc/coredns/Corefile"},
		Resources: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("70Mi")}}}
}

func (a *apiWriter) workloads() {
	a.add(&a.workloadItems, &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: withLabels(proxyDS, "k8s-app", "kube-proxy"),
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-proxy"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": "kube-proxy"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{proxyContainer()}, HostNetwork: true, NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
					PriorityClassName: "system-node-critical", ServiceAccountName: "kube-proxy"}}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 6, CurrentNumberScheduled: 6, NumberReady: 6, NumberAvailable: 6, UpdatedNumberScheduled: 6}})
	a.add(&a.workloadItems, &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: withLabels(flannelDS, "app", "flannel"),
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "flannel", "k8s-app": "flannel"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "flannel", "k8s-app": "flannel", "tier": "node"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{flannelContainer()}, HostNetwork: true, PriorityClassName: "system-node-critical", ServiceAccountName: "flannel"}}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 6, CurrentNumberScheduled: 6, NumberReady: 6, NumberAvailable: 6, UpdatedNumberScheduled: 6}})
	a.add(&a.workloadItems, &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: withLabels(corednsD, "k8s-app", "kube-dns"),
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": "kube-dns"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{corednsContainer()}, PriorityClassName: "system-cluster-critical", ServiceAccountName: "coredns"}}},
		Status: appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}})
	rs := withLabels(corednsRS, "k8s-app", "kube-dns")
	rs.Labels["pod-template-hash"] = "7bdc4cb885"
	rs.OwnerReferences = []metav1.OwnerReference{ownerRef("Deployment", corednsD)}
	a.add(&a.workloadItems, &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}, ObjectMeta: rs,
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "7bdc4cb885"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "7bdc4cb885"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{corednsContainer()}}}},
		Status: appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}})
}

func withLabels(m metav1.ObjectMeta, kv ...string) metav1.ObjectMeta {
	m.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Labels[kv[i]] = kv[i+1]
	}
	return m
}

func (a *apiWriter) node(n nodeSpec) {
	created := collectedAt.Add(-28*time.Hour - 10*time.Minute)
	if n.control {
		created = collectedAt.Add(-41*time.Hour - 10*time.Minute)
	}
	m := meta(n.name, "", created)
	m.Labels = map[string]string{"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"}
	m.Annotations = map[string]string{"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
		"flannel.alpha.coreos.com/public-ip": n.ip, "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
	var taints []corev1.Taint
	if n.control {
		m.Labels["node-role.kubernetes.io/control-plane"] = ""
		m.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
		taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
	}
	a.add(&a.nodeItems, &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: m,
		Spec: corev1.NodeSpec{PodCIDR: podCIDR(n.name), PodCIDRs: []string{podCIDR(n.name)}, Taints: taints},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.27.0", ContainerRuntimeVersion: "containerd://1.6.21",
				KernelVersion: "5.15.0-71-generic", OSImage: "Ubuntu 22.04.2 LTS", OperatingSystem: "linux", Architecture: "amd64",
				MachineID: fmt.Sprintf("%x", []byte(fmt.Sprintf("%-16s", n.name))), BootID: uid("boot/" + n.name)},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status. AppArmor enabled",
				LastHeartbeatTime: metav1.NewTime(collectedAt.Add(n.skew - 20*time.Second)), LastTransitionTime: metav1.NewTime(collectedAt.Add(n.skew - n.bootAgo + time.Minute))}},
		}})
}

func podCIDR(node string) string {
	i := map[string]int{"test": 0, "zzk-1": 1, "zzk-2": 2, "zzk-3": 3, "zzk-4": 4, "zzk-5": 5}[node]
	return fmt.Sprintf("10.244.%d.0/24", i)
}

func runningStatus(name, image, cid string, restarts int32, started, lastFinished time.Time) corev1.ContainerStatus {
	s := corev1.ContainerStatus{Name: name, Image: image, ImageID: image, ContainerID: "containerd://" + cid, Ready: true, Started: ptr(true),
		RestartCount: restarts, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}
	if restarts > 0 {
		s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 255, Reason: "Unknown",
			StartedAt: metav1.NewTime(lastFinished.Add(-10 * time.Hour)), FinishedAt: metav1.NewTime(lastFinished), ContainerID: "containerd://" + containerID(cid+"/previous")}}
	}
	return s
}

func podStatus(hostIP, podIP string, started time.Time, cs ...corev1.ContainerStatus) corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodRunning, HostIP: hostIP, PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		StartTime: ptr(metav1.NewTime(started)), QOSClass: corev1.PodQOSBurstable, ContainerStatuses: cs,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
}

func (a *apiWriter) staticPod(n nodeSpec, sp staticPod, hash, cid string, lastStart, lastFinished time.Time) {
	name := sp.name + "-" + n.name
	m := meta(name, "kube-system", collectedAt.Add(-41*time.Hour))
	m.Labels = map[string]string{"component": sp.name, "tier": "control-plane"}
	m.Annotations = map[string]string{"kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash,
		"kubernetes.io/config.seen": collectedAt.Add(-n.bootAgo).Format(time.RFC3339Nano), "kubernetes.io/config.source": "file"}
	m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: types.UID(uid("/" + n.name)), Controller: ptr(true)}}
	c := corev1.Container{Name: sp.name, Image: sp.image, Command: sp.command, ImagePullPolicy: corev1.PullIfNotPresent}
	a.add(&a.podItems, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: m,
		Spec:   corev1.PodSpec{NodeName: n.name, HostNetwork: true, Containers: []corev1.Container{c}, PriorityClassName: "system-node-critical"},
		Status: podStatus(n.ip, n.ip, collectedAt.Add(-n.bootAgo), runningStatus(sp.name, sp.image, cid, sp.restarts, lastStart, lastFinished))})
}

func (a *apiWriter) dsPod(n nodeSpec, pod, app, podUID, cid string, restarts int32, lastFinished time.Time) {
	m := metav1.ObjectMeta{Name: pod, UID: types.UID(podUID), CreationTimestamp: metav1.NewTime(collectedAt.Add(-28 * time.Hour)), ResourceVersion: "1"}
	var c corev1.Container
	var owner metav1.ObjectMeta
	if app == "kube-proxy" {
		m.Namespace = "kube-system"
		m.Labels = map[string]string{"k8s-app": "kube-proxy", "controller-revision-hash": "7f6b4c9d5", "pod-template-generation": "1"}
		c, owner = proxyContainer(), proxyDS
	} else {
		m.Namespace = "kube-flannel"
		m.Labels = map[string]string{"app": "flannel", "k8s-app": "flannel", "tier": "node", "controller-revision-hash": "6c6b8dd8f4", "pod-template-generation": "1"}
		c, owner = flannelContainer(), flannelDS
	}
	if n.control {
		m.CreationTimestamp = metav1.NewTime(collectedAt.Add(-41 * time.Hour))
	}
	m.OwnerReferences = []metav1.OwnerReference{ownerRef("DaemonSet", owner)}
	started := lastFinished.Add(40 * time.Second)
	a.add(&a.podItems, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: m,
		Spec:   corev1.PodSpec{NodeName: n.name, HostNetwork: true, Containers: []corev1.Container{c}},
		Status: podStatus(n.ip, n.ip, collectedAt.Add(-28*time.Hour), runningStatus(c.Name, c.Image, cid, restarts, started, lastFinished))})
}

func (a *apiWriter) corednsPod(n nodeSpec, pod, podUID, cid, ip string, lastFinished time.Time) {
	m := metav1.ObjectMeta{Name: pod, Namespace: "kube-system", UID: types.UID(podUID), CreationTimestamp: metav1.NewTime(collectedAt.Add(-41 * time.Hour)), ResourceVersion: "1",
		Labels:          map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "7bdc4cb885"},
		OwnerReferences: []metav1.OwnerReference{ownerRef("ReplicaSet", corednsRS)}}
	c := corednsContainer()
	a.add(&a.podItems, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: m,
		Spec:   corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{c}},
		Status: podStatus(n.ip, ip, collectedAt.Add(-41*time.Hour), runningStatus(c.Name, c.Image, cid, 1, lastFinished.Add(5*time.Second), lastFinished.Add(-time.Minute)))})
}
