package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kubeatlas/kubeatlas/client/printer"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

var getKinds = []string{"clusters", "nodes", "components", "processes", "manifests", "findings", "versions", "certificates"}

func newGetCmd(o *options) *cobra.Command {
	var node, component, how, impl string
	var componentsOnly bool
	var filters []string
	var expiring string
	cmd := &cobra.Command{
		Use:       "get clusters|nodes|components|processes|manifests|findings|versions|certificates",
		Short:     "List clusters, nodes, component instances, processes, static pod manifests, findings, certificates, or each cluster's versions",
		Args:      cobra.ExactArgs(1),
		ValidArgs: getKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := o.format()
			if err != nil {
				return err
			}
			kind, err := canonicalKind(args[0])
			if err != nil {
				return err
			}
			expr := orFilters(filters)
			var within time.Duration
			if expiring != "" {
				if kind != "certificates" {
					return fmt.Errorf("--expiring-within is for certificates, not %s", kind)
				}
				if within, err = parseDays(expiring); err != nil {
					return fmt.Errorf("--expiring-within: %w", err)
				}
			}
			w := cmd.OutOrStdout()
			return o.run(cmd, func(ctx context.Context, c *conn) error {
				switch kind {
				case "clusters":
					resp, err := listClusters(ctx, c, o.cluster, expr)
					if err != nil {
						return err
					}
					return printer.Clusters(w, f, resp)
				case "nodes":
					resp, err := listNodes(ctx, c, o.cluster, expr)
					if err != nil {
						return err
					}
					if node != "" {
						var keep []*v1.Node
						for _, n := range resp.Nodes {
							if n.Name == node {
								keep = append(keep, n)
							}
						}
						resp.Nodes = keep
					}
					return printer.Nodes(w, f, resp)
				case "components":
					h, err := parseHow(how)
					if err != nil {
						return err
					}
					resp, err := listComponents(ctx, c, &v1.ListComponentsRequest{Cluster: o.cluster, Node: node, Component: component, How: h, Implementation: impl, View: f.ComponentView(), Filter: expr})
					if err != nil {
						return err
					}
					return printer.Components(w, f, resp)
				case "processes":
					resp, err := listProcesses(ctx, c, &v1.ListProcessesRequest{Cluster: o.cluster, Node: node, Component: component, ComponentsOnly: componentsOnly, Filter: expr})
					if err != nil {
						return err
					}
					return printer.Processes(w, f, resp)
				case "versions":
					clusters, err := listClusters(ctx, c, o.cluster, "")
					if err != nil {
						return err
					}
					comps, err := listComponents(ctx, c, &v1.ListComponentsRequest{Cluster: o.cluster, Node: node, Filter: expr})
					if err != nil {
						return err
					}
					return printer.Versions(w, f, clusters, comps)
				case "certificates":
					req := &v1.ListCertificatesRequest{Cluster: o.cluster, Node: node, Filter: expr}
					if expiring != "" {
						req.ExpiringWithin = durationpb.New(within)
					}
					resp, err := listCertificates(ctx, c, req)
					if err != nil {
						return err
					}
					return printer.Certificates(w, f, resp, o.now())
				case "manifests":
					resp, err := listManifests(ctx, c, &v1.ListManifestsRequest{Cluster: o.cluster, Node: node, Filter: expr})
					if err != nil {
						return err
					}
					return printer.Manifests(w, f, resp)
				default:
					resp, err := listFindings(ctx, c, &v1.ListFindingsRequest{Cluster: o.cluster, Node: node, Filter: expr})
					if err != nil {
						return err
					}
					return printer.Findings(w, f, resp)
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&node, "node", "", "only this node")
	fl.StringVar(&component, "component", "", "only this component (components, processes)")
	fl.StringVar(&how, "how", "", "only instances run this way: host-process, static-pod, daemonset, deployment, statefulset, replicaset, job, bare-pod (components)")
	fl.StringVar(&impl, "implementation", "", "only this implementation, e.g. flannel (components)")
	fl.BoolVar(&componentsOnly, "components-only", false, "only processes that host a component (processes)")
	fl.StringVar(&expiring, "expiring-within", "", "only certificates that expire within this long, or have expired: 30d, 720h (certificates)")
	fl.StringArrayVar(&filters, "filter", nil, `a CEL expression over each row, named for the kind: cluster, node, component, process, manifest, finding or certificate; e.g. 'component.implementation == "flannel"' or 'component.flags["anonymous-auth"] == "true"'. Repeated filters are ORed`)
	_ = cmd.RegisterFlagCompletionFunc("component", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return v1.Components, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("filter", completeFilter)
	return cmd
}

func canonicalKind(s string) (string, error) {
	s = strings.ToLower(s)
	for _, k := range getKinds {
		if s == k || s == strings.TrimSuffix(k, "s") {
			return k, nil
		}
	}
	return "", fmt.Errorf("cannot get %q: choose one of %s", s, strings.Join(getKinds, ", "))
}

func parseHow(s string) (v1.DeploymentKind, error) {
	if s == "" {
		return v1.DeploymentKind_DEPLOYMENT_KIND_UNSPECIFIED, nil
	}
	name := "DEPLOYMENT_KIND_" + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if v, ok := v1.DeploymentKind_value[name]; ok && v != 0 {
		return v1.DeploymentKind(v), nil
	}
	return 0, fmt.Errorf("--how %q: use host-process, static-pod, daemonset, deployment, statefulset, replicaset, job or bare-pod", s)
}

// The list helpers page through every result.

func listClusters(ctx context.Context, c *conn, only, filter string) (*v1.ListClustersResponse, error) {
	if only != "" && filter == "" {
		resp, err := c.client.GetCluster(ctx, &v1.GetClusterRequest{Name: only})
		if err != nil {
			return nil, err
		}
		return &v1.ListClustersResponse{Clusters: []*v1.Cluster{resp.Cluster}}, nil
	}
	clusters, err := pageAll(func(tok string) ([]*v1.Cluster, string, error) {
		resp, err := c.client.ListClusters(ctx, &v1.ListClustersRequest{PageSize: 1000, PageToken: tok, Filter: filter})
		return resp.GetClusters(), resp.GetNextPageToken(), err
	})
	if only != "" {
		var keep []*v1.Cluster
		for _, cl := range clusters {
			if cl.Name == only {
				keep = append(keep, cl)
			}
		}
		clusters = keep
	}
	return &v1.ListClustersResponse{Clusters: clusters}, err
}

// pageAll calls fetch with each next page token until the last page.
func pageAll[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for {
		items, next, err := fetch(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

func listNodes(ctx context.Context, c *conn, cluster, filter string) (*v1.ListNodesResponse, error) {
	nodes, err := pageAll(func(tok string) ([]*v1.Node, string, error) {
		resp, err := c.client.ListNodes(ctx, &v1.ListNodesRequest{Cluster: cluster, PageSize: 1000, PageToken: tok, Filter: filter})
		return resp.GetNodes(), resp.GetNextPageToken(), err
	})
	return &v1.ListNodesResponse{Nodes: nodes}, err
}

func listComponents(ctx context.Context, c *conn, req *v1.ListComponentsRequest) (*v1.ListComponentsResponse, error) {
	req.PageSize = 1000
	comps, err := pageAll(func(tok string) ([]*v1.ComponentInstance, string, error) {
		req.PageToken = tok
		resp, err := c.client.ListComponents(ctx, req)
		return resp.GetComponents(), resp.GetNextPageToken(), err
	})
	return &v1.ListComponentsResponse{Components: comps}, err
}

func listProcesses(ctx context.Context, c *conn, req *v1.ListProcessesRequest) (*v1.ListProcessesResponse, error) {
	req.PageSize = 1000
	procs, err := pageAll(func(tok string) ([]*v1.NodeProcess, string, error) {
		req.PageToken = tok
		resp, err := c.client.ListProcesses(ctx, req)
		return resp.GetProcesses(), resp.GetNextPageToken(), err
	})
	return &v1.ListProcessesResponse{Processes: procs}, err
}

func listManifests(ctx context.Context, c *conn, req *v1.ListManifestsRequest) (*v1.ListManifestsResponse, error) {
	req.PageSize = 1000
	mans, err := pageAll(func(tok string) ([]*v1.NodeManifest, string, error) {
		req.PageToken = tok
		resp, err := c.client.ListManifests(ctx, req)
		return resp.GetManifests(), resp.GetNextPageToken(), err
	})
	return &v1.ListManifestsResponse{Manifests: mans}, err
}

func listCertificates(ctx context.Context, c *conn, req *v1.ListCertificatesRequest) (*v1.ListCertificatesResponse, error) {
	req.PageSize = 1000
	certs, err := pageAll(func(tok string) ([]*v1.NodeCertificate, string, error) {
		req.PageToken = tok
		resp, err := c.client.ListCertificates(ctx, req)
		return resp.GetCertificates(), resp.GetNextPageToken(), err
	})
	return &v1.ListCertificatesResponse{Certificates: certs}, err
}

// parseDays reads a duration that may be given in days ("30d") as well as
// Go's units ("720h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100_000 {
			return 0, fmt.Errorf("%q: want a number of days such as 30d, or a duration such as 720h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days such as 30d, or a duration such as 720h", s)
	}
	return d, nil
}

func listFindings(ctx context.Context, c *conn, req *v1.ListFindingsRequest) (*v1.ListFindingsResponse, error) {
	req.PageSize = 1000
	finds, err := pageAll(func(tok string) ([]*v1.Finding, string, error) {
		req.PageToken = tok
		resp, err := c.client.ListFindings(ctx, req)
		return resp.GetFindings(), resp.GetNextPageToken(), err
	})
	return &v1.ListFindingsResponse{Findings: finds}, err
}

// orFilters joins repeated --filter expressions with ||, as hubble observe
// and tetra getevents combine theirs.
func orFilters(filters []string) string {
	var parts []string
	for _, f := range filters {
		if f = strings.TrimSpace(f); f != "" {
			parts = append(parts, f)
		}
	}
	if len(parts) == 1 {
		// As given, so that an error's column is the user's.
		return parts[0]
	}
	for i, p := range parts {
		parts[i] = "(" + p + ")"
	}
	return strings.Join(parts, " || ")
}

// completeFilter offers the start of an expression for the kind being got.
func completeFilter(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	kind, err := canonicalKind(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	v := strings.TrimSuffix(kind, "s")
	fields := map[string][]string{
		"cluster":     {"name", "mode", "provider", "kubernetes_version", "datastore.implementation"},
		"node":        {"cluster", "name", "roles", "agent_state", "kubelet_version"},
		"component":   {"cluster", "node", "component", "implementation", "how", "flags[\"name\"]", "image", "version"},
		"process":     {"cluster", "node", "pid", "user", "argv", "exe", "systemd_unit", "container_id"},
		"manifest":    {"cluster", "node", "path", "pod_name", "images"},
		"finding":     {"cluster", "node", "kind", "severity", "summary"},
		"certificate": {"cluster", "node", "path", "subject", "issuer", "not_after", "is_ca", "issuer_on_node", "components", "flags"},
	}[v]
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = v + "." + f
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
