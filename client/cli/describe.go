package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newDescribeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe node|component|cluster NAME",
		Short: "Show one node, component or cluster in detail, with the evidence behind each answer",
		Args:  cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"node", "component", "cluster"}, cobra.ShellCompDirectiveNoFileComp
			}
			if len(args) == 1 && args[0] == "component" {
				return v1.Components, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := o.format()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				switch args[0] {
				case "node", "nodes":
					resp, err := c.client.GetNode(ctx, &v1.GetNodeRequest{Cluster: o.cluster, Name: args[1]})
					if err != nil {
						return err
					}
					if f.Structured() {
						return printer.Message(w, f, resp)
					}
					findings, err := listFindings(ctx, c, &v1.ListFindingsRequest{Cluster: resp.Node.Cluster, Node: resp.Node.Name})
					if err != nil {
						return err
					}
					certs, err := listCertificates(ctx, c, &v1.ListCertificatesRequest{Cluster: resp.Node.Cluster, Node: resp.Node.Name})
					if err != nil {
						return err
					}
					return printer.Node(w, resp, findings.Findings, certs.Certificates, o.now())
				case "component", "components":
					req := &v1.ListComponentsRequest{Cluster: o.cluster}
					if v1.ComponentRank(args[1]) < len(v1.Components) {
						req.Component = args[1]
					} else {
						req.Implementation = args[1]
					}
					resp, err := listComponents(ctx, c, req)
					if err != nil {
						return err
					}
					if f.Structured() {
						return printer.Message(w, f, resp)
					}
					if len(resp.Components) == 0 {
						return fmt.Errorf("not found: no %s runs on any known node", args[1])
					}
					return printer.Instances(w, resp.Components)
				case "cluster", "clusters":
					resp, err := c.client.GetCluster(ctx, &v1.GetClusterRequest{Name: args[1]})
					if err != nil {
						return err
					}
					if f.Structured() {
						return printer.Message(w, f, resp)
					}
					return printer.Cluster(w, resp.Cluster)
				}
				return fmt.Errorf("cannot describe %q: choose node, component or cluster", args[0])
			})
		},
	}
	return cmd
}
