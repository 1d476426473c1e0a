package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/client/printer"
	seedcluster "github.com/kubeatlas/kubeatlas/examples/seed-cluster"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newDemoCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Explain the bundled reference cluster (six kubeadm nodes): what runs where, how, and what to look at",
		Long: `Explain the bundled reference cluster: a kubeadm 1.27 cluster with one control-plane
node and five workers, taken as an offline bundle (API objects plus one agent
snapshot per node). It needs nothing but this binary.

Run the same questions yourself with: kubeatlas --bundle examples/seed-cluster get components`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.embedded = seedcluster.FS
			f, err := o.format()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				return report(ctx, w, f, c, o.cluster)
			})
		},
	}
}

// report prints, for every cluster, the answer table, the cluster mode with
// its evidence, and the findings.
func report(ctx context.Context, w io.Writer, f printer.Format, c *conn, only string) error {
	clusters, err := listClusters(ctx, c, only)
	if err != nil {
		return err
	}
	comps, err := listComponents(ctx, c, &v1.ListComponentsRequest{Cluster: only})
	if err != nil {
		return err
	}
	findings, err := listFindings(ctx, c, &v1.ListFindingsRequest{Cluster: only})
	if err != nil {
		return err
	}
	if f.Structured() {
		if err := printer.Message(w, f, clusters); err != nil {
			return err
		}
		if err := printer.Message(w, f, comps); err != nil {
			return err
		}
		return printer.Message(w, f, findings)
	}
	nodes := map[string]int{}
	for _, cl := range clusters.Clusters {
		nodes[cl.Name] = int(cl.NodeCount)
	}
	for i, cl := range clusters.Clusters {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Cluster %s: %d nodes, control plane on %s, Kubernetes %s\n\n", cl.Name, cl.NodeCount,
			orNone(joinComma(cl.ControlPlaneNodes)), orNone(cl.KubernetesVersion))
		var mine []*v1.ComponentInstance
		for _, in := range comps.Components {
			if in.Cluster == cl.Name {
				mine = append(mine, in)
			}
		}
		if err := printer.AnswerTable(w, printer.Answer(mine), nodes, false); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nCluster mode: %s\n", cl.Mode.Explained())
		printer.Evidence(w, "  ", topEvidence(cl.ModeEvidence))
		var theirs []*v1.Finding
		for _, x := range findings.Findings {
			if x.Cluster == cl.Name {
				theirs = append(theirs, x)
			}
		}
		fmt.Fprintf(w, "\nFindings (%d):\n", len(theirs))
		if err := printer.Findings(w, printer.Table, &v1.ListFindingsResponse{Findings: theirs}); err != nil {
			return err
		}
	}
	return nil
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
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
