package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/client/printer"
	seedcluster "github.com/kubeatlas/kubeatlas/examples/seed-cluster"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newDemoCmd(o *options) *cobra.Command {
	var uiAddr string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Explain the bundled reference cluster (six kubeadm nodes): what runs where, how, and what to look at",
		Long: `Explain the bundled reference cluster: a kubeadm 1.27 cluster with one control-plane
node and five workers, taken as an offline bundle (API objects plus one agent
snapshot per node). It needs nothing but this binary.

Run the same questions yourself with: kubeatlas --bundle examples/seed-cluster get components
With --ui ADDR, the demo then serves the web view of the same cluster at http://ADDR/ui/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.embedded = seedcluster.FS
			f, err := o.format()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			err = o.run(cmd, func(ctx context.Context, c *conn) error {
				return report(ctx, w, f, c, o.cluster)
			})
			if err != nil || uiAddr == "" {
				return err
			}
			return o.serveUI(cmd, uiAddr, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&uiAddr, "ui", "", "then serve the web view of the reference cluster here, e.g. "+DefaultUIAddr)
	return cmd
}

// report prints, for every cluster, the answer table, the cluster mode with
// its evidence, and the findings.
func report(ctx context.Context, w io.Writer, f printer.Format, c *conn, only string) error {
	clusters, err := listClusters(ctx, c, only, "")
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
	return printer.Report(w, f, clusters, comps, findings)
}
