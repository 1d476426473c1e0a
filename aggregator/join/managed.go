package join

import (
	"fmt"
	"net"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Managed control planes are named from what each provider puts in front of
// its users, strongest first. providerID alone is not a sign (self-managed
// clusters on cloud VMs have it), nor are kubeconfig context names or node
// names.

// versionProviders are suffixes of the API server's gitVersion that only a
// managed offering builds: "v1.29.3-eks-adc7111", "v1.30.2-gke.1587003".
var versionProviders = []struct{ marker, provider string }{
	{"-eks-", "EKS"},
	{"-gke.", "GKE"},
}

// hostProviders are API server host names that only a managed offering
// serves: EKS "<id>.<zone>.eks.amazonaws.com", AKS "<dns>.hcp.<region>.azmk8s.io"
// (and privatelink), GKE's DNS endpoints "gke-<id>.<region>.gke.goog".
var hostProviders = []struct{ suffix, provider string }{
	{".eks.amazonaws.com", "EKS"},
	{".eks.amazonaws.com.cn", "EKS"},
	{".azmk8s.io", "AKS"},
	{".gke.goog", "GKE"},
}

// labelProviders are node label prefixes or keys each offering sets on its
// nodes (managed node groups, node pools) and HyperShift's node pools.
var labelProviders = []struct{ prefix, provider string }{
	{"eks.amazonaws.com/", "EKS"},
	{"cloud.google.com/gke-", "GKE"},
	{"kubernetes.azure.com/cluster", "AKS"},
	{"hypershift.openshift.io/", "HyperShift"},
}

// NodeLabelProvider returns the provider a node's labels name, and the label.
func NodeLabelProvider(labels map[string]string) (provider, label string) {
	for k := range labels {
		for _, lp := range labelProviders {
			if strings.HasPrefix(k, lp.prefix) && (label == "" || k < label) {
				provider, label = lp.provider, k
			}
		}
	}
	return provider, label
}

// endpointsEv corroborates a control plane outside the nodes: the
// "kubernetes" Service's endpoints are no node's address. It is never
// enough on its own: hosted control planes (HyperShift, Kamaji) and
// external HA setups show it too.
func endpointsEv(in ClusterInput) []*v1.Evidence {
	if len(in.APIEndpoints) == 0 || in.IsNodeAddress == nil {
		return nil
	}
	for _, a := range in.APIEndpoints {
		if in.IsNodeAddress(a) {
			return nil
		}
	}
	return []*v1.Evidence{{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
		Summary:    fmt.Sprintf("the kubernetes Service's endpoints (%s) are no node's address", strings.Join(in.APIEndpoints, ", ")),
		Attributes: map[string]string{"endpoints": strings.Join(in.APIEndpoints, ",")}}}
}

// managedProvider names the provider of a managed control plane from the
// API server's version, its address and the nodes' labels, with the
// evidence of each sign found. The first sign found names the provider.
func managedProvider(in ClusterInput) (string, []*v1.Evidence) {
	var provider string
	var evs []*v1.Evidence
	name := func(p string) {
		if provider == "" {
			provider = p
		}
	}
	for _, vp := range versionProviders {
		if strings.Contains(in.APIVersion, vp.marker) {
			name(vp.provider)
			evs = append(evs, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_FLAG,
				Summary:    fmt.Sprintf("the API server's version %s is a %s build", in.APIVersion, vp.provider),
				Attributes: map[string]string{"git_version": in.APIVersion, "provider": vp.provider}})
		}
	}
	if host := strings.ToLower(strings.TrimSuffix(in.APIHost, ".")); host != "" && net.ParseIP(host) == nil {
		for _, hp := range hostProviders {
			if strings.HasSuffix(host, hp.suffix) {
				name(hp.provider)
				evs = append(evs, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_FLAG,
					Summary:    fmt.Sprintf("the API server's address %s is %s's", host, hp.provider),
					Attributes: map[string]string{"api_host": host, "provider": hp.provider}})
			}
		}
	}
	if in.NodeLabelProvider != "" {
		name(in.NodeLabelProvider)
		evs = append(evs, &v1.Evidence{Kind: v1.EvidenceKind_EVIDENCE_KIND_NODE,
			Summary:    fmt.Sprintf("nodes carry %s's label %s", in.NodeLabelProvider, in.NodeLabel),
			Attributes: map[string]string{"label": in.NodeLabel, "provider": in.NodeLabelProvider}})
	}
	return provider, evs
}
