package kubeatlasv1

// The fixed component names (roles) of the API; see HostedComponent.component.
const (
	ComponentAPIServer              = "kube-apiserver"
	ComponentControllerManager      = "kube-controller-manager"
	ComponentScheduler              = "kube-scheduler"
	ComponentEtcd                   = "etcd"
	ComponentKubelet                = "kubelet"
	ComponentKubeProxy              = "kube-proxy"
	ComponentContainerRuntime       = "container-runtime"
	ComponentCNI                    = "cni"
	ComponentClusterDNS             = "cluster-dns"
	ComponentCloudControllerManager = "cloud-controller-manager"
	// ComponentDatastore is what serves the API server's storage when it is
	// not etcd, or a process that serves nothing else: kine (in k3s or on its
	// own), k8s-dqlite. A cluster's datastore, etcd included, is in
	// Cluster.datastore.
	ComponentDatastore = "datastore"
	// ComponentCSI is a CSI node plugin.
	ComponentCSI = "csi"
	// ComponentCloudNodeAgent is a managed cloud's agent on each node: the
	// metadata server, network helpers, konnectivity.
	ComponentCloudNodeAgent = "cloud-node-agent"
)

// Components lists every component name in the order answers are printed:
// control plane first, then node components, then add-ons.
var Components = []string{
	ComponentAPIServer,
	ComponentEtcd,
	ComponentDatastore,
	ComponentControllerManager,
	ComponentScheduler,
	ComponentCloudControllerManager,
	ComponentKubelet,
	ComponentKubeProxy,
	ComponentCNI,
	ComponentClusterDNS,
	ComponentContainerRuntime,
	ComponentCSI,
	ComponentCloudNodeAgent,
}

// ComponentRank is a component's position in Components, or len(Components)
// for a name that is not one of them.
func ComponentRank(name string) int {
	for i, c := range Components {
		if c == name {
			return i
		}
	}
	return len(Components)
}

// IsControlPlane reports whether a component is part of the control plane.
func IsControlPlane(name string) bool {
	switch name {
	case ComponentAPIServer, ComponentControllerManager, ComponentScheduler, ComponentEtcd, ComponentDatastore, ComponentCloudControllerManager:
		return true
	}
	return false
}
