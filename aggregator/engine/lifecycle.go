package engine

import (
	"fmt"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Limits bound what one node may hold in the store. Zero fields do not limit.
type Limits struct {
	MaxProcesses int
	MaxManifests int
	// MaxBytes bounds the wire size of the node's processes and manifests.
	MaxBytes int64
}

// LimitError says which of a node's limits a change would pass.
type LimitError struct {
	What       string // "processes", "manifests" or "bytes"
	Limit, Got int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("the node would hold %d %s, over its limit of %d", e.Got, e.What, e.Limit)
}

// SettleAgents ends the wait for agents to reconnect (see
// Config.AwaitAgents): nodes without agents become findings from now on.
func (e *Engine) SettleAgents() error {
	if e.settled.Swap(true) {
		return nil
	}
	txn := e.store.WriteTxn()
	defer txn.Abort()
	for _, c := range clusterNames(txn) {
		if err := e.rejoinCluster(txn, c); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

func clusterNames(txn *state.Txn) []string {
	it, err := txn.Get(state.TableClusters, state.IndexID)
	if err != nil {
		return nil
	}
	var names []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		names = append(names, raw.(*state.Cluster).Name)
	}
	return names
}

// Why a node's agent rows were forgotten.
const (
	ReasonNodeDeleted = "node_deleted" // the API deleted the Node of an expired agent
	ReasonForgetAfter = "forget_after" // expired longer than --forget-after, no Node in the API
)

// ForgetNode removes what a node's expired agent reported: its agent state,
// processes and manifests, and with them its answers, when the API has no
// Node of that name. It reports whether the node was forgotten, and tells
// Config.Forgotten.
func (e *Engine) ForgetNode(cluster, node string) (bool, error) {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	id := state.NodeID(cluster, node)
	raw, err := txn.First(state.TableNodes, state.IndexID, id)
	if err != nil {
		return false, fmt.Errorf("reading node: %w", err)
	}
	if raw == nil {
		return false, nil
	}
	n := raw.(*state.Node)
	if n.Agent == nil || n.API != nil || !agentGone(n.Agent) {
		return false, nil
	}
	if err := e.dropAgentRows(txn, n); err != nil {
		return false, err
	}
	if err := e.rejoin(txn, cluster, []string{node}); err != nil {
		return false, err
	}
	txn.Commit()
	if e.cfg.Forgotten != nil {
		e.cfg.Forgotten(cluster, node, ReasonForgetAfter)
	}
	return true, nil
}

// dropAgentRows removes a node's agent rows, and the node row itself when
// the API does not have it.
func (e *Engine) dropAgentRows(txn *state.Txn, n *state.Node) error {
	id := n.ID
	for _, table := range []string{state.TableProcesses, state.TableManifests} {
		if _, err := txn.DeleteAll(table, state.IndexID, id); err != nil {
			return fmt.Errorf("deleting from %s: %w", table, err)
		}
	}
	if n.API == nil {
		if err := txn.Delete(state.TableNodes, n); err != nil {
			return fmt.Errorf("deleting node: %w", err)
		}
		return nil
	}
	c := n.Copy()
	c.Agent = nil
	if err := txn.Insert(state.TableNodes, c); err != nil {
		return fmt.Errorf("writing node: %w", err)
	}
	return nil
}

// agentGone reports whether a node's agent no longer reports.
func agentGone(a *state.NodeAgent) bool {
	return a == nil || a.State == v1.AgentState_AGENT_STATE_EXPIRED
}
