package printer

import (
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// lines writes formatted text and keeps the first error, so that a long
// description reads as a list of lines and still reports a failed write.
type lines struct {
	w   io.Writer
	err error
}

func (l *lines) printf(format string, args ...any) {
	if l.err == nil {
		_, l.err = fmt.Fprintf(l.w, format, args...)
	}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// Cluster describes one cluster: its mode, control plane, size and the
// evidence for the mode.
func Cluster(w io.Writer, c *v1.Cluster) error {
	l := &lines{w: w}
	l.printf("Cluster:        %s\n", c.Name)
	if c.Uid != "" {
		l.printf("UID:            %s (kube-system namespace)\n", c.Uid)
	}
	l.printf("Mode:           %s\n", Mode(c.Mode))
	if c.Provider != "" {
		l.printf("Provider:       %s\n", c.Provider)
	}
	l.printf("Datastore:      %s\n", DatastoreWhere(c.Datastore))
	l.printf("Control plane:  %s\n", orNone(strings.Join(c.ControlPlaneNodes, ", ")))
	l.printf("Version:        %s\n", orNone(c.KubernetesVersion))
	l.printf("Nodes:          %d (%d reporting)\n", c.NodeCount, c.ReportingNodeCount)
	l.printf("Findings:       %d\n", c.FindingCount)
	l.printf("Evidence for the mode:\n")
	if l.err != nil {
		return l.err
	}
	if err := Evidence(w, "  ", c.ModeEvidence); err != nil {
		return err
	}
	if c.Datastore != nil && len(c.Datastore.Evidence) > 0 {
		l.printf("Evidence for the datastore:\n")
		if l.err != nil {
			return l.err
		}
		return Evidence(w, "  ", c.Datastore.Evidence)
	}
	return nil
}

// DatastoreWhere says what serves a cluster's storage and where: "etcd on
// test, endpoints https://127.0.0.1:2379".
func DatastoreWhere(d *v1.Datastore) string {
	if d == nil || d.Implementation == "" {
		return "<unknown>"
	}
	s := d.Implementation
	if len(d.Nodes) > 0 {
		s += " on " + strings.Join(d.Nodes, ", ")
	}
	if len(d.Endpoints) > 0 {
		s += ", endpoints " + strings.Join(d.Endpoints, ",")
	}
	return s
}

// Datastores prints what serves each cluster's storage: the answer to
// `kubeatlas where datastore`.
func Datastores(w io.Writer, f Format, resp *v1.ListClustersResponse) error {
	if f.Structured() {
		out := &v1.ListClustersResponse{}
		for _, c := range resp.Clusters {
			out.Clusters = append(out.Clusters, &v1.Cluster{Name: c.Name, Mode: c.Mode, Provider: c.Provider, Datastore: c.Datastore})
		}
		return Message(w, f, out)
	}
	tw := newTab(w)
	line(tw, "CLUSTER", "DATASTORE", "NODES", "ENDPOINTS")
	for _, c := range resp.Clusters {
		d := c.Datastore
		if d == nil {
			d = &v1.Datastore{Implementation: "<unknown>"}
		}
		row(tw, c.Name, d.Implementation, strings.Join(d.Nodes, ","), strings.Join(d.Endpoints, ","))
	}
	return tw.Flush()
}

// Node describes one node: its identity, agent, kubelet, components and
// findings.
func Node(w io.Writer, resp *v1.GetNodeResponse, findings []*v1.Finding, certs []*v1.NodeCertificate, now time.Time) error {
	l := &lines{w: w}
	n := resp.Node
	l.printf("Node:           %s\n", n.Name)
	l.printf("Cluster:        %s\n", n.Cluster)
	l.printf("Roles:          %s\n", orNone(strings.Join(n.Roles, ", ")))
	l.printf("In API:         %v\n", n.InApi)
	l.printf("Agent:          %s\n", AgentState(n.AgentState))
	if id := n.Identity; id != nil {
		l.printf("Hostname:       %s\n", id.Hostname)
		l.printf("Kernel:         %s\n", id.KernelVersion)
		l.printf("OS image:       %s\n", id.OsImage)
		l.printf("Boot ID:        %s\n", id.BootId)
		l.printf("Agent version:  %s\n", id.AgentVersion)
	}
	if n.LastSeen != nil {
		l.printf("Last seen:      %s\n", n.LastSeen.AsTime().UTC().Format("2006-01-02T15:04:05Z"))
	}
	if n.ClockSkew != nil && n.AgentState != v1.AgentState_AGENT_STATE_NO_AGENT {
		l.printf("Clock skew:     %s\n", Duration(n.ClockSkew.AsDuration()))
	}
	if n.KubeletVersion != "" {
		l.printf("Kubelet:        %s\n", n.KubeletVersion)
	}
	if k := n.Kubelet; k != nil {
		l.printf("Static pods:    %s (from %s)\n", k.StaticPodPath, k.StaticPodPathSource)
		if k.CgroupDriver != "" {
			l.printf("Cgroup driver:  %s\n", k.CgroupDriver)
		}
		if k.ContainerRuntimeEndpoint != "" {
			l.printf("CRI endpoint:   %s\n", k.ContainerRuntimeEndpoint)
		}
		for _, e := range k.Errors {
			l.printf("Kubelet error:  %s\n", e)
		}
	}
	l.printf("Processes:      %d\n", n.ProcessCount)
	l.printf("Manifests:      %d\n", n.ManifestCount)
	l.printf("Components:\n")
	for _, in := range resp.Components {
		pid := ""
		if in.Pid != 0 {
			pid = fmt.Sprintf(", pid %d", in.Pid)
		}
		l.printf("  %s (%s): %s, %s%s\n", in.Component, in.Implementation, How(in.How), orNone(Detail(in)), pid)
	}
	if n.AgentState != v1.AgentState_AGENT_STATE_NO_AGENT {
		l.printf("Certificates:\n")
		if len(certs) == 0 {
			l.printf("  <none>\n")
		}
		for _, nc := range certs {
			c := nc.Certificate
			if c.Error != "" {
				l.printf("  %s: error: %s; used by %s\n", c.Name(), c.Error, orNone(c.UsedBy()))
				continue
			}
			ca := ""
			if c.IsCa {
				ca = ", CA"
			}
			l.printf("  %s: %s%s, expires %s (%s); used by %s\n", c.Name(), c.Subject, ca,
				c.NotAfter.AsTime().UTC().Format(time.RFC3339), Left(c.NotAfter.AsTime(), now), orNone(c.UsedBy()))
		}
	}
	l.printf("Findings:\n")
	if len(findings) == 0 {
		l.printf("  <none>\n")
	}
	for _, f := range findings {
		l.printf("  [%s] %s\n", Severity(f.Severity), f.Summary)
	}
	return l.err
}

// Instances describes component instances one after the other, with their
// flags and evidence.
func Instances(w io.Writer, insts []*v1.ComponentInstance) error {
	l := &lines{w: w}
	for i, in := range insts {
		if i > 0 {
			l.printf("\n")
		}
		l.printf("Component:       %s\n", in.Component)
		l.printf("Implementation:  %s\n", in.Implementation)
		l.printf("Cluster:         %s\n", in.Cluster)
		l.printf("Node:            %s\n", in.Node)
		l.printf("How:             %s\n", How(in.How))
		if d := Detail(in); d != "" {
			l.printf("From:            %s\n", d)
		}
		if in.Pod != nil && in.Pod.Name != "" {
			l.printf("Pod:             %s/%s (container %s)\n", in.Pod.Namespace, in.Pod.Name, orNone(in.Container))
		}
		if in.Pid != 0 {
			l.printf("PID:             %d\n", in.Pid)
		}
		if in.Image != "" {
			l.printf("Image:           %s\n", in.Image)
		}
		if in.Version != "" {
			l.printf("Version:         %s\n", in.Version)
		}
		if in.RestartCount > 0 {
			l.printf("Restarts:        %d\n", in.RestartCount)
		}
		if n := Note(in); n != "" {
			l.printf("Note:            %s\n", n)
		}
		if len(in.Flags) > 0 {
			l.printf("Flags:\n")
			for _, fl := range in.Flags {
				l.printf("  --%s=%s\n", fl.Name, strings.Join(fl.Values, ","))
			}
		}
		l.printf("Evidence:\n")
		if l.err == nil {
			l.err = Evidence(w, "  ", in.Evidence)
		}
	}
	return l.err
}

// Where prints the nodes component instances run on, and how: the answer to
// `kubeatlas where`. A CLUSTER column appears when they span clusters.
func Where(w io.Writer, f Format, insts []*v1.ComponentInstance) error {
	clusters := map[string]bool{}
	for _, in := range insts {
		clusters[in.Cluster] = true
	}
	multi := len(clusters) > 1
	tw := newTab(w)
	hdr := []string{"NODE", "COMPONENT", "IMPLEMENTATION", "HOW", "FROM", "PID"}
	if multi {
		hdr = append([]string{"CLUSTER"}, hdr...)
	}
	if f == Wide {
		hdr = append(hdr, "VERSION", "IMAGE", "NOTE")
	}
	line(tw, hdr...)
	for _, in := range insts {
		pid := "-"
		if in.Pid != 0 {
			pid = fmt.Sprint(in.Pid)
		}
		cols := []string{in.Node, in.Component, in.Implementation, How(in.How), orNone(Detail(in)), pid}
		if multi {
			cols = append([]string{in.Cluster}, cols...)
		}
		if f == Wide {
			cols = append(cols, orNone(in.Version), orNone(in.Image), orNone(Note(in)))
		}
		line(tw, cols...)
	}
	return tw.Flush()
}
