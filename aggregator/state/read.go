package state

import (
	"fmt"
	"iter"
	"slices"

	"github.com/hashicorp/go-memdb"
)

// Reads are the store's typed reads, shared by a read-only View and a write
// Txn, as Nomad's state store has them: each takes a WatchSet first (nil
// when the caller does not watch) and returns rows, which are never to be
// changed in place. Callers name no table and no index.
type Reads struct{ txn *memdb.Txn }

// View is a consistent read-only view of the store.
type View struct{ Reads }

// View returns a read-only view of the store as it is now.
func (s *Store) View() *View { return &View{Reads{s.db.Txn(false)}} }

func (r Reads) first(ws memdb.WatchSet, what, table, index string, args ...any) (any, error) {
	ch, raw, err := r.txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	ws.Add(ch)
	return raw, nil
}

// rows iterates an index's rows of type T. An error opening the index
// yields nothing; it can only come from a name this package got wrong, which
// the tests catch.
func rows[T any](r Reads, ws memdb.WatchSet, lower bool, table, index string, args ...any) iter.Seq[T] {
	return func(yield func(T) bool) {
		var it memdb.ResultIterator
		var err error
		if lower {
			it, err = r.txn.LowerBound(table, index, args...)
		} else {
			it, err = r.txn.Get(table, index, args...)
		}
		if err != nil {
			panic(fmt.Sprintf("state: reading %s by %s: %v", table, index, err))
		}
		ws.Add(it.WatchCh())
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if !yield(raw.(T)) {
				return
			}
		}
	}
}

func typed[T any](raw any, err error) (T, error) {
	var zero T
	if err != nil || raw == nil {
		return zero, err
	}
	return raw.(T), nil
}

// Cluster returns a cluster's row, or nil.
func (r Reads) Cluster(ws memdb.WatchSet, name string) (*Cluster, error) {
	return typed[*Cluster](r.first(ws, "cluster", tableClusters, indexID, name))
}

// Clusters iterates the clusters by name, from the first not before from.
func (r Reads) Clusters(ws memdb.WatchSet, from string) iter.Seq[*Cluster] {
	return rows[*Cluster](r, ws, true, tableClusters, indexID, from)
}

// Node returns a node's row, or nil.
func (r Reads) Node(ws memdb.WatchSet, cluster, node string) (*Node, error) {
	return typed[*Node](r.first(ws, "node", tableNodes, indexID, NodeID(cluster, node)))
}

// Nodes iterates every node by ID ("<cluster>/<node>"), from the first not
// before from.
func (r Reads) Nodes(ws memdb.WatchSet, from string) iter.Seq[*Node] {
	return rows[*Node](r, ws, true, tableNodes, indexID, from)
}

// NodesOf iterates one cluster's nodes, by ID. They are the nodes whose
// IDs begin with the cluster's name and a slash, which saves the nodes table
// an index of its own for them: an entry for every node, in every fleet
// view too.
func (r Reads) NodesOf(ws memdb.WatchSet, cluster string) iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		for n := range rows[*Node](r, ws, false, tableNodes, indexID+"_prefix", NodeID(cluster, "")) {
			// A name with a slash could share the prefix.
			if n.Cluster == cluster && !yield(n) {
				return
			}
		}
	}
}

// Processes returns a node's process set, or nil when no agent reported.
func (r Reads) Processes(ws memdb.WatchSet, cluster, node string) (*Processes, error) {
	return typed[*Processes](r.first(ws, "processes", tableProcesses, indexID, NodeID(cluster, node)))
}

// ProcessSets iterates the nodes' process sets by node ID, from the first
// not before from.
func (r Reads) ProcessSets(ws memdb.WatchSet, from string) iter.Seq[*Processes] {
	return rows[*Processes](r, ws, true, tableProcesses, indexID, from)
}

// Manifests returns a node's static pod manifests, or nil.
func (r Reads) Manifests(ws memdb.WatchSet, cluster, node string) (*Manifests, error) {
	return typed[*Manifests](r.first(ws, "manifests", tableManifests, indexID, NodeID(cluster, node)))
}

