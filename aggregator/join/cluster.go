package join

import (
	"fmt"
	"sort"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// ClusterResult is what a cluster's control plane looks like.
type ClusterResult struct {
	Mode              v1.ClusterMode
	Evidence          []*v1.Evidence
	ControlPlaneNodes []string
	APIServerVersion  string
}

// Cluster decides a cluster's mode from how its kube-apiserver instances run:
// a host process means STANDALONE, a static pod STATIC_POD, a DaemonSet or
// Deployment pod SELF_HOSTED; none on any reporting node while the API answers
// means MANAGED; no evidence means UNKNOWN. controlPlane holds every instance
// of a control-plane component in the cluster.
func Cluster(controlPlane []*v1.ComponentInstance, apiConnected, anyAgent bool, apiVersion string) ClusterResult {
	var res ClusterResult
	nodes := map[string]bool{}
	counts := map[v1.ClusterMode]int{}
	for _, inst := range controlPlane {
		nodes[inst.Node] = true
		if inst.Component != v1.ComponentAPIServer {
			continue
		}
		mode := modeOf(inst.How)
		if mode == v1.ClusterMode_CLUSTER_MODE_UNKNOWN {
			continue
		}
		counts[mode]++
		if res.APIServerVersion == "" && inst.Version != "" {
			res.APIServerVersion = inst.Version
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
		res.APIServerVersion = apiVersion
	}
	best, bestN := v1.ClusterMode_CLUSTER_MODE_UNKNOWN, 0
	for _, m := range []v1.ClusterMode{v1.ClusterMode_CLUSTER_MODE_STATIC_POD, v1.ClusterMode_CLUSTER_MODE_STANDALONE, v1.ClusterMode_CLUSTER_MODE_SELF_HOSTED} {
		if counts[m] > bestN {
			best, bestN = m, counts[m]
		}
	}
	switch {
	case bestN > 0:
		res.Mode = best
	case apiConnected && anyAgent:
		res.Mode = v1.ClusterMode_CLUSTER_MODE_MANAGED
		res.Evidence = append(res.Evidence, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
			Summary: "the API server answers, but kube-apiserver runs on no node that reports or appears in the API"})
	default:
		res.Mode = v1.ClusterMode_CLUSTER_MODE_UNKNOWN
		res.Evidence = append(res.Evidence, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
			Summary: "no kube-apiserver process or pod seen, and not enough data to call the control plane managed"})
	}
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
