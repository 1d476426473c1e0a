package harness

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeatlas/kubeatlas/aggregator/kube"
)

// APIState maps what was created to the UIDs the API server gave it.
type APIState struct {
	// PodUIDs is "<namespace>/<name>" -> UID.
	PodUIDs map[string]string
	// SeedPodUIDs is the bundle's pod UID -> "<namespace>/<name>".
	SeedPodUIDs map[string]string
	// MirrorHashes is a static pod's config hash -> "<namespace>/<name>".
	MirrorHashes map[string]string
}

func fresh(m *metav1.ObjectMeta) {
	m.UID, m.ResourceVersion, m.CreationTimestamp, m.ManagedFields, m.Generation = "", "", metav1.Time{}, nil, 0
}

// LoadAPI plays the part of the controllers and kubelets towards the API
// server: it creates the bundle's namespaces, nodes, workloads and pods (mirror
// pods included) with owner references pointing at the new UIDs, then writes
// node and pod status as the kubelet would.
func LoadAPI(ctx context.Context, cs kubernetes.Interface, dir string) (*APIState, error) {
	objs, err := kube.ReadObjects(dir)
	if err != nil {
		return nil, err
	}
	st := &APIState{PodUIDs: map[string]string{}, SeedPodUIDs: map[string]string{}, MirrorHashes: map[string]string{}}
	for _, ns := range objs.Namespaces {
		fresh(&ns.ObjectMeta)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
	}
	uids := map[string]types.UID{} // "<Kind>/<namespace>/<name>" -> UID
	for _, n := range objs.Nodes {
		status := n.Status
		fresh(&n.ObjectMeta)
		created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		created.Status = status
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("node %s status: %w", n.Name, err)
		}
		uids["Node//"+n.Name] = created.UID
	}
	repoint := func(m *metav1.ObjectMeta) {
		for i, ref := range m.OwnerReferences {
			ns := m.Namespace
			if ref.Kind == "Node" {
				ns = ""
			}
			m.OwnerReferences[i].UID = uids[ref.Kind+"/"+ns+"/"+ref.Name]
		}
	}
	// Owners before what they own.
	for _, kind := range []string{"DaemonSet", "Deployment", "ReplicaSet"} {
		for _, w := range objs.Workloads {
			var err error
			var meta metav1.ObjectMeta
			switch o := w.(type) {
			case *appsv1.DaemonSet:
				if kind != "DaemonSet" {
					continue
				}
				fresh(&o.ObjectMeta)
				var c *appsv1.DaemonSet
				c, err = cs.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				if c != nil {
					meta = c.ObjectMeta
				}
			case *appsv1.Deployment:
				if kind != "Deployment" {
					continue
				}
				fresh(&o.ObjectMeta)
				var c *appsv1.Deployment
				c, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				if c != nil {
					meta = c.ObjectMeta
				}
			case *appsv1.ReplicaSet:
				if kind != "ReplicaSet" {
					continue
				}
				fresh(&o.ObjectMeta)
				repoint(&o.ObjectMeta)
				var c *appsv1.ReplicaSet
				c, err = cs.AppsV1().ReplicaSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				if c != nil {
					meta = c.ObjectMeta
				}
			default:
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kind, err)
			}
			uids[kind+"/"+meta.Namespace+"/"+meta.Name] = meta.UID
		}
	}
	for _, p := range objs.Pods {
		key := p.Namespace + "/" + p.Name
		st.SeedPodUIDs[string(p.UID)] = key
		if h := p.Annotations[kube.AnnotationMirror]; h != "" {
			st.MirrorHashes[h] = key
		}
		status := p.Status
		fresh(&p.ObjectMeta)
		repoint(&p.ObjectMeta)
		created, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", key, err)
		}
		status.QOSClass = created.Status.QOSClass // computed by the API server, immutable
		created.Status = status
		if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("pod %s status: %w", key, err)
		}
		st.PodUIDs[key] = string(created.UID)
	}
	return st, nil
}

// RegisterNode creates a Node as a kubelet registering itself would, with
// its kubelet version in the status.
func RegisterNode(ctx context.Context, cs kubernetes.Interface, name, kubeletVersion string) error {
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	n.Status.NodeInfo.KubeletVersion = kubeletVersion
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s status: %w", name, err)
	}
	return nil
}
