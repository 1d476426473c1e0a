package printer

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// versionColumns are the components `kubeatlas get versions` shows, in order.
var versionColumns = []string{
	v1.ComponentAPIServer, v1.ComponentKubelet, v1.ComponentKubeProxy,
	v1.ComponentControllerManager, v1.ComponentScheduler, v1.ComponentContainerRuntime,
}

// versionOf is how an instance's version is shown: with the implementation
// for a container runtime ("containerd 1.7.22").
func versionOf(in *v1.ComponentInstance) string {
	v := in.Version
	if v == "" {
		v = "<unknown>"
	}
	if in.Component == v1.ComponentContainerRuntime {
		return in.Implementation + " " + v
	}
	return v
}

// versionSpread groups instances by version, each with its nodes.
type versionSpread struct {
	version string
	nodes   []string
}

func spreadOf(insts []*v1.ComponentInstance) []versionSpread {
	idx := map[string]int{}
	var out []versionSpread
	for _, in := range insts {
		v := versionOf(in)
		i, ok := idx[v]
		if !ok {
			i = len(out)
			idx[v] = i
			out = append(out, versionSpread{version: v})
		}
		out[i].nodes = append(out[i].nodes, in.Node)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].version < out[b].version })
	for i := range out {
		sort.Strings(out[i].nodes)
	}
	return out
}

// Versions prints each cluster's versions: the kube-apiserver version(s) and
// the spread of the kubelet, kube-proxy, controller-manager, scheduler and
// container runtime versions, "v1.27.0 (6)" for six instances; -o wide lists
// the nodes behind each version, a row each. JSON and YAML print the
// component instances the table is made of.
func Versions(w io.Writer, f Format, clusters *v1.ListClustersResponse, comps *v1.ListComponentsResponse) error {
	byCluster := map[string]map[string][]*v1.ComponentInstance{}
	var keep []*v1.ComponentInstance
	for _, in := range comps.Components {
		if v1.ComponentRank(in.Component) >= len(v1.Components) || !slices.Contains(versionColumns, in.Component) {
			continue
		}
		if in.Component == v1.ComponentContainerRuntime && Note(in) != "" {
			// A runtime the kubelet does not use ("not used by Kubernetes").
			continue
		}
		keep = append(keep, in)
		if byCluster[in.Cluster] == nil {
			byCluster[in.Cluster] = map[string][]*v1.ComponentInstance{}
		}
		byCluster[in.Cluster][in.Component] = append(byCluster[in.Cluster][in.Component], in)
	}
	if f.Structured() {
		return Message(w, f, &v1.ListComponentsResponse{Components: keep})
	}
	tw := newTab(w)
	if f == Wide {
		line(tw, "CLUSTER", "COMPONENT", "VERSION", "NODES")
		for _, c := range clusters.Clusters {
			for _, comp := range versionColumns {
				for _, s := range spreadOf(byCluster[c.Name][comp]) {
					row(tw, c.Name, comp, s.version, strings.Join(s.nodes, ","))
				}
			}
		}
		return tw.Flush()
	}
	line(tw, "CLUSTER", "KUBE-APISERVER", "KUBELET", "KUBE-PROXY", "CONTROLLER-MANAGER", "SCHEDULER", "RUNTIME")
	for _, c := range clusters.Clusters {
		cols := []string{c.Name}
		for _, comp := range versionColumns {
			var cell []string
			for _, s := range spreadOf(byCluster[c.Name][comp]) {
				cell = append(cell, fmt.Sprintf("%s (%d)", s.version, len(s.nodes)))
			}
			cols = append(cols, strings.Join(cell, ", "))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}
