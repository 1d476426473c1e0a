package state

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Rows are never changed once inserted: copy, change the copy, insert it.

// Cluster is one cluster's row.
type Cluster struct {
	Name string
	// UID is the kube-system namespace's UID, when the API is connected.
	UID string
	// APIConnected is true once all of the cluster's API objects are loaded:
	// its informers have synced, or its bundle was read. It stays true when
	// the API server goes away, as the objects are kept; absence findings
	// wait for it.
	APIConnected bool
	// APIVersion is the API server's /version gitVersion, when known.
	APIVersion string
	// Offline is true for a cluster loaded from a bundle.
	Offline bool
	// HasAgents is true once any node agent reported for the cluster.
	HasAgents bool
	// APIHost is the host of the API server address the aggregator uses.
	APIHost string
	// NodeLabelProvider is the managed provider the first node with such
	// labels names, and NodeLabel the label.
	NodeLabelProvider, NodeLabel string
	// APIEndpoints are the addresses behind the "kubernetes" Service of
	// the default namespace: where the API servers are, as the cluster
	// itself sees them.
	APIEndpoints []string

	// Computed by the join.
	Mode              v1.ClusterMode
	ModeEvidence      []*v1.Evidence
	ControlPlaneNodes []string
	// APIServerVersion is the kube-apiserver version seen in its image or the API.
	APIServerVersion string
	// APIServerOldest is the oldest kube-apiserver version of the cluster:
	// what the version skew policy measures the other components against.
	APIServerOldest string
	// Provider names a managed control plane's provider, when evidence does.
	Provider string
	// Datastore is what serves the API storage, when something tells.
	Datastore *v1.Datastore

	// Set in a fleet view only. Published is the cluster as its
	// aggregator answers it; UpdatedAt is when that aggregator last
	// published it, and Freshness what that age means.
	Published *v1.Cluster
	Publisher string
	UpdatedAt time.Time
	Freshness v1.Freshness
}

// Copy returns a shallow copy safe to change and re-insert.
func (c *Cluster) Copy() *Cluster { n := *c; return &n }

// NodeAPI is what the API server says of a node.
type NodeAPI struct {
	UID            string
	Labels         map[string]string
	KubeletVersion string
	// RuntimeVersion is the Node status's containerRuntimeVersion
	// ("containerd://1.7.22"), KubeProxyVersion its kubeProxyVersion where
	// still set.
	RuntimeVersion, KubeProxyVersion string
	InternalIPs                      []string
	Created                          time.Time
}

// NodeAgent is what a node's agent said of it.
type NodeAgent struct {
	Identity *v1.NodeIdentity
	Kubelet  *v1.KubeletInfo
	Stats    *v1.ScanStats
	State    v1.AgentState
	LastSeen time.Time
	// ClockSkew is the node's clock minus the reference clock at LastSeen.
	ClockSkew time.Duration
	// Generation is the newest generation applied on the current stream.
	Generation uint64
	// Certificates are the certificates the node's components use, sorted
	// by path, field and index.
	Certificates []*v1.Certificate
	// Reference is the clock a bundle's node is judged by (its collection
	// time); zero for a live agent, judged by the aggregator's clock.
	Reference time.Time
}

// Node is one node's row. API or Agent is nil when that source has nothing.
type Node struct {
	ID      string // "<cluster>/<name>"
	Cluster string
	Name    string
	API     *NodeAPI
	Agent   *NodeAgent
	// Roles are computed by the join.
	Roles []string
	// Published is, in a fleet view only, the node as its aggregator
	// answers it.
	Published *v1.Node
}

// Copy returns a shallow copy safe to change and re-insert.
func (n *Node) Copy() *Node { c := *n; return &c }

// ValidName reports whether s may name a cluster or a node: a DNS subdomain
// as Kubernetes names Nodes (RFC 1123, at most 253 characters). Every way in
// (agents, bundles, --kube, certificates) checks it. Neither name may hold a
// '/', so a (cluster, node) pair has one spelling as a key: cluster "x" with
// node "a/b" and cluster "x/a" with node "b" cannot both exist.
func ValidName(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// NodeID is a node row's ID.
func NodeID(cluster, node string) string { return cluster + "/" + node }

// Processes is one node's process set, sorted by pid.
type Processes struct {
	ID      string // NodeID
	Cluster string
	Node    string
	Procs   []*v1.Process
	// Bytes is the wire size of Procs, what the node's byte budget counts.
	Bytes int64
}

// Manifests is one node's static pod manifests, sorted by path.
type Manifests struct {
	ID        string // NodeID
	Cluster   string
	Node      string
	Manifests []*v1.StaticPodManifest
	// Bytes is the wire size of Manifests, what the node's byte budget counts.
	Bytes int64
}

// PodContainer is one container of a pod, spec and status joined by name.
type PodContainer struct {
	Name         string
	Image        string
	Command      []string
	Args         []string
	ContainerID  string // without the "<runtime>://" prefix
	Runtime      string // the prefix: containerd, cri-o, docker
	RestartCount int32
	Running      bool
	StartedAt    time.Time
	// LastFinishedAt is when the previous instance of the container ended.
	LastFinishedAt time.Time
}

// Pod is what the join needs of a pod.
type Pod struct {
	ID        string // "<cluster>/<namespace>/<name>"
	Cluster   string
	Namespace string
	Name      string
	UID       string
	NodeName  string
	// Owner is the controller owner reference, if any.
	Owner    *v1.ObjectRef
	OwnerUID string
	// MirrorHash is the kubernetes.io/config.mirror annotation of a mirror pod.
	MirrorHash   string
	ConfigSource string
	Phase        string
	Labels       map[string]string
	Containers   []PodContainer
	Created      time.Time
}

// PodID is a pod row's ID.
func PodID(cluster, namespace, name string) string { return cluster + "/" + namespace + "/" + name }

// Workload is a controller object: DaemonSet, ReplicaSet, Deployment, StatefulSet, Job.
type Workload struct {
	ID        string // "<cluster>/<kind>/<namespace>/<name>"
	Cluster   string
	Kind      string
	Namespace string
	Name      string
	UID       string
	Owner     *v1.ObjectRef
	OwnerUID  string
	Images    []string
}

// WorkloadID is a workload row's ID.
func WorkloadID(cluster, kind, namespace, name string) string {
	return cluster + "/" + kind + "/" + namespace + "/" + name
}

// Ref returns a reference to the workload.
func (w *Workload) Ref() *v1.ObjectRef {
	return &v1.ObjectRef{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name, Uid: w.UID}
}

// Finding is one finding's row.
type Finding struct {
	ID      string // "<cluster>/<finding id>"
	Cluster string
	Node    string
	Finding *v1.Finding
}

// NewFinding wraps a finding with its keys.
func NewFinding(f *v1.Finding) *Finding {
	return &Finding{ID: f.Cluster + "/" + f.Id, Cluster: f.Cluster, Node: f.Node, Finding: f}
}
