// Package printer prints kubeatlas answers as tables (kubectl-like), wide
// tables, JSON (the protojson of the response) or YAML.
package printer

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/kubeatlas/kubeatlas/internal/stablejson"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Format is an output format.
type Format string

// Formats.
const (
	Table Format = "table"
	Wide  Format = "wide"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// ParseFormat checks an -o value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Table, Wide, JSON, YAML:
		return f, nil
	case "":
		return Table, nil
	}
	return "", fmt.Errorf("unknown output format %q: use table, wide, json or yaml", s)
}

// ComponentView is the least of a component instance that f prints: a
// plain table needs neither flags nor evidence.
func (f Format) ComponentView() v1.ComponentView {
	if f == Table {
		return v1.ComponentView_COMPONENT_VIEW_BASIC
	}
	return v1.ComponentView_COMPONENT_VIEW_FULL
}

// Structured reports whether f prints the message itself.
func (f Format) Structured() bool { return f == JSON || f == YAML }

// Message prints a response as JSON or YAML: the protojson of the message,
// indented the same way every time (protojson's own spacing varies on purpose).
func Message(w io.Writer, f Format, m proto.Message) error {
	data, err := stablejson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	if f == YAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }

// line writes one row of a table as it is.
func line(tw io.Writer, cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }

// row writes one row of a table, <none> for empty cells.
func row(tw io.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "<none>"
		}
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// Mode says a cluster mode in words.
func Mode(m v1.ClusterMode) string { return m.Word() }

