package apply

import (
	"slices"

	"github.com/kubeatlas/kubeatlas/aggregator/join"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
)

// SetAPI records a cluster's API connection: its identity (the kube-system
// namespace UID), the API server's version, and whether objects are loaded.
func (e *Applier) SetAPI(cluster, uid, version string, connected bool) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	changedConn, changedVersion := false, false
	e.ensureCluster(txn, cluster, func(c *state.Cluster) bool {
		if c.UID == uid && c.APIVersion == version && c.APIConnected == connected {
			return false
		}
		changedConn = c.APIConnected != connected
		changedVersion = version != "" && version != c.APIVersion
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
	}
	if changedConn || changedVersion {
		// The version can name a managed provider.
		if err := e.recomputeCluster(txn, cluster); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// SetAPIEndpoints records the addresses behind the "kubernetes" Service.
func (e *Applier) SetAPIEndpoints(cluster string, addrs []string) error {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	return e.updateCluster(cluster, func(c *state.Cluster) bool {
		if slices.Equal(c.APIEndpoints, addrs) {
			return false
		}
		c.APIEndpoints = addrs
		return true
	})
}

// SetAPIHost records the host of the API server address the aggregator
// uses: a managed provider's domain names it.
func (e *Applier) SetAPIHost(cluster, host string) error {
	return e.updateCluster(cluster, func(c *state.Cluster) bool {
		if c.APIHost == host {
			return false
		}
		c.APIHost = host
		return true
	})
}

// updateCluster changes a cluster's row and, when change says it changed
// something, decides the cluster's mode, provider and datastore again.
func (e *Applier) updateCluster(cluster string, change func(*state.Cluster) bool) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	changed := false
	e.ensureCluster(txn, cluster, func(c *state.Cluster) bool {
		changed = change(c)
		return changed
	})
	if changed {
		if err := e.recomputeCluster(txn, cluster); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// UpsertNodeAPI records what the API says of a node.
func (e *Applier) UpsertNodeAPI(cluster, name string, api *state.NodeAPI) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	labelled := false
	e.ensureCluster(txn, cluster, func(c *state.Cluster) bool {
		if c.NodeLabelProvider != "" || api == nil {
			return false
		}
		c.NodeLabelProvider, c.NodeLabel = join.NodeLabelProvider(api.Labels)
		labelled = c.NodeLabelProvider != ""
		return labelled
	})
	if labelled {
		// The first node with a managed provider's labels names it.
		if err := e.recomputeCluster(txn, cluster); err != nil {
			return err
		}
	}
	n := e.nodeRow(txn, cluster, name)
	n.API = api
	return e.commitNode(txn, n)
}

// DeleteNodeAPI records that a node left the API. What a live agent
// reported is kept; a node whose agent expired (or never reported) is
// forgotten with everything its agent sent, and Config.Forgotten is told.
func (e *Applier) DeleteNodeAPI(cluster, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	row, err := txn.Node(nil, cluster, name)
	if err != nil || row == nil {
		return err
	}
	n := row.Copy()
	n.API = nil
	forgotten := agentGone(n.Agent)
	if forgotten {
		if err := e.dropAgentRows(txn, n); err != nil {
			return err
		}
	} else if err := txn.PutNode(n); err != nil {
		return err
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
func (e *Applier) UpsertPod(p *state.Pod) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, p.Cluster, nil)
	nodes := []string{}
	if old, _ := txn.Pod(nil, p.Cluster, p.Namespace, p.Name); old != nil && old.NodeName != "" && old.NodeName != p.NodeName {
		nodes = append(nodes, old.NodeName)
	}
	if err := txn.PutPod(p); err != nil {
		return err
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
func (e *Applier) DeletePod(cluster, namespace, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	pod, err := txn.Pod(nil, cluster, namespace, name)
	if err != nil || pod == nil {
		return err
	}
	if err := txn.DeletePod(pod); err != nil {
		return err
	}
	if node := pod.NodeName; node != "" {
		if err := e.rejoin(txn, cluster, []string{node}); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// UpsertWorkload records a controller and re-joins the nodes of the pods it
// owns (directly, or through its ReplicaSets for a Deployment).
func (e *Applier) UpsertWorkload(w *state.Workload) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, w.Cluster, nil)
	old, err := txn.Workload(nil, w.Cluster, w.Kind, w.Namespace, w.Name)
	if err != nil {
		return err
	}
	if old != nil && old.UID != w.UID {
		if err := txn.DeleteWorkload(old); err != nil {
			return err
		}
	}
	if err := txn.PutWorkload(w); err != nil {
		return err
	}
	if old == nil || ownerChanged(old, w) {
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
func (e *Applier) DeleteWorkload(cluster, kind, namespace, name string) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	w, err := txn.Workload(nil, cluster, kind, namespace, name)
	if err != nil || w == nil {
		return err
	}
	if err := txn.DeleteWorkload(w); err != nil {
		return err
	}
	if err := e.rejoin(txn, cluster, nodesOwnedBy(txn, cluster, w.UID)); err != nil {
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
		for p := range txn.PodsOwnedBy(nil, cluster, uid) {
			if n := p.NodeName; n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		if depth > 2 {
			return
		}
		for w := range txn.WorkloadsOwnedBy(nil, cluster, uid) {
			walk(w.UID, depth+1)
		}
	}
	walk(uid, 0)
	return out
}
