package state

import "fmt"

// The store's typed writes. A row is never changed after it is written:
// callers copy a row, change the copy and put it.

func (t *Txn) put(table string, row any) error {
	if err := t.txn.Insert(table, row); err != nil {
		return fmt.Errorf("writing %s: %w", table, err)
	}
	return nil
}

func (t *Txn) del(table string, row any) error {
	if err := t.txn.Delete(table, row); err != nil {
		return fmt.Errorf("deleting from %s: %w", table, err)
	}
	return nil
}

// PutCluster writes a cluster's row.
func (t *Txn) PutCluster(c *Cluster) error { return t.put(tableClusters, c) }

// DeleteCluster removes a cluster's row.
func (t *Txn) DeleteCluster(c *Cluster) error { return t.del(tableClusters, c) }

// PutNode writes a node's row.
func (t *Txn) PutNode(n *Node) error { return t.put(tableNodes, n) }

// DeleteNode removes a node's row.
func (t *Txn) DeleteNode(n *Node) error { return t.del(tableNodes, n) }

// PutProcesses writes a node's process set.
func (t *Txn) PutProcesses(p *Processes) error { return t.put(tableProcesses, p) }

// PutManifests writes a node's manifests.
func (t *Txn) PutManifests(m *Manifests) error { return t.put(tableManifests, m) }

// DeleteAgentRows removes what a node's agent reported: its process set and
// its manifests.
func (t *Txn) DeleteAgentRows(cluster, node string) error {
	for _, table := range []string{tableProcesses, tableManifests} {
		if _, err := t.txn.DeleteAll(table, indexID, NodeID(cluster, node)); err != nil {
			return fmt.Errorf("deleting from %s: %w", table, err)
		}
	}
	return nil
}

// PutPod writes a pod's row.
func (t *Txn) PutPod(p *Pod) error { return t.put(tablePods, p) }

// DeletePod removes a pod's row.
func (t *Txn) DeletePod(p *Pod) error { return t.del(tablePods, p) }

// PutWorkload writes a workload's row.
func (t *Txn) PutWorkload(w *Workload) error { return t.put(tableWorkloads, w) }

// DeleteWorkload removes a workload's row.
func (t *Txn) DeleteWorkload(w *Workload) error { return t.del(tableWorkloads, w) }

// PutFinding writes a finding's row; watchers see it.
func (t *Txn) PutFinding(f *Finding) error { return t.put(tableFindings, f) }

// DeleteFinding removes a finding's row; watchers see it.
func (t *Txn) DeleteFinding(f *Finding) error { return t.del(tableFindings, f) }