// Clusters prints clusters.
func Clusters(w io.Writer, f Format, resp *v1.ListClustersResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"NAME", "MODE", "CONTROL-PLANE", "NODES", "REPORTING", "FINDINGS", "VERSION"}
	// A fleet view says who publishes each cluster and how fresh it is.
	fleet := false
	for _, c := range resp.Clusters {
		fleet = fleet || c.Publisher != ""
	}
	if fleet {
		hdr = append(hdr, "FRESHNESS", "PUBLISHER", "UPDATED")
	}
	if f == Wide {
		hdr = append(hdr, "PROVIDER", "DATASTORE", "API", "UID")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, c := range resp.Clusters {
		cols := []string{c.Name, Mode(c.Mode), strings.Join(c.ControlPlaneNodes, ","), itoa(c.NodeCount), itoa(c.ReportingNodeCount), itoa(c.FindingCount), c.KubernetesVersion}
		if fleet {
			updated := ""
			if c.UpdatedAt != nil {
				updated = c.UpdatedAt.AsTime().UTC().Format(time.RFC3339)
			}
			cols = append(cols, c.Freshness.Word(), c.Publisher, updated)
		}
		if f == Wide {
			api := "no"
			if c.ApiConnected {
				api = "yes"
			}
			ds := ""
			if c.Datastore != nil {
				ds = c.Datastore.Implementation
			}
			cols = append(cols, c.Provider, ds, api, c.Uid)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// AgentState says an agent state in words.
func AgentState(s v1.AgentState) string { return s.Word() }

// Nodes prints nodes.
func Nodes(w io.Writer, f Format, resp *v1.ListNodesResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"CLUSTER", "NAME", "ROLES", "AGENT", "CLOCK-SKEW", "PROCESSES", "MANIFESTS"}
	if f == Wide {
		hdr = append(hdr, "KUBELET", "INTERNAL-IP", "KERNEL", "OS-IMAGE", "IN-API")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, n := range resp.Nodes {
		skew := ""
		if n.ClockSkew != nil && n.AgentState != v1.AgentState_AGENT_STATE_NO_AGENT {
			skew = Duration(n.ClockSkew.AsDuration())
		}
		cols := []string{n.Cluster, n.Name, strings.Join(n.Roles, ","), AgentState(n.AgentState), skew, itoa(n.ProcessCount), itoa(n.ManifestCount)}
		if f == Wide {
			inAPI := "no"
			if n.InApi {
				inAPI = "yes"
			}
			cols = append(cols, n.KubeletVersion, strings.Join(n.InternalIps, ","), n.GetIdentity().GetKernelVersion(), n.GetIdentity().GetOsImage(), inAPI)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Duration prints a duration the way kubectl prints ages, keeping the sign.
func Duration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < time.Millisecond:
		return "0s"
	case d < time.Second:
		return sign + d.Round(time.Millisecond).String()
	case d < time.Minute:
		return sign + d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%s%dm%ds", sign, int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%s%dh%dm", sign, int(d.Hours()), int(d.Minutes())%60)
}

// How says a deployment kind in words.
func How(h v1.DeploymentKind) string { return h.Words() }

// Detail says where an instance comes from: its owner, systemd unit or manifest.
func Detail(in *v1.ComponentInstance) string {
	switch {
	case in.How == v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD:
		s := in.ManifestPath
		if in.Pod != nil && in.Pod.Name != "" {
			if s != "" {
				s += ", "
			}
			s += "mirror " + in.Pod.Namespace + "/" + in.Pod.Name
		}
		return s
	case in.Owner != nil && in.Owner.Kind != "":
		return in.Owner.Kind + " " + in.Owner.Namespace + "/" + in.Owner.Name
	case in.SystemdUnit != "":
		return "systemd unit " + in.SystemdUnit
	case in.Pod != nil && in.Pod.Name != "":
		return "pod " + in.Pod.Namespace + "/" + in.Pod.Name
	}
	return ""
}

// Note flags what an operator should know about an instance.
func Note(in *v1.ComponentInstance) string {
	var notes []string
	for _, e := range in.Evidence {
		if e.Attributes["used_by_kubelet"] == "false" {
			notes = append(notes, "not used by Kubernetes")
		}
	}
	if !in.HasProcess {
		notes = append(notes, "no process seen")
	}
	return strings.Join(notes, "; ")
}

func pid(p int32) string {
	if p == 0 {
		return "-"
	}
	return strconv.Itoa(int(p))
}

// Components prints component instances.
func Components(w io.Writer, f Format, resp *v1.ListComponentsResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"CLUSTER", "NODE", "COMPONENT", "IMPLEMENTATION", "HOW", "FROM", "PID"}
	if f == Wide {
		hdr = append(hdr, "VERSION", "CONTAINER-ID", "IMAGE", "RESTARTS", "NOTE")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, in := range resp.Components {
		cols := []string{in.Cluster, in.Node, in.Component, in.Implementation, How(in.How), Detail(in), pid(in.Pid)}
		if f == Wide {
			cid := safetext.Cut(in.ContainerId, 13)
			cols = append(cols, in.Version, cid, in.Image, itoa(in.RestartCount), Note(in))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Processes prints processes.
func Processes(w io.Writer, f Format, resp *v1.ListProcessesResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"CLUSTER", "NODE", "PID", "PPID", "USER", "COMPONENTS", "COMMAND"}
	if f == Wide {
		hdr = append(hdr, "CGROUP")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, np := range resp.Processes {
		p := np.Process
		var comps []string
		for _, c := range p.Components {
			comps = append(comps, c.Component)
		}
		cmd := strings.Join(p.Argv, " ")
		if f != Wide && len(cmd) > 60 {
			cmd = safetext.Cut(cmd, 57) + "..."
		}
		if cmd == "" {
			cmd = "[kernel thread]"
		}
		cols := []string{np.Cluster, np.Node, strconv.Itoa(int(p.Pid)), strconv.Itoa(int(p.Ppid)), p.User, strings.Join(comps, ","), cmd}
		if f == Wide {
			cols = append(cols, p.CgroupPath)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Manifests prints static pod manifests.
func Manifests(w io.Writer, f Format, resp *v1.ListManifestsResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"CLUSTER", "NODE", "PATH", "POD", "MIRROR-POD", "PIDS", "ERROR"}
	if f == Wide {
		hdr = append(hdr, "SHA256", "IMAGES")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, nm := range resp.Manifests {
		m := nm.Manifest
		var pids, images []string
		for _, p := range nm.Pids {
			pids = append(pids, strconv.Itoa(int(p)))
		}
		for _, c := range m.Containers {
			images = append(images, c.Image)
		}
		pod := ""
		if m.PodName != "" {
			pod = m.PodNamespace + "/" + m.PodName
		}
		cols := []string{nm.Cluster, nm.Node, m.Path, pod, nm.MirrorPod, strings.Join(pids, ","), m.ParseError}
		if f == Wide {
			sum := safetext.Cut(m.Sha256, 12)
			cols = append(cols, sum, strings.Join(images, ","))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Certificates prints certificates, with how long each has left at now.
func Certificates(w io.Writer, f Format, resp *v1.ListCertificatesResponse, now time.Time) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"CLUSTER", "NODE", "CERTIFICATE", "SUBJECT", "NOT-AFTER", "LEFT", "CA", "USED-BY"}
	if f == Wide {
		hdr = append(hdr, "ISSUER", "ISSUER-ON-NODE", "SANS", "SERIAL")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, nc := range resp.Certificates {
		c := nc.Certificate
		if c.Error != "" {
			row(tw, nc.Cluster, nc.Node, c.Name(), "error: "+c.Error, "", "", "", c.UsedBy())
			continue
		}
		ca := "no"
		if c.IsCa {
			ca = "yes"
		}
		cols := []string{nc.Cluster, nc.Node, c.Name(), c.Subject, c.NotAfter.AsTime().UTC().Format(time.RFC3339),
			Left(c.NotAfter.AsTime(), now), ca, c.UsedBy()}
		if f == Wide {
			onNode := "no"
			if c.IssuerOnNode {
				onNode = "yes"
			}
			sans := append(append([]string(nil), c.DnsNames...), c.IpAddresses...)
			cols = append(cols, c.Issuer, onNode, strings.Join(sans, ","), c.Serial)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Left says how long remains until t: "364d", "20h", or "expired 3d ago".
func Left(t, now time.Time) string {
	d := t.Sub(now)
	say := func(d time.Duration) string {
		if d >= 48*time.Hour {
			return strconv.Itoa(int(d.Hours()/24)) + "d"
		}
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	if d < 0 {
		return "expired " + say(-d) + " ago"
	}
	return say(d)
}

// Severity says a severity in words.
func Severity(s v1.Severity) string { return s.Word() }

// FindingKind says a finding kind in words.
func FindingKind(k v1.FindingKind) string { return k.Word() }

// Findings prints findings.
func Findings(w io.Writer, f Format, resp *v1.ListFindingsResponse) error {
	if f.Structured() {
		return Message(w, f, resp)
	}
	tw := newTab(w)
	hdr := []string{"SEVERITY", "CLUSTER", "NODE", "KIND", "SUMMARY"}
	if f == Wide {
		hdr = append(hdr, "EVIDENCE")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, x := range resp.Findings {
		cols := []string{Severity(x.Severity), x.Cluster, x.Node, FindingKind(x.Kind), x.Summary}
		if f == Wide {
			var ev []string
			for _, e := range x.Evidence {
				ev = append(ev, e.Summary)
			}
			cols = append(cols, strings.Join(ev, "; "))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// AnswerRow is one line of the answer table: a component run one way, and
// the nodes it runs on.
type AnswerRow struct {
	Cluster, Component, Implementation, How, From, Note string
	Nodes                                               []string
}

// Answer groups instances into the answer table: component × where × how.
func Answer(insts []*v1.ComponentInstance) []AnswerRow {
	idx := map[string]int{}
	var rows []AnswerRow
	for _, in := range insts {
		from := Detail(in)
		if in.How == v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD {
			from = "manifest + mirror pod"
			if in.Pod == nil || in.Pod.Name == "" {
				from = "manifest"
			}
		}
		k := strings.Join([]string{in.Cluster, in.Component, in.Implementation, How(in.How), from, Note(in)}, "\x00")
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			rows = append(rows, AnswerRow{Cluster: in.Cluster, Component: in.Component, Implementation: in.Implementation,
				How: How(in.How), From: from, Note: Note(in)})
		}
		rows[i].Nodes = append(rows[i].Nodes, in.Node)
	}
	sort.SliceStable(rows, func(a, b int) bool {
		if rows[a].Cluster != rows[b].Cluster {
			return rows[a].Cluster < rows[b].Cluster
		}
		return v1.ComponentRank(rows[a].Component) < v1.ComponentRank(rows[b].Component)
	})
	return rows
}

// Where says which nodes a row covers: "all 6 nodes", "test (2 replicas)", "a, b".
func (r AnswerRow) Where(clusterNodes int) string {
	count := map[string]int{}
	var order []string
	for _, n := range r.Nodes {
		if count[n] == 0 {
			order = append(order, n)
		}
		count[n]++
	}
	sort.Strings(order)
	if clusterNodes > 1 && len(order) == clusterNodes && len(r.Nodes) == len(order) {
		return fmt.Sprintf("all %d nodes", clusterNodes)
	}
	parts := make([]string, 0, len(order))
	for _, n := range order {
		if count[n] > 1 {
			parts = append(parts, fmt.Sprintf("%s (%d replicas)", n, count[n]))
		} else {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, ", ")
}

// AnswerTable prints the answer table. clusterNodes gives each cluster's node count.
func AnswerTable(w io.Writer, rows []AnswerRow, clusterNodes map[string]int, withCluster bool) error {
	tw := newTab(w)
	hdr := []string{"COMPONENT", "IMPLEMENTATION", "WHERE", "HOW", "FROM"}
	if withCluster {
		hdr = append([]string{"CLUSTER"}, hdr...)
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, r := range rows {
		from := r.From
		if r.Note != "" {
			from += " (" + r.Note + ")"
		}
		cols := []string{r.Component, r.Implementation, r.Where(clusterNodes[r.Cluster]), r.How, from}
		if withCluster {
			cols = append([]string{r.Cluster}, cols...)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// Evidence prints evidence lines with an indent.
func Evidence(w io.Writer, indent string, evs []*v1.Evidence) error {
	l := &lines{w: w}
	for _, e := range evs {
		l.printf("%s- [%s] %s\n", indent, e.Kind.Words(), e.Summary)
	}
	return l.err
}
