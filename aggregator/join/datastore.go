package join

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// datastore says what serves a cluster's API storage, from the endpoints
// kube-apiserver is given and the instances that serve them:
//   - a kine or k8s-dqlite process (in k3s, MicroK8s, or on its own);
//   - etcd members the agents see (static pods, host processes, embedded);
//   - endpoints no agent serves: an external etcd, or kine's socket;
//   - a managed control plane's own.
//
// It returns nil when nothing tells.
func datastore(cp []*v1.ComponentInstance, mode v1.ClusterMode) *v1.Datastore {
	var etcds, stores []*v1.ComponentInstance
	ds := &v1.Datastore{}
	for _, inst := range cp {
		switch inst.Component {
		case v1.ComponentEtcd:
			etcds = append(etcds, inst)
		case v1.ComponentDatastore:
			stores = append(stores, inst)
		case v1.ComponentAPIServer:
			for _, fl := range inst.Flags {
				if fl.Name != "etcd-servers" && !(inst.Implementation == "k3s" && fl.Name == "datastore-endpoint") {
					continue
				}
				for _, v := range fl.Values {
					for _, ep := range strings.Split(v, ",") {
						if ep = strings.TrimSpace(ep); ep != "" && !slices.Contains(ds.Endpoints, ep) {
							ds.Endpoints = append(ds.Endpoints, ep)
						}
					}
				}
				ds.Evidence = append(ds.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_FLAG,
					fmt.Sprintf("kube-apiserver on %s stores in %s (--%s)", inst.Node, strings.Join(fl.Values, ","), fl.Name),
					"node", inst.Node, "flag", fl.Name, "instance", inst.Id))
			}
		}
	}
	serve := func(insts []*v1.ComponentInstance) {
		nodes := map[string]bool{}
		for _, in := range insts {
			ds.Instances = append(ds.Instances, in.Id)
			nodes[in.Node] = true
			ds.Evidence = append(ds.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_PROCESS,
				fmt.Sprintf("%s (%s) on %s runs as %s%s", in.Component, in.Implementation, in.Node, in.How.Words(), where(in)),
				"node", in.Node, "instance", in.Id))
		}
		for n := range nodes {
			ds.Nodes = append(ds.Nodes, n)
		}
		sort.Strings(ds.Nodes)
		sort.Strings(ds.Instances)
	}
	switch {
	case len(stores) > 0:
		ds.Implementation = stores[0].Implementation
		serve(stores)
	case len(etcds) > 0:
		ds.Implementation = "etcd"
		serve(etcds)
	case slices.ContainsFunc(ds.Endpoints, isKineSocket):
		// MicroK8s and k3s put kine behind a unix socket; its process
		// was not seen, so neither is its backend.
		ds.Implementation = "kine"
	case len(ds.Endpoints) > 0 && !slices.ContainsFunc(ds.Endpoints, func(ep string) bool { return !isLoopback(ep) }):
		// Only loopback endpoints: an etcd on the API server's own node
		// that no agent reported.
		ds.Implementation = "etcd"
		ds.Evidence = append(ds.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_NODE,
			"the endpoints are the API server's own node, where no etcd was seen", "endpoints", strings.Join(ds.Endpoints, ",")))
	case len(ds.Endpoints) > 0:
		ds.Implementation = "external"
		ds.Evidence = append(ds.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_NODE,
			"no node that reports serves these endpoints: an etcd outside the agents' view", "endpoints", strings.Join(ds.Endpoints, ",")))
	case mode == v1.ClusterMode_CLUSTER_MODE_MANAGED:
		ds.Implementation = "managed"
		ds.Evidence = append(ds.Evidence, ev(v1.EvidenceKind_EVIDENCE_KIND_NODE,
			"the control plane is managed: its datastore is the provider's", "mode", mode.String()))
	default:
		return nil
	}
	return ds
}

// isKineSocket reports whether an endpoint is kine's unix socket
// ("unix:///var/snap/microk8s/current/var/kubernetes/backend/kine.sock:12379",
// "unix://kine.sock").
func isKineSocket(ep string) bool {
	return strings.HasPrefix(ep, "unix://") && strings.Contains(ep, "kine")
}

// isLoopback reports whether an endpoint's host is a loopback address.
func isLoopback(ep string) bool {
	u, err := url.Parse(ep)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
}