// ManifestSets iterates the nodes' manifest sets by node ID, from the first
// not before from.
func (r Reads) ManifestSets(ws memdb.WatchSet, from string) iter.Seq[*Manifests] {
	return rows[*Manifests](r, ws, true, tableManifests, indexID, from)
}

// Pod returns a pod's row, or nil.
func (r Reads) Pod(ws memdb.WatchSet, cluster, namespace, name string) (*Pod, error) {
	return typed[*Pod](r.first(ws, "pod", tablePods, indexID, PodID(cluster, namespace, name)))
}

// PodsOn iterates the pods bound to a node.
func (r Reads) PodsOn(ws memdb.WatchSet, cluster, node string) iter.Seq[*Pod] {
	return rows[*Pod](r, ws, false, tablePods, indexNode, cluster, node)
}

// PodsOwnedBy iterates the pods whose controller has the given UID.
func (r Reads) PodsOwnedBy(ws memdb.WatchSet, cluster, uid string) iter.Seq[*Pod] {
	return rows[*Pod](r, ws, false, tablePods, indexOwner, cluster, uid)
}

// Workload returns a workload's row, or nil.
func (r Reads) Workload(ws memdb.WatchSet, cluster, kind, namespace, name string) (*Workload, error) {
	return typed[*Workload](r.first(ws, "workload", tableWorkloads, indexID, WorkloadID(cluster, kind, namespace, name)))
}

// WorkloadByUID returns the workload with a UID, or nil.
func (r Reads) WorkloadByUID(ws memdb.WatchSet, cluster, uid string) (*Workload, error) {
	return typed[*Workload](r.first(ws, "workload", tableWorkloads, indexUID, cluster, uid))
}

// WorkloadsOwnedBy iterates the workloads whose controller has the given UID.
func (r Reads) WorkloadsOwnedBy(ws memdb.WatchSet, cluster, uid string) iter.Seq[*Workload] {
	return rows[*Workload](r, ws, false, tableWorkloads, indexOwner, cluster, uid)
}

// Findings iterates every finding by ID.
func (r Reads) Findings(ws memdb.WatchSet) iter.Seq[*Finding] {
	return rows[*Finding](r, ws, false, tableFindings, indexID)
}

// FindingsOf iterates one cluster's findings.
func (r Reads) FindingsOf(ws memdb.WatchSet, cluster string) iter.Seq[*Finding] {
	return rows[*Finding](r, ws, false, tableFindings, indexCluster, cluster)
}

// FindingsOn iterates a node's findings.
func (r Reads) FindingsOn(ws memdb.WatchSet, cluster, node string) iter.Seq[*Finding] {
	return rows[*Finding](r, ws, false, tableFindings, indexNode, cluster, node)
}

// Cluster returns a cluster's row, or nil.
func (s *Store) Cluster(ws memdb.WatchSet, name string) (*Cluster, error) {
	return s.View().Cluster(ws, name)
}

// Counts returns the number of rows in each table; the processes table
// counts process records, not node rows. The counts are kept as
// transactions commit, so that a metrics scrape of a large fleet costs
// nothing in proportion to it.
func (s *Store) Counts() map[string]int {
	s.mu.Lock()
	out := make(map[string]int, len(countedTables)+1)
	for i, t := range countedTables {
		out[t] = s.counts[i]
	}
	s.mu.Unlock()
	out[tableComponents] = Reads{s.db.Txn(false)}.componentCount()
	return out
}

// countedTables are the tables Counts reports besides the components.
var countedTables = [...]string{tableClusters, tableNodes, tableProcesses, tableManifests, tablePods, tableWorkloads, tableFindings}

// countDelta adds a committed change to the row counts.
func countDelta(counts *[len(countedTables)]int, c memdb.Change) {
	i := slices.Index(countedTables[:], c.Table)
	if i < 0 {
		return
	}
	counts[i] += rowsOf(c.After) - rowsOf(c.Before)
}

// rowsOf is how many rows Counts sees in one go-memdb row.
func rowsOf(raw any) int {
	switch r := raw.(type) {
	case nil:
		return 0
	case *Processes:
		return len(r.Procs)
	case *Manifests:
		return len(r.Manifests)
	}
	return 1
}
