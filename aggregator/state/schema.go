// Package state is the aggregator's in-memory database: one go-memdb table per
// kind of fact, every row keyed by cluster.
package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	TableClusters   = "clusters"
	TableNodes      = "nodes"
	TableProcesses  = "processes"
	TableManifests  = "manifests"
	TablePods       = "pods"
	TableWorkloads  = "workloads"
	TableComponents = "components"
	TableFindings   = "findings"
)

// Index names.
const (
	IndexID             = "id"
	IndexCluster        = "cluster"
	IndexNode           = "node"
	IndexUID            = "uid"
	IndexOwner          = "owner"
	IndexComponent      = "component"
	IndexFleetComponent = "fleet_component"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableClusters:   clustersTable(),
		TableNodes:      nodesTable(),
		TableProcesses:  processesTable(),
		TableManifests:  manifestsTable(),
		TablePods:       podsTable(),
		TableWorkloads:  workloadsTable(),
		TableComponents: componentsTable(),
		TableFindings:   findingsTable(),
	}}
}

func clustersTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableClusters, Indexes: map[string]*memdb.IndexSchema{
		// ListClusters and GetCluster: clusters by name, in name order.
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
	}}
}

func nodesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableNodes, Indexes: map[string]*memdb.IndexSchema{
		// GetNode and paging ListNodes: "<cluster>/<node>", in order.
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// A cluster's nodes: cluster mode, node counts, re-joins after a cluster-wide change.
		IndexCluster: {Name: IndexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}

func processesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableProcesses, Indexes: map[string]*memdb.IndexSchema{
		// One row per node holding its whole process set: the join reads a
		// node's processes at once, and ListProcesses pages through nodes in order.
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func manifestsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableManifests, Indexes: map[string]*memdb.IndexSchema{
		// One row per node holding its static pod manifests: the join and ListManifests.
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func podsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TablePods, Indexes: map[string]*memdb.IndexSchema{
		// Informer updates and deletes: "<cluster>/<namespace>/<name>".
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// The join: the pods bound to one node.
		IndexNode: {Name: IndexNode, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "NodeName"}}}},
		// Re-joins after a workload changes: the pods a controller owns, by owner UID.
		IndexOwner: {Name: IndexOwner, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "OwnerUID"}}}},
		// A cluster's pods: dropping a cluster's API state.
		IndexCluster: {Name: IndexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}

func workloadsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableWorkloads, Indexes: map[string]*memdb.IndexSchema{
		// Informer updates and deletes: "<cluster>/<kind>/<namespace>/<name>".
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// The owner chain: a pod's owner reference names a UID.
		IndexUID: {Name: IndexUID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "UID"}}}},
		// Re-joins: the ReplicaSets a Deployment owns.
		IndexOwner: {Name: IndexOwner, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "OwnerUID"}}}},
		// A cluster's workloads: dropping a cluster's API state.
		IndexCluster: {Name: IndexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}

func componentsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableComponents, Indexes: map[string]*memdb.IndexSchema{
		// Unique identity of an instance: "<cluster>/<instance id>".
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// Re-join: replacing one node's instances; GetNode.
		IndexNode: {Name: IndexNode, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "Node"}}}},
		// ListComponents within a cluster, in answer order, and cluster mode:
		// "<cluster>\x00<rank><component>\x00<node>\x00<id>".
		IndexComponent: {Name: IndexComponent, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ClusterSortKey"}},
		// `where COMPONENT` across the fleet: "<component>\x00<cluster>\x00<node>\x00<id>".
		IndexFleetComponent: {Name: IndexFleetComponent, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "FleetSortKey"}},
	}}
}

func findingsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableFindings, Indexes: map[string]*memdb.IndexSchema{
		// Unique identity: "<cluster>/<node>/<kind>/<subject>". ListFindings
		// orders by severity first and sorts itself (query.findingKey).
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// Re-join: replacing one node's findings.
		IndexNode: {Name: IndexNode, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "Node"}}}},
		// Finding counts per cluster.
		IndexCluster: {Name: IndexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}
