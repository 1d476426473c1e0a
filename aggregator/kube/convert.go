// Package kube feeds Kubernetes API objects into the engine: live through
// client-go shared informers, or offline from `kubectl get -o yaml|json` files.
package kube

import (
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Mirror pod annotations the kubelet sets.
const (
	AnnotationMirror       = "kubernetes.io/config.mirror"
	AnnotationConfigSource = "kubernetes.io/config.source"
	AnnotationConfigHash   = "kubernetes.io/config.hash"
)

// PodRow converts a pod to the row the join reads.
func PodRow(cluster string, p *corev1.Pod) *state.Pod {
	row := &state.Pod{
		ID:           state.PodID(cluster, p.Namespace, p.Name),
		Cluster:      cluster,
		Namespace:    p.Namespace,
		Name:         p.Name,
		UID:          string(p.UID),
		NodeName:     p.Spec.NodeName,
		MirrorHash:   p.Annotations[AnnotationMirror],
		ConfigSource: p.Annotations[AnnotationConfigSource],
		Phase:        string(p.Status.Phase),
		Created:      p.CreationTimestamp.Time,
	}
	if len(p.Labels) > 0 {
		row.Labels = make(map[string]string, len(p.Labels))
		for k, v := range p.Labels {
			row.Labels[k] = v
		}
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		row.Owner = &v1.ObjectRef{Kind: ref.Kind, Namespace: p.Namespace, Name: ref.Name, Uid: string(ref.UID)}
		if ref.Kind == "Node" {
			row.Owner.Namespace = ""
		}
		row.OwnerUID = string(ref.UID)
	} else {
		for _, ref := range p.OwnerReferences {
			if ref.Kind == "Node" {
				row.Owner = &v1.ObjectRef{Kind: "Node", Name: ref.Name, Uid: string(ref.UID)}
			}
		}
	}
	statuses := map[string]corev1.ContainerStatus{}
	for _, s := range p.Status.ContainerStatuses {
		statuses[s.Name] = s
	}
	for _, c := range p.Spec.Containers {
		pc := state.PodContainer{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args}
		if s, ok := statuses[c.Name]; ok {
			pc.Runtime, pc.ContainerID = SplitContainerID(s.ContainerID)
			pc.RestartCount = s.RestartCount
			if r := s.State.Running; r != nil {
				pc.Running = true
				pc.StartedAt = r.StartedAt.Time
			}
			if t := s.LastTerminationState.Terminated; t != nil {
				pc.LastFinishedAt = t.FinishedAt.Time
			}
		}
		row.Containers = append(row.Containers, pc)
	}
	return row
}

// SplitContainerID splits "containerd://<id>" into runtime and ID.
func SplitContainerID(s string) (runtime, id string) {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i], s[i+3:]
	}
	return "", s
}

// NodeAPI converts a Node to what the join reads of it.
func NodeAPI(n *corev1.Node) *state.NodeAPI {
	api := &state.NodeAPI{
		UID:            string(n.UID),
		KubeletVersion: n.Status.NodeInfo.KubeletVersion,
		RuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion,
		//lint:ignore SA1019 still set by older kubelets; the skew policy covers kube-proxy.
		KubeProxyVersion: n.Status.NodeInfo.KubeProxyVersion,
		Created:          n.CreationTimestamp.Time,
	}
	if len(n.Labels) > 0 {
		api.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			api.Labels[k] = v
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			api.InternalIPs = append(api.InternalIPs, a.Address)
		}
	}
	return api
}

func workload(cluster, kind string, meta metav1.ObjectMeta, spec corev1.PodTemplateSpec) *state.Workload {
	w := &state.Workload{
		ID:        state.WorkloadID(cluster, kind, meta.Namespace, meta.Name),
		Cluster:   cluster,
		Kind:      kind,
		Namespace: meta.Namespace,
		Name:      meta.Name,
		UID:       string(meta.UID),
	}
	if ref := metav1.GetControllerOfNoCopy(&meta); ref != nil {
		w.Owner = &v1.ObjectRef{Kind: ref.Kind, Namespace: meta.Namespace, Name: ref.Name, Uid: string(ref.UID)}
		w.OwnerUID = string(ref.UID)
	}
	for _, c := range spec.Spec.Containers {
		w.Images = append(w.Images, c.Image)
	}
	sort.Strings(w.Images)
	return w
}

// WorkloadRow converts a DaemonSet, ReplicaSet, Deployment, StatefulSet or
// Job; it returns nil for any other object.
func WorkloadRow(cluster string, obj any) *state.Workload {
	switch o := obj.(type) {
	case *appsv1.DaemonSet:
		return workload(cluster, "DaemonSet", o.ObjectMeta, o.Spec.Template)
	case *appsv1.ReplicaSet:
		return workload(cluster, "ReplicaSet", o.ObjectMeta, o.Spec.Template)
	case *appsv1.Deployment:
		return workload(cluster, "Deployment", o.ObjectMeta, o.Spec.Template)
	case *appsv1.StatefulSet:
		return workload(cluster, "StatefulSet", o.ObjectMeta, o.Spec.Template)
	case *batchv1.Job:
		return workload(cluster, "Job", o.ObjectMeta, o.Spec.Template)
	}
	return nil
}

// APIEndpointAddresses returns the ready addresses of an EndpointSlice of
// the "kubernetes" Service: where the cluster's API servers are.
func APIEndpointAddresses(s *discoveryv1.EndpointSlice) []string {
	if s.Namespace != metav1.NamespaceDefault || s.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
		return nil
	}
	var out []string
	for _, ep := range s.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		out = append(out, ep.Addresses...)
	}
	return out
}
