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
)

// Components lists every component name in the order answers are printed:
// control plane first, then node components, then add-ons.
var Components = []string{
	ComponentAPIServer,
	ComponentEtcd,
	ComponentControllerManager,
	ComponentScheduler,
	ComponentCloudControllerManager,
	ComponentKubelet,
	ComponentKubeProxy,
	ComponentCNI,
	ComponentClusterDNS,
	ComponentContainerRuntime,
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
	case ComponentAPIServer, ComponentControllerManager, ComponentScheduler, ComponentEtcd, ComponentCloudControllerManager:
		return true
	}
	return false
}
