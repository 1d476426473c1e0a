// Package state is the aggregator's in-memory database: one go-memdb table per
// kind of fact, every row keyed by cluster.
package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableClusters   = "clusters"
	tableNodes      = "nodes"
	tableProcesses  = "processes"
	tableManifests  = "manifests"
	tablePods       = "pods"
	tableWorkloads  = "workloads"
	tableComponents = "components"
	// tableComponentOrder holds one row: the instances in query order.
	tableComponentOrder = "component_order"
	tableFindings       = "findings"
)

// Index names.
const (
	indexID      = "id"
	indexCluster = "cluster"
	indexNode    = "node"
	indexUID     = "uid"
	indexOwner   = "owner"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableClusters:   clustersTable(),
		tableNodes:      nodesTable(),
		tableProcesses:  processesTable(),
		tableManifests:  manifestsTable(),
		tablePods:       podsTable(),
		tableWorkloads:  workloadsTable(),
		tableComponents: componentsTable(),
		tableComponentOrder: {Name: tableComponentOrder, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		}},
		tableFindings: findingsTable(),
	}}
}

func clustersTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableClusters, Indexes: map[string]*memdb.IndexSchema{
		// ListClusters and GetCluster: clusters by name, in name order.
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
	}}
}

func nodesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableNodes, Indexes: map[string]*memdb.IndexSchema{
		// GetNode and paging ListNodes: "<cluster>/<node>", in order.
		// A cluster's nodes (cluster mode, node counts, re-joins after a
		// cluster-wide change) are a prefix of it: see Reads.NodesOf.
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func processesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableProcesses, Indexes: map[string]*memdb.IndexSchema{
		// One row per node holding its whole process set: the join reads a
		// node's processes at once, and ListProcesses pages through nodes in order.
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func manifestsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableManifests, Indexes: map[string]*memdb.IndexSchema{
		// One row per node holding its static pod manifests: the join and ListManifests.
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func podsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tablePods, Indexes: map[string]*memdb.IndexSchema{
		// Informer updates and deletes: "<cluster>/<namespace>/<name>".
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// The join: the pods bound to one node.
		indexNode: {Name: indexNode, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "NodeName"}}}},
		// Re-joins after a workload changes: the pods a controller owns, by owner UID.
		indexOwner: {Name: indexOwner, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "OwnerUID"}}}},
		// A cluster's pods: dropping a cluster's API state.
		indexCluster: {Name: indexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}

func workloadsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableWorkloads, Indexes: map[string]*memdb.IndexSchema{
		// Informer updates and deletes: "<cluster>/<kind>/<namespace>/<name>".
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// The owner chain: a pod's owner reference names a UID.
		indexUID: {Name: indexUID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "UID"}}}},
		// Re-joins: the ReplicaSets a Deployment owns.
		indexOwner: {Name: indexOwner, AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "OwnerUID"}}}},
		// A cluster's workloads: dropping a cluster's API state.
		indexCluster: {Name: indexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}

func componentsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableComponents, Indexes: map[string]*memdb.IndexSchema{
		// One row per node holding its instances (see components.go): the
		// join replaces a node's instances at once, and GetNode reads them.
		// The orders ListComponents pages through are tableComponentOrder's.
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

func findingsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableFindings, Indexes: map[string]*memdb.IndexSchema{
		// Unique identity: "<cluster>/<node>/<kind>/<subject>". ListFindings
		// orders by severity first and sorts itself (query.findingKey).
		indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		// Re-join: replacing one node's findings.
		indexNode: {Name: indexNode, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
			&memdb.StringFieldIndex{Field: "Cluster"}, &memdb.StringFieldIndex{Field: "Node"}}}},
		// Finding counts per cluster.
		indexCluster: {Name: indexCluster, Indexer: &memdb.StringFieldIndex{Field: "Cluster"}},
	}}
}
