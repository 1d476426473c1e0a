// Package bundle loads an offline bundle (one cluster in a directory) into an
// engine, so offline answers come from the same code as live ones.
//
// A bundle holds:
//   - api/: Kubernetes objects as `kubectl get … -o yaml|json` prints them;
//   - nodes/: one `kubeatlas-agent snapshot` output (protojson) per node;
//   - bundle.yaml (optional): `cluster:` names the cluster, and `collectedAt:`
//     is the collecting machine's clock when the bundle was taken, the
//     reference for node clock skew.
package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/kube"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Meta is bundle.yaml.
type Meta struct {
	Cluster     string    `json:"cluster,omitempty"`
	CollectedAt time.Time `json:"collectedAt,omitempty"`
}

// Summary says what a bundle held.
type Summary struct {
	Cluster   string
	Nodes     int
	Pods      int
	Workloads int
	Snapshots int
}

// Limits on what a bundle may make the CLI read.
const (
	maxSnapshotBytes = 512 << 20
	maxMetaBytes     = 1 << 20
	maxSnapshots     = 100_000
)

// Load reads the bundle in dir into e.
func Load(e *apply.Applier, dir string) (*Summary, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening bundle: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bundle %s is not a directory", dir)
	}
	return LoadFS(e, os.DirFS(dir), filepath.Base(filepath.Clean(dir)))
}

// LoadFS reads a bundle from the root of fsys into e; name is the cluster
// name used when neither bundle.yaml nor the snapshots give one.
func LoadFS(e *apply.Applier, fsys fs.FS, name string) (*Summary, error) {
	dir := name
	var meta Meta
	if data, err := kube.ReadRegularFile(fsys, "bundle.yaml", maxMetaBytes); err == nil {
		if err := yaml.UnmarshalStrict(data, &meta); err != nil {
			return nil, fmt.Errorf("reading bundle.yaml: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading bundle.yaml: %w", err)
	}
	invs, err := readSnapshots(fsys, "nodes")
	if err != nil {
		return nil, err
	}
	cluster := meta.Cluster
	for _, inv := range invs {
		if cluster == "" {
			cluster = inv.GetIdentity().GetCluster()
		}
	}
	if cluster == "" {
		cluster = name
		if !state.ValidName(cluster) {
			return nil, fmt.Errorf("bundle directory %q is no cluster name (lower-case letters, digits, '-' and '.'): name the cluster in bundle.yaml (cluster: NAME)", echo(name))
		}
	}
	if !state.ValidName(cluster) {
		return nil, fmt.Errorf("cluster name %q: want lower-case letters, digits, '-' and '.', at most 253 characters", echo(cluster))
	}
	sum := &Summary{Cluster: cluster, Snapshots: len(invs)}
	if _, err := fs.Stat(fsys, "api"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading API objects: %w", err)
	} else if err == nil {
		objs, err := kube.ReadObjectsFS(fsys, "api")
		if err != nil {
			return nil, fmt.Errorf("reading API objects: %w", err)
		}
		if err := kube.Load(e, cluster, objs); err != nil {
			return nil, fmt.Errorf("loading API objects: %w", err)
		}
		sum.Nodes, sum.Pods, sum.Workloads = len(objs.Nodes), len(objs.Pods), len(objs.Workloads)
	} else if len(invs) == 0 {
		return nil, fmt.Errorf("bundle %s has neither api/ nor nodes/", dir)
	}
	ref := meta.CollectedAt
	if ref.IsZero() {
		ref = medianClock(invs)
	}
	for _, inv := range invs {
		id := inv.GetIdentity()
		if id.GetNodeName() == "" {
			return nil, fmt.Errorf("snapshot for host %q has no node name", echo(id.GetHostname()))
		}
		if !state.ValidName(id.GetNodeName()) {
			return nil, fmt.Errorf("snapshot names node %q: want lower-case letters, digits, '-' and '.', at most 253 characters", echo(id.GetNodeName()))
		}
		if c := id.GetCluster(); c != "" && c != cluster {
			return nil, fmt.Errorf("snapshot of node %s is for cluster %q, the bundle is %q", id.GetNodeName(), c, cluster)
		}
		if err := e.ApplyInventory(apply.Inventory{
			Cluster: cluster, Node: id.GetNodeName(), Identity: id, Kubelet: inv.Kubelet, Stats: inv.Stats,
			Processes: inv.Processes, Manifests: inv.Manifests, Certificates: inv.Certificates, State: v1.AgentState_AGENT_STATE_OFFLINE,
			SeenAt: id.GetWallClock().AsTime(), Reference: ref,
		}); err != nil {
			return nil, fmt.Errorf("loading snapshot of %s: %w", id.GetNodeName(), err)
		}
	}
	return sum, nil
}

func readSnapshots(fsys fs.FS, dir string) ([]*v1.NodeInventory, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading snapshots: %w", err)
	}
	var out []*v1.NodeInventory
	seen := map[string]string{}
	if len(entries) > maxSnapshots {
		return nil, fmt.Errorf("%s holds %d entries, over the limit of %d", dir, len(entries), maxSnapshots)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := dir + "/" + e.Name()
		inv, err := readSnapshot(fsys, path)
		if err != nil {
			return nil, err
		}
		name := inv.GetIdentity().GetNodeName()
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s and %s are both snapshots of node %q", prev, path, name)
		}
		seen[name] = path
		out = append(out, inv)
	}
	return out, nil
}

// ReadSnapshot reads one `kubeatlas-agent snapshot` output.
func ReadSnapshot(path string) (*v1.NodeInventory, error) {
	return readSnapshot(os.DirFS(filepath.Dir(path)), filepath.Base(path))
}

func readSnapshot(fsys fs.FS, path string) (*v1.NodeInventory, error) {
	data, err := kube.ReadRegularFile(fsys, path, maxSnapshotBytes)
	if err != nil {
		return nil, err
	}
	inv := &v1.NodeInventory{}
	if err := protojson.Unmarshal(data, inv); err != nil {
		return nil, fmt.Errorf("decoding snapshot %s: %w", path, err)
	}
	return inv, nil
}

func echo(s string) string { return safetext.Ellipsis(s, 64) }

// medianClock is the reference clock when the bundle does not give one: the
// median of the nodes' clocks, right when most nodes are.
func medianClock(invs []*v1.NodeInventory) time.Time {
	var ts []time.Time
	for _, inv := range invs {
		if w := inv.GetIdentity().GetWallClock(); w != nil {
			ts = append(ts, w.AsTime())
		}
	}
	if len(ts) == 0 {
		return time.Time{}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts[len(ts)/2]
}
