package apply

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
func (e *Applier) SettleAgents() error {
	if e.settled.Swap(true) {
		return nil
	}
	txn := e.store.WriteTxn()
	defer txn.Abort()
	var names []string
	for c := range txn.Clusters(nil, "") {
		names = append(names, c.Name)
	}
	for _, c := range names {
		if err := e.rejoinCluster(txn, c); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
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
func (e *Applier) ForgetNode(cluster, node string) (bool, error) {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	n, err := txn.Node(nil, cluster, node)
	if err != nil || n == nil {
		return false, err
	}
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
func (e *Applier) dropAgentRows(txn *state.Txn, n *state.Node) error {
	if err := txn.DeleteAgentRows(n.Cluster, n.Name); err != nil {
		return err
	}
	if n.API == nil {
		return txn.DeleteNode(n)
	}
	c := n.Copy()
	c.Agent = nil
	return txn.PutNode(c)
}

// agentGone reports whether a node's agent no longer reports.
func agentGone(a *state.NodeAgent) bool {
	return a == nil || a.State == v1.AgentState_AGENT_STATE_EXPIRED
}
