package engine

import (
	"fmt"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
)

// SetAPI records a cluster's API connection: its identity (the kube-system
// namespace UID), the API server's version, and whether objects are loaded.
func (e *Engine) SetAPI(cluster, uid, version string, connected bool) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	changedConn := false
	e.ensureCluster(txn, cluster, func(c *state.Cluster) bool {
		if c.UID == uid && c.APIVersion == version && c.APIConnected == connected {
			return false
		}
		changedConn = c.APIConnected != connected
		if uid != "" {
			c.UID = uid
		}
		if version != "" {
			c.APIVersion = version
		}
		c.APIConnected = connected
		return true
	})
	if changedConn {
		if err := e.rejoinCluster(txn, cluster); err != nil {
			return err
		}
		if err := e.recomputeCluster(txn, cluster); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// UpsertNodeAPI records what the API says of a node.
func (e *Engine) UpsertNodeAPI(cluster, name string, api *state.NodeAPI) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, cluster, nil)
	n := e.nodeRow(txn, cluster, name)
	n.API = api
	if err := txn.Insert(state.TableNodes, n); err != nil {
		return fmt.Errorf("writing node: %w", err)
	}
	if err := e.rejoin(txn, cluster, []string{name}); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// DeleteNodeAPI records that a node left the API. What a live agent
// reported is kept; a node whose agent expired (or never reported) is
// forgotten with everything its agent sent, and Config.Forgotten is told.
func (e *Engine) DeleteNodeAPI(cluster, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	raw, _ := txn.First(state.TableNodes, state.IndexID, state.NodeID(cluster, name))
	if raw == nil {
		return nil
	}
	n := raw.(*state.Node).Copy()
	n.API = nil
	forgotten := agentGone(n.Agent)
	if forgotten {
		if err := e.dropAgentRows(txn, n); err != nil {
			return err
		}
	} else if err := txn.Insert(state.TableNodes, n); err != nil {
		return fmt.Errorf("writing node: %w", err)
	}
	if err := e.rejoin(txn, cluster, []string{name}); err != nil {
		return err
	}
	txn.Commit()
	if forgotten && n.Agent != nil && e.cfg.Forgotten != nil {
		e.cfg.Forgotten(cluster, name, ReasonNodeDeleted)
	}
	return nil
}

// UpsertPod records a pod and re-joins the node it was and is bound to.
func (e *Engine) UpsertPod(p *state.Pod) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, p.Cluster, nil)
	nodes := []string{}
	if raw, _ := txn.First(state.TablePods, state.IndexID, p.ID); raw != nil {
		if old := raw.(*state.Pod); old.NodeName != "" && old.NodeName != p.NodeName {
			nodes = append(nodes, old.NodeName)
		}
	}
	if err := txn.Insert(state.TablePods, p); err != nil {
		return fmt.Errorf("writing pod: %w", err)
	}
	if p.NodeName != "" {
		nodes = append(nodes, p.NodeName)
	}
	if err := e.rejoin(txn, p.Cluster, nodes); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// DeletePod forgets a pod and re-joins its node.
func (e *Engine) DeletePod(cluster, namespace, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	raw, _ := txn.First(state.TablePods, state.IndexID, state.PodID(cluster, namespace, name))
	if raw == nil {
		return nil
	}
	if err := txn.Delete(state.TablePods, raw); err != nil {
		return fmt.Errorf("deleting pod: %w", err)
	}
	if node := raw.(*state.Pod).NodeName; node != "" {
		if err := e.rejoin(txn, cluster, []string{node}); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// UpsertWorkload records a controller and re-joins the nodes of the pods it
// owns (directly, or through its ReplicaSets for a Deployment).
func (e *Engine) UpsertWorkload(w *state.Workload) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, w.Cluster, nil)
	raw, _ := txn.First(state.TableWorkloads, state.IndexID, w.ID)
	if old, ok := raw.(*state.Workload); ok && old.UID != w.UID {
		if err := txn.Delete(state.TableWorkloads, old); err != nil {
			return fmt.Errorf("replacing workload: %w", err)
		}
	}
	if err := txn.Insert(state.TableWorkloads, w); err != nil {
		return fmt.Errorf("writing workload: %w", err)
	}
	if raw == nil || ownerChanged(raw.(*state.Workload), w) {
		if err := e.rejoin(txn, w.Cluster, nodesOwnedBy(txn, w.Cluster, w.UID)); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

func ownerChanged(a, b *state.Workload) bool {
	return a.OwnerUID != b.OwnerUID || a.Name != b.Name || a.UID != b.UID
}

// DeleteWorkload forgets a controller.
func (e *Engine) DeleteWorkload(cluster, kind, namespace, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	raw, _ := txn.First(state.TableWorkloads, state.IndexID, state.WorkloadID(cluster, kind, namespace, name))
	if raw == nil {
		return nil
	}
	if err := txn.Delete(state.TableWorkloads, raw); err != nil {
		return fmt.Errorf("deleting workload: %w", err)
	}
	if err := e.rejoin(txn, cluster, nodesOwnedBy(txn, cluster, raw.(*state.Workload).UID)); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// nodesOwnedBy lists the nodes of pods owned by uid, directly or through the
// workloads it owns.
func nodesOwnedBy(txn *state.Txn, cluster, uid string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(uid string, depth int)
	walk = func(uid string, depth int) {
		it, err := txn.Get(state.TablePods, state.IndexOwner, cluster, uid)
		if err == nil {
			for raw := it.Next(); raw != nil; raw = it.Next() {
				if n := raw.(*state.Pod).NodeName; n != "" && !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
		if depth > 2 {
			return
		}
		wit, err := txn.Get(state.TableWorkloads, state.IndexOwner, cluster, uid)
		if err != nil {
			return
		}
		for raw := wit.Next(); raw != nil; raw = wit.Next() {
			walk(raw.(*state.Workload).UID, depth+1)
		}
	}
	walk(uid, 0)
	return out
}
