package join

import (
	"fmt"
	"sort"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// ClusterInput is what a cluster's mode, provider and datastore are decided
// from.
type ClusterInput struct {
	// ControlPlane holds every instance of a control-plane component in the
	// cluster (kube-apiserver, etcd, datastore, controller-manager,
	// scheduler, cloud-controller-manager).
	ControlPlane []*v1.ComponentInstance
	// APIConnected is true once the API objects are loaded.
	APIConnected bool
	// AnyAgent is true once a node agent reported for the cluster.
	AnyAgent bool
	// APIVersion is the API server's gitVersion from /version, when it
	// answered.
	APIVersion string
	// APIHost is the host of the API server address the aggregator uses
	// (its kubeconfig's server), when known.
	APIHost string
	// NodeLabelProvider is the provider the first node with a managed
	// cloud's labels names, and NodeLabel that label.
	NodeLabelProvider, NodeLabel string
	// APIEndpoints are the addresses of the "kubernetes" Service, and
	// IsNodeAddress tells whether an address is one of the cluster's nodes.
	APIEndpoints  []string
	IsNodeAddress func(string) bool
}

// ClusterResult is what a cluster's control plane looks like.
type ClusterResult struct {
	Mode              v1.ClusterMode
	Provider          string
	Evidence          []*v1.Evidence
	ControlPlaneNodes []string
	APIServerVersion  string
	// APIServerOldest is the oldest kube-apiserver version seen.
	APIServerOldest string
	Datastore       *v1.Datastore
}

// Cluster decides a cluster's mode from how its kube-apiserver instances run:
// a host process means STANDALONE, a static pod STATIC_POD, a DaemonSet or
// Deployment pod SELF_HOSTED. With none on any reporting node, the control
// plane is MANAGED when the API answers while agents report, or when a
// managed provider is named by the API server's version, its address or the
// nodes' labels; no evidence means UNKNOWN.
func Cluster(in ClusterInput) ClusterResult {
	var res ClusterResult
	nodes := map[string]bool{}
	counts := map[v1.ClusterMode]int{}
	controlPlaneSeen := false
	for _, inst := range in.ControlPlane {
		nodes[inst.Node] = true
		switch inst.Component {
		case v1.ComponentControllerManager, v1.ComponentScheduler:
			controlPlaneSeen = true
		}
		if inst.Component != v1.ComponentAPIServer {
			continue
		}
		controlPlaneSeen = true
		mode := modeOf(inst.How)
		if mode == v1.ClusterMode_CLUSTER_MODE_UNKNOWN {
			continue
		}
		counts[mode]++
		if res.APIServerVersion == "" && inst.Version != "" {
			res.APIServerVersion = inst.Version
		}
		if older(inst.Version, res.APIServerOldest) {
			res.APIServerOldest = inst.Version
		}
		res.Evidence = append(res.Evidence, &v1.Evidence{
			Kind:       evidenceKindOf(inst),
			Summary:    fmt.Sprintf("kube-apiserver on %s runs as %s%s", inst.Node, inst.How.Words(), where(inst)),
			Attributes: map[string]string{"node": inst.Node, "how": inst.How.String(), "instance": inst.Id},
		})
		res.Evidence = append(res.Evidence, inst.Evidence...)
	}
	for n := range nodes {
		res.ControlPlaneNodes = append(res.ControlPlaneNodes, n)
	}
	sort.Strings(res.ControlPlaneNodes)
	if res.APIServerVersion == "" {
		res.APIServerVersion = in.APIVersion
	}
	if res.APIServerOldest == "" {
		res.APIServerOldest = res.APIServerVersion
	}
	best, bestN := v1.ClusterMode_CLUSTER_MODE_UNKNOWN, 0
	for _, m := range []v1.ClusterMode{v1.ClusterMode_CLUSTER_MODE_STATIC_POD, v1.ClusterMode_CLUSTER_MODE_STANDALONE, v1.ClusterMode_CLUSTER_MODE_SELF_HOSTED} {
		if counts[m] > bestN {
			best, bestN = m, counts[m]
		}
	}
	apiAnswers := in.APIConnected || in.APIVersion != ""
	provider, providerEv := managedProvider(in)
	switch {
	case bestN > 0:
		res.Mode = best
	case !controlPlaneSeen && (provider != "" || (apiAnswers && in.AnyAgent)):
		res.Mode, res.Provider = v1.ClusterMode_CLUSTER_MODE_MANAGED, provider
		if in.AnyAgent {
			res.Evidence = append(res.Evidence, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
				Summary: "the API server answers, but no node that reports runs kube-apiserver, kube-controller-manager or kube-scheduler"})
		}
		res.Evidence = append(res.Evidence, providerEv...)
		res.Evidence = append(res.Evidence, endpointsEv(in)...)
	default:
		res.Mode = v1.ClusterMode_CLUSTER_MODE_UNKNOWN
		res.Evidence = append(res.Evidence, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
			Summary: "no kube-apiserver process or pod seen, and not enough data to call the control plane managed"})
	}
	res.Datastore = datastore(in.ControlPlane, res.Mode)
	return res
}

func modeOf(how v1.DeploymentKind) v1.ClusterMode {
	switch how {
	case v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS:
		return v1.ClusterMode_CLUSTER_MODE_STANDALONE
	case v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD:
		return v1.ClusterMode_CLUSTER_MODE_STATIC_POD
	case v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET, v1.DeploymentKind_DEPLOYMENT_KIND_DEPLOYMENT,
		v1.DeploymentKind_DEPLOYMENT_KIND_REPLICASET, v1.DeploymentKind_DEPLOYMENT_KIND_STATEFULSET:
		return v1.ClusterMode_CLUSTER_MODE_SELF_HOSTED
	}
	return v1.ClusterMode_CLUSTER_MODE_UNKNOWN
}

func evidenceKindOf(inst *v1.ComponentInstance) v1.EvidenceKind {
	switch inst.How {
	case v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD:
		return v1.EvidenceKind_EVIDENCE_KIND_MIRROR_ANNOTATION
	case v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS:
		return v1.EvidenceKind_EVIDENCE_KIND_PROCESS
	}
	return v1.EvidenceKind_EVIDENCE_KIND_OWNER_CHAIN
}

func where(inst *v1.ComponentInstance) string {
	switch {
	case inst.ManifestPath != "":
		return fmt.Sprintf(" (manifest %s, pod %s)", inst.ManifestPath, inst.GetPod().GetName())
	case inst.SystemdUnit != "":
		return fmt.Sprintf(" (systemd unit %s, pid %d)", inst.SystemdUnit, inst.Pid)
	case inst.Owner != nil:
		return fmt.Sprintf(" (%s %s/%s)", inst.Owner.Kind, inst.Owner.Namespace, inst.Owner.Name)
	}
	return ""
}
