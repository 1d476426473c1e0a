package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newWhereCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "where COMPONENT",
		Short: "Show the nodes a component runs on, and how",
		Long: `Show the nodes a component runs on, and how. COMPONENT is one of
` + strings.Join(v1.Components, ", ") + `,
or an implementation such as flannel, coredns, containerd or dockerd.`,
		Example: "  kubeatlas where kube-proxy\n  kubeatlas --cluster prod where etcd -o wide",
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return v1.Components, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := o.format()
			if err != nil {
				return err
			}
			req := &v1.ListComponentsRequest{Cluster: o.cluster, View: f.ComponentView()}
			if v1.ComponentRank(args[0]) < len(v1.Components) {
				req.Component = args[0]
			} else {
				req.Implementation = args[0]
			}
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				if args[0] == v1.ComponentDatastore {
					// Every cluster has one, served by etcd members,
					// a kine process, or from outside: the clusters say.
					clusters, err := listClusters(ctx, c, o.cluster, "")
					if err != nil {
						return err
					}
					return printer.Datastores(cmd.OutOrStdout(), f, clusters)
				}
				resp, err := listComponents(ctx, c, req)
				if err != nil {
					return err
				}
				if len(resp.Components) == 0 && !f.Structured() {
					return fmt.Errorf("not found: no %s runs on any known node", args[0])
				}
				if f.Structured() {
					return printer.Message(cmd.OutOrStdout(), f, resp)
				}
				return printer.Where(cmd.OutOrStdout(), f, resp.Components)
			})
		},
	}
}
