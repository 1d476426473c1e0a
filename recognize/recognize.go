// Package recognize tells which Kubernetes components a process hosts, from its
// command line alone, and parses the component's flags.
package recognize

import (
	"path"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Component is one component a process hosts.
type Component struct {
	Name           string
	Implementation string
	Flags          Flags
	ConfigFile     string
}

// Result is what a command line says.
type Result struct {
	// Components hosted by the process; empty for ordinary processes.
	Components []Component
	// Infrastructure is true for container plumbing (shims, conmon, pause)
	// that hosts no component itself.
	Infrastructure bool
}

type program struct {
	component      string
	implementation string
	configFlags    []string
}

// programs maps a program's base name to the component it is.
var programs = map[string]program{
	"kube-apiserver":           {v1.ComponentAPIServer, "kube-apiserver", nil},
	"kube-controller-manager":  {v1.ComponentControllerManager, "kube-controller-manager", []string{"config"}},
	"kube-scheduler":           {v1.ComponentScheduler, "kube-scheduler", []string{"config"}},
	"etcd":                     {v1.ComponentEtcd, "etcd", []string{"config-file"}},
	"kubelet":                  {v1.ComponentKubelet, "kubelet", []string{"config"}},
	"kube-proxy":               {v1.ComponentKubeProxy, "kube-proxy", []string{"config"}},
	"cloud-controller-manager": {v1.ComponentCloudControllerManager, "cloud-controller-manager", []string{"cloud-config"}},
	"containerd":               {v1.ComponentContainerRuntime, "containerd", []string{"config", "c"}},
	"crio":                     {v1.ComponentContainerRuntime, "cri-o", []string{"config"}},
	"dockerd":                  {v1.ComponentContainerRuntime, "dockerd", []string{"config-file"}},
	"cri-dockerd":              {v1.ComponentContainerRuntime, "cri-dockerd", nil},
	"flanneld":                 {v1.ComponentCNI, "flannel", []string{"net-config-path"}},
	"calico-node":              {v1.ComponentCNI, "calico", nil},
	"cilium-agent":             {v1.ComponentCNI, "cilium", []string{"config-dir"}},
	"weaver":                   {v1.ComponentCNI, "weave", nil},
	"kube-router":              {v1.ComponentCNI, "kube-router", nil},
	"antrea-agent":             {v1.ComponentCNI, "antrea", []string{"config"}},
	"kindnetd":                 {v1.ComponentCNI, "kindnet", nil},
	"ovnkube":                  {v1.ComponentCNI, "ovn-kubernetes", []string{"config-file"}},
	"multus-daemon":            {v1.ComponentCNI, "multus", []string{"config"}},
	"coredns":                  {v1.ComponentClusterDNS, "coredns", []string{"conf"}},
	"kube-dns":                 {v1.ComponentClusterDNS, "kube-dns", nil},
	"node-cache":               {v1.ComponentClusterDNS, "node-local-dns", []string{"conf"}},
	// MicroK8s's datastore: dqlite behind a kine socket.
	"k8s-dqlite": {v1.ComponentDatastore, "k8s-dqlite", nil},

	// Managed clouds' node agents, by the programs their DaemonSets run.
	// EKS: the aws-node DaemonSet (amazon-vpc-cni-k8s) runs /app/aws-vpc-cni,
	// which starts /app/aws-k8s-agent (ipamd): one CNI. Its network policy
	// agent beside them runs a generic /controller, known from its image.
	"aws-vpc-cni":       {v1.ComponentCNI, "aws-vpc-cni", nil},
	"aws-k8s-agent":     {v1.ComponentCNI, "aws-vpc-cni", nil},
	"aws-eks-nodeagent": {v1.ComponentCloudNodeAgent, "aws-eks-nodeagent", nil},
	// GKE: anetd is Dataplane V2's CNI; netd, the metadata server and the
	// konnectivity agent (kas-network-proxy's proxy-agent) run on every node.
	"anetd":               {v1.ComponentCNI, "anetd", nil},
	"netd":                {v1.ComponentCloudNodeAgent, "netd", nil},
	"gke-metadata-server": {v1.ComponentCloudNodeAgent, "gke-metadata-server", nil},
	"proxy-agent":         {v1.ComponentCloudNodeAgent, "konnectivity-agent", nil},
	"konnectivity-agent":  {v1.ComponentCloudNodeAgent, "konnectivity-agent", nil},
	// AKS: azure-cns hands out pod IPs for Azure CNI; the ip-masq agent and
	// the cloud node manager run on every node.
	"azure-cns":          {v1.ComponentCNI, "azure-cns", nil},
	"ip-masq-agent":      {v1.ComponentCloudNodeAgent, "ip-masq-agent", []string{"config"}},
	"cloud-node-manager": {v1.ComponentCloudNodeAgent, "cloud-node-manager", nil},
	// CSI node plugins (the *-csi-node DaemonSets), by their drivers.
	"aws-ebs-csi-driver":       {v1.ComponentCSI, "ebs.csi.aws.com", nil},
	"aws-efs-csi-driver":       {v1.ComponentCSI, "efs.csi.aws.com", nil},
	"gce-pd-csi-driver":        {v1.ComponentCSI, "pd.csi.storage.gke.io", nil},
	"gcp-filestore-csi-driver": {v1.ComponentCSI, "filestore.csi.storage.gke.io", nil},
	"azurediskplugin":          {v1.ComponentCSI, "disk.csi.azure.com", nil},
	"azurefileplugin":          {v1.ComponentCSI, "file.csi.azure.com", nil},
	"blobplugin":               {v1.ComponentCSI, "blob.csi.azure.com", nil},
	"secrets-store-csi-driver": {v1.ComponentCSI, "secrets-store.csi.k8s.io", nil},
}

// infrastructure names container plumbing that hosts no component.
var infrastructure = map[string]bool{
	"containerd-shim":          true,
	"containerd-shim-runc-v1":  true,
	"containerd-shim-runc-v2":  true,
	"containerd-shim-runsc-v1": true,
	"containerd-shim-kata-v2":  true,
	"conmon":                   true,
	"pause":                    true,
	"runc":                     true,
	"crun":                     true,
	"docker-proxy":             true,
	"rke2":                     true,
	// CSI sidecars: they register and probe the driver beside them.
	"csi-node-driver-registrar": true,
	"livenessprobe":             true,
}

// hyperkubeNames maps a hyperkube sub-command to its component program.
var hyperkubeNames = map[string]string{
	"apiserver": "kube-apiserver", "kube-apiserver": "kube-apiserver",
	"controller-manager": "kube-controller-manager", "kube-controller-manager": "kube-controller-manager",
	"scheduler": "kube-scheduler", "kube-scheduler": "kube-scheduler",
	"kubelet": "kubelet",
	"proxy":   "kube-proxy", "kube-proxy": "kube-proxy",
	"cloud-controller-manager": "cloud-controller-manager",
}

// Program returns the base name of a command line's program. A process that
// rewrote its title ("/usr/local/bin/k3s server") has its first word taken.
func Program(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	a := argv[0]
	if i := strings.IndexByte(a, ' '); i > 0 {
		a = a[:i]
	}
	return path.Base(a)
}

// words splits a rewritten title ("k3s server --x") back into words so
// sub-commands and flags are seen.
func words(argv []string) []string {
	if len(argv) == 0 || !strings.Contains(argv[0], " ") {
		return argv
	}
	out := strings.Fields(argv[0])
	return append(out, argv[1:]...)
}

// shells run a script named as their first argument, or one given with -c.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true}

// supervisors run a command given after "--" and watch it; they are not that
// command (OpenShift's watch-termination around kube-apiserver, tini, dumb-init).
var supervisors = map[string]bool{"watch-termination": true, "tini": true, "dumb-init": true, "catatonit": true}

// Recognize tells what a command line hosts. argv should already be redacted.
func Recognize(argv []string) Result { return recognize(argv, 0) }

func recognize(argv []string, depth int) Result {
	argv = words(argv)
	prog := Program(argv)
	if prog == "" || depth > 3 {
		return Result{}
	}
	if infrastructure[prog] || strings.HasPrefix(prog, "containerd-shim") || supervisors[prog] {
		return Result{Infrastructure: true}
	}
	args := argv[1:]
	if shells[prog] || (prog == "busybox" && len(args) > 0 && shells[args[0]]) {
		if prog == "busybox" {
			args = args[1:]
		}
		return shell(args, depth)
	}
	switch prog {
	case "etcd":
		// "etcd grpc-proxy" and "etcd gateway" forward to etcd; they
		// serve no data.
		if len(args) > 0 && (args[0] == "grpc-proxy" || args[0] == "gateway") {
			return Result{}
		}
	case "hyperkube":
		if len(args) == 0 {
			return Result{}
		}
		name, ok := hyperkubeNames[args[0]]
		if !ok {
			return Result{}
		}
		c := single(name, args[1:])
		c.Implementation = "hyperkube"
		return Result{Components: []Component{c}}
	case "k3s":
		return k3s(args)
	case "kine":
		// kine on its own: an etcd API over the database --endpoint names.
		f := ParseFlags(args)
		ep, _ := f.Get("endpoint")
		impl, _ := KineImplementation(ep)
		return Result{Components: []Component{{Name: v1.ComponentDatastore, Implementation: impl, Flags: f}}}
	case "kubelite":
		f := ParseFlags(args)
		var out []Component
		for _, n := range []string{v1.ComponentAPIServer, v1.ComponentControllerManager, v1.ComponentScheduler, v1.ComponentKubelet, v1.ComponentKubeProxy} {
			out = append(out, Component{Name: n, Implementation: "kubelite", Flags: f})
		}
		return Result{Components: out}
	}
	if _, ok := programs[prog]; ok {
		return Result{Components: []Component{single(prog, args)}}
	}
	// Provider-specific cloud controller managers: aws-cloud-controller-manager, …
	if strings.HasSuffix(prog, "-cloud-controller-manager") {
		c := single("cloud-controller-manager", args)
		c.Implementation = prog
		return Result{Components: []Component{c}}
	}
	return Result{}
}

// shell reads a shell's arguments: a script run by path ("bash
// /usr/local/bin/etcd --name x", as the kernel starts a script named like a
// binary) is what its name says; "-c SCRIPT" is what the command the script
// ends in, or execs, runs, when the script is that simple.
func shell(args []string, depth int) Result {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "+o":
			i++ // "-o pipefail"
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "c"):
			// "-c SCRIPT", or combined as in "-ec SCRIPT".
			if i+1 < len(args) {
				if cmd := scriptCommand(args[i+1]); len(cmd) > 0 {
					return recognize(cmd, depth+1)
				}
			}
			return Result{}
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
			// An option of the shell itself ("-e", "-x", "--login").
		default:
			return recognize(args[i:], depth+1)
		}
	}
	return Result{}
}

