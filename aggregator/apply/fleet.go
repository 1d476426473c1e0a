package apply

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// A fleet view holds what cluster aggregators published, as they answered
// it: nothing is joined here. These writes replace a cluster's or a node's
// rows with a published record, touching only rows that changed, so
// watchers see exactly the changes.

// FleetBatch writes bucket records in one transaction: a fleet view that
// has many records waiting applies them together, which shares the cost of
// a transaction among them. A record's checks come before its first write,
// so a record refused leaves the batch as it was.
type FleetBatch struct {
	e   *Applier
	txn *state.Txn
}

// FleetBatch opens a batch. The caller defers Abort and calls Commit.
func (e *Applier) FleetBatch() *FleetBatch { return &FleetBatch{e: e, txn: e.store.WriteTxn()} }

// Commit commits the batch's writes; watchers see them.
func (b *FleetBatch) Commit() { b.txn.Commit() }

// Abort drops the batch's writes, unless it was committed.
func (b *FleetBatch) Abort() { b.txn.Abort() }

// PutCluster writes a published cluster and its cluster-wide findings.
// updated is when it was published (the NATS server's clock), freshness
// what that age means now.
func (b *FleetBatch) PutCluster(rec *v1.FleetCluster, updated time.Time, freshness v1.Freshness) error {
	name := rec.GetCluster().GetName()
	c := &state.Cluster{Name: name, Mode: rec.Cluster.Mode, Published: rec.Cluster, Publisher: rec.Publisher,
		UpdatedAt: updated, Freshness: freshness}
	if err := b.txn.PutCluster(c); err != nil {
		return err
	}
	_, err := b.e.replaceNodeAnswers(b.txn, name, "", nil, rec.Findings)
	return err
}

// PutNode writes a published node with its instances, encoded as their
// aggregator published them (see state.NewEncodedComponents), and its
// findings. The rows keep the instances encoded.
func (b *FleetBatch) PutNode(cluster string, node *v1.Node, raw [][]byte, findings []*v1.Finding) error {
	name := node.GetName()
	comps, err := state.NewEncodedComponents(cluster, name, raw)
	if err != nil {
		return err
	}
	txn := b.txn
	if row, _ := txn.Cluster(nil, cluster); row == nil {
		// The node's key came before its cluster's: a placeholder until
		// the cluster's own record arrives.
		if err := txn.PutCluster(&state.Cluster{Name: cluster, Mode: v1.ClusterMode_CLUSTER_MODE_UNKNOWN,
			Published: &v1.Cluster{Name: cluster}}); err != nil {
			return err
		}
	}
	var id string
	if old, _ := txn.Node(nil, cluster, name); old != nil {
		id = old.ID // one copy of it for the node's life
	} else {
		id = state.NodeID(cluster, name)
	}
	n := &state.Node{ID: id, Cluster: cluster, Name: name, Roles: node.Roles, Published: node}
	if err := txn.PutNode(n); err != nil {
		return err
	}
	if _, err := txn.ReplaceComponents(cluster, name, comps, nil); err != nil {
		return err
	}
	return b.e.replaceFindings(txn, cluster, name, findings)
}

// DeleteNode removes a node that its aggregator no longer publishes.
func (b *FleetBatch) DeleteNode(cluster, node string) error {
	if row, _ := b.txn.Node(nil, cluster, node); row != nil {
		if err := b.txn.DeleteNode(row); err != nil {
			return err
		}
	}
	_, err := b.e.replaceNodeAnswers(b.txn, cluster, node, nil, nil)
	return err
}

// DeleteCluster removes a cluster that its aggregator no longer
// publishes, with its cluster-wide findings. Its nodes' keys are deleted
// one by one.
func (b *FleetBatch) DeleteCluster(cluster string) error {
	if row, _ := b.txn.Cluster(nil, cluster); row != nil {
		if err := b.txn.DeleteCluster(row); err != nil {
			return err
		}
	}
	_, err := b.e.replaceNodeAnswers(b.txn, cluster, "", nil, nil)
	return err
}

// fleetWrite runs one write in a batch of its own.
func (e *Applier) fleetWrite(write func(*FleetBatch) error) error {
	b := e.FleetBatch()
	defer b.Abort()
	if err := write(b); err != nil {
		return err
	}
	b.Commit()
	return nil
}

// PutFleetCluster is FleetBatch.PutCluster in a transaction of its own.
func (e *Applier) PutFleetCluster(rec *v1.FleetCluster, updated time.Time, freshness v1.Freshness) error {
	return e.fleetWrite(func(b *FleetBatch) error { return b.PutCluster(rec, updated, freshness) })
}

// PutFleetNode writes a published node record in a transaction of its
// own, encoding its instances as FleetBatch.PutNode takes them.
func (e *Applier) PutFleetNode(cluster string, rec *v1.FleetNode) error {
	raw := make([][]byte, len(rec.Components))
	for i, in := range rec.Components {
		b, err := proto.Marshal(in)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	return e.fleetWrite(func(b *FleetBatch) error { return b.PutNode(cluster, rec.Node, raw, rec.Findings) })
}

// DeleteFleetNode is FleetBatch.DeleteNode in a transaction of its own.
func (e *Applier) DeleteFleetNode(cluster, node string) error {
	return e.fleetWrite(func(b *FleetBatch) error { return b.DeleteNode(cluster, node) })
}

// DeleteFleetCluster is FleetBatch.DeleteCluster in a transaction of its own.
func (e *Applier) DeleteFleetCluster(cluster string) error {
	return e.fleetWrite(func(b *FleetBatch) error { return b.DeleteCluster(cluster) })
}

// SetFleetFreshness marks each published cluster live, stale or
// unreachable by the age of its last record at now. It writes only the
// clusters whose freshness changed and returns their names.
func (e *Applier) SetFleetFreshness(now time.Time, staleAfter, unreachableAfter time.Duration) ([]string, error) {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	var changed []string
	var rows []*state.Cluster
	for c := range txn.Clusters(nil, "") {
		rows = append(rows, c)
	}
	for _, c := range rows {
		if c.UpdatedAt.IsZero() {
			continue
		}
		f := FreshnessAt(now.Sub(c.UpdatedAt), staleAfter, unreachableAfter)
		if f == c.Freshness {
			continue
		}
		n := c.Copy()
		n.Freshness = f
		if err := txn.PutCluster(n); err != nil {
			return nil, err
		}
		changed = append(changed, c.Name)
	}
	txn.Commit()
	return changed, nil
}

// FreshnessAt says what a record's age means.
func FreshnessAt(age, staleAfter, unreachableAfter time.Duration) v1.Freshness {
	switch {
	case age > unreachableAfter:
		return v1.Freshness_FRESHNESS_UNREACHABLE
	case age > staleAfter:
		return v1.Freshness_FRESHNESS_STALE
	}
	return v1.Freshness_FRESHNESS_LIVE
}
