package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

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
					describeNode(w, resp, findings.Findings)
					return nil
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
					for i, in := range resp.Components {
						if i > 0 {
							fmt.Fprintln(w)
						}
						describeInstance(w, in)
					}
					return nil
				case "cluster", "clusters":
					resp, err := c.client.GetCluster(ctx, &v1.GetClusterRequest{Name: args[1]})
					if err != nil {
						return err
					}
					if f.Structured() {
						return printer.Message(w, f, resp)
					}
					describeCluster(w, resp.Cluster)
					return nil
				}
				return fmt.Errorf("cannot describe %q: choose node, component or cluster", args[0])
			})
		},
	}
	return cmd
}

func describeCluster(w io.Writer, c *v1.Cluster) {
	fmt.Fprintf(w, "Cluster:        %s\n", c.Name)
	if c.Uid != "" {
		fmt.Fprintf(w, "UID:            %s (kube-system namespace)\n", c.Uid)
	}
	fmt.Fprintf(w, "Mode:           %s\n", printer.Mode(c.Mode))
	fmt.Fprintf(w, "Control plane:  %s\n", orNone(strings.Join(c.ControlPlaneNodes, ", ")))
	fmt.Fprintf(w, "Version:        %s\n", orNone(c.KubernetesVersion))
	fmt.Fprintf(w, "Nodes:          %d (%d reporting)\n", c.NodeCount, c.ReportingNodeCount)
	fmt.Fprintf(w, "Findings:       %d\n", c.FindingCount)
	fmt.Fprintf(w, "Evidence for the mode:\n")
	printer.Evidence(w, "  ", c.ModeEvidence)
}

func describeNode(w io.Writer, resp *v1.GetNodeResponse, findings []*v1.Finding) {
	n := resp.Node
	fmt.Fprintf(w, "Node:           %s\n", n.Name)
	fmt.Fprintf(w, "Cluster:        %s\n", n.Cluster)
	fmt.Fprintf(w, "Roles:          %s\n", orNone(strings.Join(n.Roles, ", ")))
	fmt.Fprintf(w, "In API:         %v\n", n.InApi)
	fmt.Fprintf(w, "Agent:          %s\n", printer.AgentState(n.AgentState))
	if id := n.Identity; id != nil {
		fmt.Fprintf(w, "Hostname:       %s\n", id.Hostname)
		fmt.Fprintf(w, "Kernel:         %s\n", id.KernelVersion)
		fmt.Fprintf(w, "OS image:       %s\n", id.OsImage)
		fmt.Fprintf(w, "Boot ID:        %s\n", id.BootId)
		fmt.Fprintf(w, "Agent version:  %s\n", id.AgentVersion)
	}
	if n.LastSeen != nil {
		fmt.Fprintf(w, "Last seen:      %s\n", n.LastSeen.AsTime().UTC().Format("2006-01-02T15:04:05Z"))
	}
	if n.ClockSkew != nil && n.AgentState != v1.AgentState_AGENT_STATE_NO_AGENT {
		fmt.Fprintf(w, "Clock skew:     %s\n", printer.Duration(n.ClockSkew.AsDuration()))
	}
	if n.KubeletVersion != "" {
		fmt.Fprintf(w, "Kubelet:        %s\n", n.KubeletVersion)
	}
	if k := n.Kubelet; k != nil {
		fmt.Fprintf(w, "Static pods:    %s (from %s)\n", k.StaticPodPath, k.StaticPodPathSource)
		if k.CgroupDriver != "" {
			fmt.Fprintf(w, "Cgroup driver:  %s\n", k.CgroupDriver)
		}
		if k.ContainerRuntimeEndpoint != "" {
			fmt.Fprintf(w, "CRI endpoint:   %s\n", k.ContainerRuntimeEndpoint)
		}
		for _, e := range k.Errors {
			fmt.Fprintf(w, "Kubelet error:  %s\n", e)
		}
	}
	fmt.Fprintf(w, "Processes:      %d\n", n.ProcessCount)
	fmt.Fprintf(w, "Manifests:      %d\n", n.ManifestCount)
	fmt.Fprintf(w, "Components:\n")
	for _, in := range resp.Components {
		pid := ""
		if in.Pid != 0 {
			pid = fmt.Sprintf(", pid %d", in.Pid)
		}
		fmt.Fprintf(w, "  %s (%s): %s, %s%s\n", in.Component, in.Implementation, printer.How(in.How), orNone(printer.Detail(in)), pid)
	}
	fmt.Fprintf(w, "Findings:\n")
	if len(findings) == 0 {
		fmt.Fprintf(w, "  <none>\n")
	}
	for _, f := range findings {
		fmt.Fprintf(w, "  [%s] %s\n", printer.Severity(f.Severity), f.Summary)
	}
}

func describeInstance(w io.Writer, in *v1.ComponentInstance) {
	fmt.Fprintf(w, "Component:       %s\n", in.Component)
	fmt.Fprintf(w, "Implementation:  %s\n", in.Implementation)
	fmt.Fprintf(w, "Cluster:         %s\n", in.Cluster)
	fmt.Fprintf(w, "Node:            %s\n", in.Node)
	fmt.Fprintf(w, "How:             %s\n", printer.How(in.How))
	if d := printer.Detail(in); d != "" {
		fmt.Fprintf(w, "From:            %s\n", d)
	}
	if in.Pod != nil && in.Pod.Name != "" {
		fmt.Fprintf(w, "Pod:             %s/%s (container %s)\n", in.Pod.Namespace, in.Pod.Name, orNone(in.Container))
	}
	if in.Pid != 0 {
		fmt.Fprintf(w, "PID:             %d\n", in.Pid)
	}
	if in.Image != "" {
		fmt.Fprintf(w, "Image:           %s\n", in.Image)
	}
	if in.Version != "" {
		fmt.Fprintf(w, "Version:         %s\n", in.Version)
	}
	if in.RestartCount > 0 {
		fmt.Fprintf(w, "Restarts:        %d\n", in.RestartCount)
	}
	if n := printer.Note(in); n != "" {
		fmt.Fprintf(w, "Note:            %s\n", n)
	}
	if len(in.Flags) > 0 {
		fmt.Fprintf(w, "Flags:\n")
		for _, fl := range in.Flags {
			fmt.Fprintf(w, "  --%s=%s\n", fl.Name, strings.Join(fl.Values, ","))
		}
	}
	fmt.Fprintf(w, "Evidence:\n")
	printer.Evidence(w, "  ", in.Evidence)
}
