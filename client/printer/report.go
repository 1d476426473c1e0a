package printer

import (
	"io"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Report prints, for every cluster, the answer table, the cluster mode with
// its evidence, and the findings: what `kubeatlas demo` shows.
func Report(w io.Writer, f Format, clusters *v1.ListClustersResponse, comps *v1.ListComponentsResponse, findings *v1.ListFindingsResponse) error {
	if f.Structured() {
		if err := Message(w, f, clusters); err != nil {
			return err
		}
		if err := Message(w, f, comps); err != nil {
			return err
		}
		return Message(w, f, findings)
	}
	nodes := map[string]int{}
	for _, cl := range clusters.Clusters {
		nodes[cl.Name] = int(cl.NodeCount)
	}
	l := &lines{w: w}
	for i, cl := range clusters.Clusters {
		if i > 0 {
			l.printf("\n")
		}
		l.printf("Cluster %s: %d nodes, control plane on %s, Kubernetes %s\n\n", cl.Name, cl.NodeCount,
			orNone(strings.Join(cl.ControlPlaneNodes, ", ")), orNone(cl.KubernetesVersion))
		var mine []*v1.ComponentInstance
		for _, in := range comps.Components {
			if in.Cluster == cl.Name {
				mine = append(mine, in)
			}
		}
		if l.err != nil {
			return l.err
		}
		if err := AnswerTable(w, Answer(mine), nodes, false); err != nil {
			return err
		}
		l.printf("\nCluster mode: %s\n", cl.Mode.Explained())
		if l.err != nil {
			return l.err
		}
		if err := Evidence(w, "  ", topEvidence(cl.ModeEvidence)); err != nil {
			return err
		}
		var theirs []*v1.Finding
		for _, x := range findings.Findings {
			if x.Cluster == cl.Name {
				theirs = append(theirs, x)
			}
		}
		l.printf("\nFindings (%d):\n", len(theirs))
		if l.err != nil {
			return l.err
		}
		if err := Findings(w, Table, &v1.ListFindingsResponse{Findings: theirs}); err != nil {
			return err
		}
	}
	return l.err
}

// topEvidence keeps the summary lines and the manifest, mirror and cgroup
// facts behind them, leaving out repeated process details.
func topEvidence(evs []*v1.Evidence) []*v1.Evidence {
	var out []*v1.Evidence
	for _, e := range evs {
		switch e.Kind {
		case v1.EvidenceKind_EVIDENCE_KIND_PROCESS, v1.EvidenceKind_EVIDENCE_KIND_POD:
			continue
		}
		out = append(out, e)
	}
	return out
}
