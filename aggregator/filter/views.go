package filter

import (
	"strings"
	"time"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// The views are what a filter sees of each row: the API message's fields,
// snake_case as in the API, enums by name, and a component's flags as a map.
// They are plain Go structs, so that an expression is type-checked against
// them once (a misspelt field is an error before any row is read).

// Ref is an object reference.
type Ref struct {
	Kind      string `cel:"kind"`
	Namespace string `cel:"namespace"`
	Name      string `cel:"name"`
	UID       string `cel:"uid"`
}

func refView(r *v1.ObjectRef) Ref {
	if r == nil {
		return Ref{}
	}
	return Ref{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, UID: r.Uid}
}

// Component is a component instance.
type Component struct {
	Cluster        string            `cel:"cluster"`
	Node           string            `cel:"node"`
	Component      string            `cel:"component"`
	Implementation string            `cel:"implementation"`
	How            string            `cel:"how"`
	Owner          Ref               `cel:"owner"`
	Pod            Ref               `cel:"pod"`
	Container      string            `cel:"container"`
	ContainerID    string            `cel:"container_id"`
	Pid            int64             `cel:"pid"`
	SystemdUnit    string            `cel:"systemd_unit"`
	ManifestPath   string            `cel:"manifest_path"`
	Image          string            `cel:"image"`
	Version        string            `cel:"version"`
	HasProcess     bool              `cel:"has_process"`
	RestartCount   int64             `cel:"restart_count"`
	Flags          map[string]string `cel:"flags"`
	ID             string            `cel:"id"`
}

// componentView is the filter's view of an instance; its flags map is built
// only when the expression may read it.
func componentView(in *v1.ComponentInstance, withFlags bool) Component {
	if in == nil {
		return Component{Flags: map[string]string{}}
	}
	var flags map[string]string
	if withFlags {
		flags = make(map[string]string, len(in.Flags))
		for _, f := range in.Flags {
			flags[f.Name] = strings.Join(f.Values, ",")
		}
	}
	return Component{
		Cluster: in.Cluster, Node: in.Node, Component: in.Component, Implementation: in.Implementation, How: in.How.String(),
		Owner: refView(in.Owner), Pod: refView(in.Pod), Container: in.Container, ContainerID: in.ContainerId, Pid: int64(in.Pid),
		SystemdUnit: in.SystemdUnit, ManifestPath: in.ManifestPath, Image: in.Image, Version: in.Version, HasProcess: in.HasProcess,
		RestartCount: int64(in.RestartCount), Flags: flags, ID: in.Id,
	}
}

// Datastore is a cluster's datastore.
type Datastore struct {
	Implementation string   `cel:"implementation"`
	Endpoints      []string `cel:"endpoints"`
	Nodes          []string `cel:"nodes"`
}

// Cluster is a cluster.
type Cluster struct {
	Name               string    `cel:"name"`
	UID                string    `cel:"uid"`
	Mode               string    `cel:"mode"`
	Provider           string    `cel:"provider"`
	ControlPlaneNodes  []string  `cel:"control_plane_nodes"`
	NodeCount          int64     `cel:"node_count"`
	ReportingNodeCount int64     `cel:"reporting_node_count"`
	KubernetesVersion  string    `cel:"kubernetes_version"`
	APIConnected       bool      `cel:"api_connected"`
	FindingCount       int64     `cel:"finding_count"`
	Datastore          Datastore `cel:"datastore"`
}

func clusterView(c *v1.Cluster) Cluster {
	out := Cluster{Name: c.Name, UID: c.Uid, Mode: c.Mode.String(), Provider: c.Provider, ControlPlaneNodes: c.ControlPlaneNodes,
		NodeCount: int64(c.NodeCount), ReportingNodeCount: int64(c.ReportingNodeCount), KubernetesVersion: c.KubernetesVersion,
		APIConnected: c.ApiConnected, FindingCount: int64(c.FindingCount)}
	if d := c.Datastore; d != nil {
		out.Datastore = Datastore{Implementation: d.Implementation, Endpoints: d.Endpoints, Nodes: d.Nodes}
	}
	return out
}

// Node is a node.
type Node struct {
	Cluster         string    `cel:"cluster"`
	Name            string    `cel:"name"`
	Roles           []string  `cel:"roles"`
	InAPI           bool      `cel:"in_api"`
	AgentState      string    `cel:"agent_state"`
	LastSeen        time.Time `cel:"last_seen"`
	KubeletVersion  string    `cel:"kubelet_version"`
	InternalIPs     []string  `cel:"internal_ips"`
	ProcessCount    int64     `cel:"process_count"`
	ManifestCount   int64     `cel:"manifest_count"`
	Hostname        string    `cel:"hostname"`
	OSImage         string    `cel:"os_image"`
	KernelVersion   string    `cel:"kernel_version"`
	AgentVersion    string    `cel:"agent_version"`
	StaticPodPath   string    `cel:"static_pod_path"`
	CgroupDriver    string    `cel:"cgroup_driver"`
	RuntimeEndpoint string    `cel:"container_runtime_endpoint"`
}

func nodeView(n *v1.Node) Node {
	out := Node{Cluster: n.Cluster, Name: n.Name, Roles: n.Roles, InAPI: n.InApi, AgentState: n.AgentState.String(),
		KubeletVersion: n.KubeletVersion, InternalIPs: n.InternalIps, ProcessCount: int64(n.ProcessCount), ManifestCount: int64(n.ManifestCount)}
	if n.LastSeen != nil {
		out.LastSeen = n.LastSeen.AsTime()
	}
	if id := n.Identity; id != nil {
		out.Hostname, out.OSImage, out.KernelVersion, out.AgentVersion = id.Hostname, id.OsImage, id.KernelVersion, id.AgentVersion
	}
	if k := n.Kubelet; k != nil {
		out.StaticPodPath, out.CgroupDriver, out.RuntimeEndpoint = k.StaticPodPath, k.CgroupDriver, k.ContainerRuntimeEndpoint
	}
	return out
}

// Process is a process of a node.
type Process struct {
	Cluster        string    `cel:"cluster"`
	Node           string    `cel:"node"`
	Pid            int64     `cel:"pid"`
	Ppid           int64     `cel:"ppid"`
	StartTime      time.Time `cel:"start_time"`
	User           string    `cel:"user"`
	Argv           []string  `cel:"argv"`
	Exe            string    `cel:"exe"`
	RSSBytes       uint64    `cel:"rss_bytes"`
	CPUSeconds     float64   `cel:"cpu_seconds"`
	CgroupPath     string    `cel:"cgroup_path"`
	ContainerID    string    `cel:"container_id"`
	PodUID         string    `cel:"pod_uid"`
	Runtime        string    `cel:"runtime"`
	QOSClass       string    `cel:"qos_class"`
	SystemdUnit    string    `cel:"systemd_unit"`
	Components     []string  `cel:"components"`
	Infrastructure bool      `cel:"infrastructure"`
}

func processView(cluster, node string, p *v1.Process) Process {
	out := Process{Cluster: cluster, Node: node, Pid: int64(p.Pid), Ppid: int64(p.Ppid), User: p.User, Argv: p.Argv, Exe: p.Exe,
		RSSBytes: p.RssBytes, CPUSeconds: p.CpuSeconds, CgroupPath: p.CgroupPath, ContainerID: p.ContainerId, PodUID: p.PodUid,
		Runtime: p.Runtime.String(), QOSClass: p.QosClass.String(), SystemdUnit: p.SystemdUnit, Infrastructure: p.Infrastructure}
	if p.StartTime != nil {
		out.StartTime = p.StartTime.AsTime()
	}
	for _, c := range p.Components {
		out.Components = append(out.Components, c.Component)
	}
	return out
}

// Manifest is a static pod manifest of a node.
type Manifest struct {
	Cluster      string   `cel:"cluster"`
	Node         string   `cel:"node"`
	Path         string   `cel:"path"`
	SHA256       string   `cel:"sha256"`
	PodName      string   `cel:"pod_name"`
	PodNamespace string   `cel:"pod_namespace"`
	Images       []string `cel:"images"`
	ParseError   string   `cel:"parse_error"`
	MirrorPod    string   `cel:"mirror_pod"`
}

func manifestView(cluster, node, mirror string, m *v1.StaticPodManifest) Manifest {
	out := Manifest{Cluster: cluster, Node: node, Path: m.Path, SHA256: m.Sha256, PodName: m.PodName, PodNamespace: m.PodNamespace,
		ParseError: m.ParseError, MirrorPod: mirror}
	for _, c := range m.Containers {
		out.Images = append(out.Images, c.Image)
	}
	return out
}

// Certificate is a certificate of a node.
type Certificate struct {
	Cluster      string    `cel:"cluster"`
	Node         string    `cel:"node"`
	Path         string    `cel:"path"`
	Field        string    `cel:"field"`
	Index        int64     `cel:"index"`
	Subject      string    `cel:"subject"`
	Issuer       string    `cel:"issuer"`
	DNSNames     []string  `cel:"dns_names"`
	IPAddresses  []string  `cel:"ip_addresses"`
	Serial       string    `cel:"serial"`
	NotBefore    time.Time `cel:"not_before"`
	NotAfter     time.Time `cel:"not_after"`
	IsCA         bool      `cel:"is_ca"`
	SelfSigned   bool      `cel:"self_signed"`
	IssuerOnNode bool      `cel:"issuer_on_node"`
	SHA256       string    `cel:"sha256"`
	Error        string    `cel:"error"`
	// Components are the components that use it; Flags how they name it.
	Components []string `cel:"components"`
	Flags      []string `cel:"flags"`
}

func certificateView(cluster, node string, c *v1.Certificate) Certificate {
	out := Certificate{Cluster: cluster, Node: node, Path: c.Path, Field: c.Field, Index: int64(c.Index), Subject: c.Subject,
		Issuer: c.Issuer, DNSNames: c.DnsNames, IPAddresses: c.IpAddresses, Serial: c.Serial, IsCA: c.IsCa,
		SelfSigned: c.SelfSigned, IssuerOnNode: c.IssuerOnNode, SHA256: c.Sha256, Error: c.Error}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.AsTime()
	}
	if c.NotAfter != nil {
		out.NotAfter = c.NotAfter.AsTime()
	}
	for _, u := range c.Uses {
		if u.Component != "" {
			out.Components = append(out.Components, u.Component)
		}
		out.Flags = append(out.Flags, u.Flag)
	}
	return out
}

// Finding is a finding.
type Finding struct {
	ID       string `cel:"id"`
	Cluster  string `cel:"cluster"`
	Node     string `cel:"node"`
	Kind     string `cel:"kind"`
	Severity string `cel:"severity"`
	Summary  string `cel:"summary"`
	Subject  string `cel:"subject"`
}

func findingView(f *v1.Finding) Finding {
	if f == nil {
		return Finding{}
	}
	return Finding{ID: f.Id, Cluster: f.Cluster, Node: f.Node, Kind: f.Kind.String(), Severity: f.Severity.String(), Summary: f.Summary, Subject: f.Subject}
}
