package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newWatchCmd(o *options) *cobra.Command {
	var component string
	var noComponents, noFindings bool
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print the current components and findings, then every change as it happens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := o.format()
			if err != nil {
				return err
			}
			// A watch runs until interrupted: no answer deadline.
			o.timeout = 0
			w := cmd.OutOrStdout()
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				st, err := c.client.Watch(ctx, &v1.WatchRequest{Cluster: o.cluster, Component: component,
					SkipComponents: noComponents, SkipFindings: noFindings, View: f.ComponentView(), MaxBatch: 500})
				if err != nil {
					return err
				}
				for {
					ev, err := st.Recv()
					if err != nil {
						if errors.Is(err, io.EOF) || ctx.Err() != nil {
							return nil
						}
						return err
					}
					evs := ev.Batch
					if len(evs) == 0 {
						evs = []*v1.WatchResponse{ev}
					}
					for _, ev := range evs {
						if err := printEvent(w, f, ev); err != nil {
							return err
						}
					}
				}
			})
		},
	}
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	cmd.Flags().BoolVar(&noComponents, "no-components", false, "do not show component changes")
	cmd.Flags().BoolVar(&noFindings, "no-findings", false, "do not show finding changes")
	return cmd
}

func printEvent(w io.Writer, f printer.Format, ev *v1.WatchResponse) error {
	if f.Structured() {
		// One JSON object a line, so the stream can be piped.
		data, err := protojson.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(data))
		return err
	}
	typ := ev.Type.Word()
	switch o := ev.Object.(type) {
	case *v1.WatchResponse_Component:
		in := o.Component
		_, err := fmt.Fprintf(w, "%-8s component %s/%s %s (%s) %s %s\n", typ, in.Cluster, in.Node, in.Component, in.Implementation, printer.How(in.How), printer.Detail(in))
		return err
	case *v1.WatchResponse_Finding:
		x := o.Finding
		_, err := fmt.Fprintf(w, "%-8s finding   %s/%s [%s] %s\n", typ, x.Cluster, x.Node, printer.Severity(x.Severity), x.Summary)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", typ)
	return err
}