func single(prog string, args []string) Component {
	p := programs[prog]
	f := ParseFlags(args)
	c := Component{Name: p.component, Implementation: p.implementation, Flags: f}
	for _, name := range p.configFlags {
		if v, ok := f.Get(name); ok && v != "true" {
			c.ConfigFile = v
			break
		}
	}
	return c
}

// k3s reads "k3s server" and "k3s agent": one process hosting the control
// plane (server), the kubelet, kube-proxy and flannel, and embedded etcd when
// the server runs with --cluster-init.
func k3s(args []string) Result {
	if len(args) == 0 {
		return Result{}
	}
	sub := args[0]
	f := ParseFlags(args[1:])
	add := func(out []Component, name, impl string) []Component {
		return append(out, Component{Name: name, Implementation: impl, Flags: f, ConfigFile: flagOr(f, "config")})
	}
	var out []Component
	switch sub {
	case "server":
		out = add(out, v1.ComponentAPIServer, "k3s")
		out = add(out, v1.ComponentControllerManager, "k3s")
		out = add(out, v1.ComponentScheduler, "k3s")
		// k3s's datastore: embedded etcd when it starts or joins an etcd
		// cluster, an external etcd, or kine in the process over SQLite
		// (the default) or the database --datastore-endpoint names.
		ep, external := f.Get("datastore-endpoint")
		switch impl, etcd := KineImplementation(ep); {
		case !external && (f.Has("cluster-init") || f.Has("server")):
			out = add(out, v1.ComponentEtcd, "k3s")
		case !etcd:
			out = add(out, v1.ComponentDatastore, impl)
		}
		if !f.Has("disable-cloud-controller") {
			out = add(out, v1.ComponentCloudControllerManager, "k3s")
		}
		if f.Has("disable-agent") {
			return Result{Components: out}
		}
	case "agent":
	default:
		return Result{}
	}
	out = add(out, v1.ComponentKubelet, "k3s")
	if !f.Has("disable-kube-proxy") {
		out = add(out, v1.ComponentKubeProxy, "k3s")
	}
	if v, _ := f.Get("flannel-backend"); v != "none" {
		out = add(out, v1.ComponentCNI, "flannel")
	}
	return Result{Components: out}
}

// KineImplementation names the datastore an etcd-style endpoint leads to
// when it is kine's (k3s's --datastore-endpoint, kine's --endpoint): SQLite
// when empty or "sqlite://", MySQL, PostgreSQL, NATS, or etcd itself
// ("http(s)://…", in which case etcd is true and there is no kine).
func KineImplementation(endpoint string) (impl string, etcd bool) {
	scheme, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(endpoint)), "://")
	switch scheme {
	case "", "sqlite":
		return "kine-sqlite", false
	case "mysql":
		return "kine-mysql", false
	case "postgres", "postgresql":
		return "kine-postgres", false
	case "nats":
		return "kine-nats", false
	case "http", "https":
		return "etcd", true
	}
	return "kine", false
}

func flagOr(f Flags, name string) string {
	v, _ := f.Get(name)
	return v
}

// Proto turns a component into its API form.
func (c Component) Proto() *v1.HostedComponent {
	return &v1.HostedComponent{
		Component:      c.Name,
		Implementation: c.Implementation,
		Flags:          c.Flags.Proto(),
		ConfigFile:     c.ConfigFile,
	}
}
