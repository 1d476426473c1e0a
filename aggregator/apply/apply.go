// Package apply applies facts from agents and API servers to the state store
// and keeps the answers current: every change re-joins only the nodes it
// touches, in the same transaction that writes it.
package apply

import (
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/join"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Config configures an Applier.
type Config struct {
	// Settings are the finding thresholds.
	Settings join.Settings
	// Logger receives problems.
	Logger *slog.Logger
	// ObserveJoin, if set, is called with the duration of every node re-join.
	ObserveJoin func(time.Duration)
	// AwaitAgents holds back findings about nodes without agents until
	// SettleAgents is called: after a restart, agents need a moment to
	// reconnect. False raises them at once (offline bundles).
	AwaitAgents bool
	// Forgotten, if set, is told each time a node's agent rows are
	// forgotten, with the reason (ReasonNodeDeleted, ReasonForgetAfter).
	Forgotten func(cluster, node, reason string)
	// Now is the clock certificates are judged by (time.Now).
	Now func() time.Time
}

// Applier is the join engine over a state store. Its methods are safe for
// concurrent use: go-memdb serialises writers.
type Applier struct {
	store   *state.Store
	cfg     Config
	settled atomic.Bool // agents had their chance to reconnect
	// certNext is the earliest moment (Unix nanoseconds) a live node's
	// certificate becomes expiring or expired; 0 when none will.
	certNext atomic.Int64
}

// New returns an engine over store.
func New(store *state.Store, cfg Config) *Applier {
	cfg.Settings = cfg.Settings.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Applier{store: store, cfg: cfg}
	e.settled.Store(!cfg.AwaitAgents)
	return e
}

// Store returns the engine's store.
func (e *Applier) Store() *state.Store { return e.store }

// Settings returns the finding thresholds in use.
func (e *Applier) Settings() join.Settings { return e.cfg.Settings }

// ErrNoState means a delta arrived for a node with no snapshot applied.
var ErrNoState = errors.New("no snapshot for this node")

// Inventory is a full node report.
type Inventory struct {
	Cluster   string
	Node      string
	Identity  *v1.NodeIdentity
	Kubelet   *v1.KubeletInfo
	Stats     *v1.ScanStats
	Processes []*v1.Process
	Manifests []*v1.StaticPodManifest
	// Certificates are the node's certificates.
	Certificates []*v1.Certificate
	State        v1.AgentState
	Generation   uint64
	// Bytes is the wire size of Processes and Manifests, when the caller
	// counted it (0: the engine counts).
	Bytes int64
	// SeenAt is when the report arrived; Reference is the clock the node's
	// wall clock is compared with (SeenAt for live agents, the bundle's
	// collection time offline).
	SeenAt    time.Time
	Reference time.Time
}

// ApplyInventory replaces a node's agent state with a full report.
func (e *Applier) ApplyInventory(inv Inventory) error {
	if inv.Cluster == "" || inv.Node == "" {
		return errors.New("inventory without cluster or node name")
	}
	txn := e.store.WriteTxn()
	defer txn.Abort()
	e.ensureCluster(txn, inv.Cluster, func(c *state.Cluster) bool {
		if inv.State == v1.AgentState_AGENT_STATE_OFFLINE && !c.Offline {
			c.Offline = true
			return true
		}
		return false
	})
	n := e.nodeRow(txn, inv.Cluster, inv.Node)
	n.Agent = &state.NodeAgent{
		Identity:     inv.Identity,
		Kubelet:      inv.Kubelet,
		Stats:        inv.Stats,
		State:        inv.State,
		LastSeen:     inv.SeenAt,
		ClockSkew:    skew(inv.Identity.GetWallClock().AsTime(), inv.Reference, inv.Identity.GetWallClock() != nil),
		Generation:   inv.Generation,
		Certificates: sortedCertificates(inv.Certificates),
	}
	if inv.State == v1.AgentState_AGENT_STATE_OFFLINE {
		n.Agent.Reference = inv.Reference
	}
	procs := append([]*v1.Process(nil), inv.Processes...)
	sort.Slice(procs, func(i, j int) bool { return procs[i].Pid < procs[j].Pid })
	mans := append([]*v1.StaticPodManifest(nil), inv.Manifests...)
	sort.Slice(mans, func(i, j int) bool { return mans[i].Path < mans[j].Path })
	id := state.NodeID(inv.Cluster, inv.Node)
	if err := txn.PutNode(n); err != nil {
		return err
	}
	pbytes, mbytes := inv.Bytes, int64(0)
	if pbytes == 0 {
		pbytes, mbytes = sizeOf(procs), sizeOf(mans)
	}
	if err := txn.PutProcesses(&state.Processes{ID: id, Cluster: inv.Cluster, Node: inv.Node, Procs: procs, Bytes: pbytes}); err != nil {
		return err
	}
	if err := txn.PutManifests(&state.Manifests{ID: id, Cluster: inv.Cluster, Node: inv.Node, Manifests: mans, Bytes: mbytes}); err != nil {
		return err
	}
	first := e.markHasAgents(txn, inv.Cluster)
	if err := e.rejoin(txn, inv.Cluster, []string{inv.Node}); err != nil {
		return err
	}
	if first {
		// Nodes without agents become findings once the cluster has any.
		if err := e.rejoinCluster(txn, inv.Cluster); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

// ApplyDelta applies changes on top of a node's last report. A delta that
// would take the node past lim is not applied and returns a *LimitError.
func (e *Applier) ApplyDelta(cluster, node string, d *v1.Delta, seenAt time.Time, generation uint64, lim Limits) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	id := state.NodeID(cluster, node)
	old, err := txn.Processes(nil, cluster, node)
	if err != nil {
		return err
	}
	row, err := txn.Node(nil, cluster, node)
	if err != nil {
		return err
	}
	if old == nil || row == nil || row.Agent == nil {
		return ErrNoState
	}
	procs, pbytes := applyProcessDelta(old.Procs, old.Bytes, d)
	if lim.MaxProcesses > 0 && len(procs) > lim.MaxProcesses {
		return &LimitError{What: "processes", Limit: int64(lim.MaxProcesses), Got: int64(len(procs))}
	}
	oldMans, err := txn.Manifests(nil, cluster, node)
	if err != nil {
		return err
	}
	if oldMans == nil {
		oldMans = &state.Manifests{}
	}
	mans, mbytes := oldMans.Manifests, oldMans.Bytes
	manifestsChanged := len(d.UpsertedManifests) > 0 || len(d.RemovedManifestPaths) > 0
	if manifestsChanged {
		mans, mbytes = applyManifestDelta(oldMans.Manifests, oldMans.Bytes, d)
		if lim.MaxManifests > 0 && len(mans) > lim.MaxManifests {
			return &LimitError{What: "manifests", Limit: int64(lim.MaxManifests), Got: int64(len(mans))}
		}
	}
	if lim.MaxBytes > 0 && pbytes+mbytes > lim.MaxBytes {
		return &LimitError{What: "bytes", Limit: lim.MaxBytes, Got: pbytes + mbytes}
	}
	if err := txn.PutProcesses(&state.Processes{ID: id, Cluster: cluster, Node: node, Procs: procs, Bytes: pbytes}); err != nil {
		return err
	}
	if manifestsChanged {
		if err := txn.PutManifests(&state.Manifests{ID: id, Cluster: cluster, Node: node, Manifests: mans, Bytes: mbytes}); err != nil {
			return err
		}
	}
	n := row.Copy()
	a := *n.Agent
	a.LastSeen = seenAt
	a.Generation = generation
	a.State = v1.AgentState_AGENT_STATE_REPORTING
	if d.Kubelet != nil {
		a.Kubelet = d.Kubelet
	}
	if d.Stats != nil {
		a.Stats = d.Stats
	}
	if d.Certificates != nil {
		a.Certificates = sortedCertificates(d.Certificates.Certificates)
	}
	if d.WallClock != nil {
		a.ClockSkew = skew(d.WallClock.AsTime(), seenAt, true)
	}
	n.Agent = &a
	return e.commitNode(txn, n)
}

// Heartbeat records that a node's agent is alive. It re-joins the node only
// when that changes an answer (the agent was stale, or the clock skew
// crossed the threshold).
func (e *Applier) Heartbeat(cluster, node string, wall, seenAt time.Time) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	row, err := txn.Node(nil, cluster, node)
	if err != nil {
		return err
	}
	if row == nil || row.Agent == nil {
		return ErrNoState
	}
	n := row.Copy()
	a := *n.Agent
	before := e.skewed(a.ClockSkew)
	wasState := a.State
	a.LastSeen = seenAt
	a.State = v1.AgentState_AGENT_STATE_REPORTING
	if !wall.IsZero() {
		a.ClockSkew = skew(wall, seenAt, true)
	}
	n.Agent = &a
	if err := txn.PutNode(n); err != nil {
		return err
	}
	if wasState != a.State || before != e.skewed(a.ClockSkew) {
		if err := e.rejoin(txn, cluster, []string{node}); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

func (e *Applier) skewed(d time.Duration) bool {
	return d > e.cfg.Settings.ClockSkew || d < -e.cfg.Settings.ClockSkew
}

// SetAgentState marks a node's agent stale, expired or reporting; its last
// report is kept.
func (e *Applier) SetAgentState(cluster, node string, st v1.AgentState) error {
	txn := e.store.WriteTxn()
	defer txn.Abort()
	row, err := txn.Node(nil, cluster, node)
	if err != nil {
		return err
	}
	if row == nil || row.Agent == nil || row.Agent.State == st {
		return nil
	}
	n := row.Copy()
	a := *n.Agent
	a.State = st
	n.Agent = &a
	return e.commitNode(txn, n)
}

func skew(wall, ref time.Time, ok bool) time.Duration {
	if !ok || ref.IsZero() {
		return 0
	}
	return wall.Sub(ref)
}

// applyProcessDelta returns the node's processes after d, and their wire
// size, counted from the old size by what d adds and takes away.
func applyProcessDelta(old []*v1.Process, oldBytes int64, d *v1.Delta) ([]*v1.Process, int64) {
	type key struct {
		pid   int32
		start int64
	}
	keyOf := func(pid int32, p *v1.Process) key { return key{pid, p.GetStartTime().AsTime().UnixNano()} }
	removed := make(map[key]bool, len(d.RemovedProcesses))
	for _, r := range d.RemovedProcesses {
		removed[key{r.Pid, r.GetStartTime().AsTime().UnixNano()}] = true
	}
	up := make(map[key]*v1.Process, len(d.UpsertedProcesses))
	for _, p := range d.UpsertedProcesses {
		up[keyOf(p.Pid, p)] = p
	}
	bytes := oldBytes
	for _, p := range up {
		bytes += int64(proto.Size(p))
	}
	out := make([]*v1.Process, 0, len(old)+len(d.UpsertedProcesses))
	for _, p := range old {
		k := keyOf(p.Pid, p)
		if removed[k] {
			bytes -= int64(proto.Size(p))
			continue
		}
		if n, ok := up[k]; ok {
			bytes -= int64(proto.Size(p))
			out = append(out, n)
			delete(up, k)
			continue
		}
		out = append(out, p)
	}
	for _, p := range up {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out, bytes
}

// applyManifestDelta returns the node's manifests after d, and their wire size.
func applyManifestDelta(old []*v1.StaticPodManifest, oldBytes int64, d *v1.Delta) ([]*v1.StaticPodManifest, int64) {
	byPath := make(map[string]*v1.StaticPodManifest, len(old))
	for _, m := range old {
		byPath[m.Path] = m
	}
	bytes := oldBytes
	for _, p := range d.RemovedManifestPaths {
		if m, ok := byPath[p]; ok {
			bytes -= int64(proto.Size(m))
			delete(byPath, p)
		}
	}
	for _, m := range d.UpsertedManifests {
		if o, ok := byPath[m.Path]; ok {
			bytes -= int64(proto.Size(o))
		}
		bytes += int64(proto.Size(m))
		byPath[m.Path] = m
	}
	out := make([]*v1.StaticPodManifest, 0, len(byPath))
	for _, m := range byPath {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, bytes
}

// sizeOf is the wire size of a node's records.
func sizeOf[M proto.Message](ms []M) int64 {
	var n int64
	for _, m := range ms {
		n += int64(proto.Size(m))
	}
	return n
}

// commitNode writes n, re-joins its node and commits.
func (e *Applier) commitNode(txn *state.Txn, n *state.Node) error {
	if err := txn.PutNode(n); err != nil {
		return err
	}
	if err := e.rejoin(txn, n.Cluster, []string{n.Name}); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// ensureCluster makes sure the cluster row exists, applying change (which
// reports whether it changed anything) to a copy.
func (e *Applier) ensureCluster(txn *state.Txn, name string, change func(*state.Cluster) bool) *state.Cluster {
	row, _ := txn.Cluster(nil, name)
	var c *state.Cluster
	if row == nil {
		c = &state.Cluster{Name: name, Mode: v1.ClusterMode_CLUSTER_MODE_UNKNOWN}
		if change != nil {
			change(c)
		}
	} else {
		if change == nil {
			return row
		}
		c = row.Copy()
		if !change(c) {
			return row
		}
	}
	if err := txn.PutCluster(c); err != nil {
		panic(fmt.Sprintf("engine: %v", err))
	}
	return c
}

// nodeRow returns a copy of the node's row, or a new one.
func (e *Applier) nodeRow(txn *state.Txn, cluster, node string) *state.Node {
	row, _ := txn.Node(nil, cluster, node)
	if row == nil {
		return &state.Node{ID: state.NodeID(cluster, node), Cluster: cluster, Name: node}
	}
	return row.Copy()
}

// markHasAgents records on the cluster row that agents report; it returns
// true the first time.
func (e *Applier) markHasAgents(txn *state.Txn, cluster string) bool {
	first := false
	e.ensureCluster(txn, cluster, func(c *state.Cluster) bool {
		if c.HasAgents {
			return false
		}
		c.HasAgents, first = true, true
		return true
	})
	return first
}

// rejoinCluster re-joins every node of a cluster: only for cluster-wide
// changes (first agent, kube-apiserver version, API connection).
func (e *Applier) rejoinCluster(txn *state.Txn, cluster string) error {
	var nodes []string
	for n := range txn.NodesOf(nil, cluster) {
		nodes = append(nodes, n.Name)
	}
	return e.rejoin(txn, cluster, nodes)
}

// rejoin re-joins the given nodes of one cluster and, when their control-plane
// answers changed, the cluster's mode.
func (e *Applier) rejoin(txn *state.Txn, cluster string, nodes []string) error {
	c, _ := txn.Cluster(nil, cluster)
	if c == nil {
		c = e.ensureCluster(txn, cluster, nil)
	}
	cpChanged := false
	for _, node := range nodes {
		changed, err := e.rejoinNode(txn, c, node)
		if err != nil {
			return err
		}
		cpChanged = cpChanged || changed
	}
	if !cpChanged {
		return nil
	}
	return e.recomputeCluster(txn, cluster)
}

func (e *Applier) rejoinNode(txn *state.Txn, c *state.Cluster, node string) (bool, error) {
	start := time.Now()
	if e.cfg.ObserveJoin != nil {
		defer func() { e.cfg.ObserveJoin(time.Since(start)) }()
	}
	cluster := c.Name
	id := state.NodeID(cluster, node)
	in := join.NodeInput{
		Cluster:          cluster,
		AgentsSettled:    e.settled.Load(),
		APIConnected:     c.APIConnected,
		ClusterHasAgents: c.HasAgents,
		APIServerVersion: c.APIServerOldest,
		ServerVersion:    c.APIVersion,
		Settings:         e.cfg.Settings,
		Workload: func(uid string) *state.Workload {
			w, _ := txn.WorkloadByUID(nil, cluster, uid)
			return w
		},
	}
	row, err := txn.Node(nil, cluster, node)
	if err != nil {
		return false, err
	}
	if row != nil && row.Published != nil {
		// A fleet view's node is as its aggregator published it.
		return false, nil
	}
	n := row
	if ps, _ := txn.Processes(nil, cluster, node); ps != nil {
		in.Procs = ps.Procs
		if in.Procs == nil {
			in.Procs = []*v1.Process{}
		}
	}
	if ms, _ := txn.Manifests(nil, cluster, node); ms != nil {
		in.Manifests = ms.Manifests
	}
	for p := range txn.PodsOn(nil, cluster, node) {
		in.Pods = append(in.Pods, p)
	}
	var res join.NodeResult
	if n == nil {
		if len(in.Pods) == 0 {
			// Nothing is known of the node any more.
			return e.replaceNodeAnswers(txn, cluster, node, nil, nil)
		}
		n = &state.Node{ID: id, Cluster: cluster, Name: node}
	}
	in.Node = n
	in.Now = e.cfg.Now()
	if a := n.Agent; a != nil && !a.Reference.IsZero() {
		in.Now = a.Reference
	} else if a != nil && len(a.Certificates) > 0 {
		e.noteCertificates(a.Certificates, in.Now)
	}
	res = join.Node(in)
	if !slices.Equal(n.Roles, res.Roles) {
		n = n.Copy()
		n.Roles = res.Roles
		if row != nil || len(res.Instances) > 0 {
			if err := txn.PutNode(n); err != nil {
				return false, err
			}
		}
	}
	return e.replaceNodeAnswers(txn, cluster, node, res.Instances, res.Findings)
}

// replaceNodeAnswers writes a node's new instances and findings over its old
// ones, touching only rows that changed. It reports whether any
// control-plane instance changed.
func (e *Applier) replaceNodeAnswers(txn *state.Txn, cluster, node string, insts []*v1.ComponentInstance, finds []*v1.Finding) (bool, error) {
	comps := make([]*state.Component, len(insts))
	for i, in := range insts {
		comps[i] = state.NewComponent(in)
	}
	changed, err := txn.ReplaceComponents(cluster, node, comps, func(a, b *state.Component) bool { return proto.Equal(a.Instance(), b.Instance()) })
	if err != nil {
		return false, err
	}
	cpChanged := slices.ContainsFunc(changed, func(c *state.Component) bool { return v1.IsControlPlane(c.Component) })
	return cpChanged, e.replaceFindings(txn, cluster, node, finds)
}

// replaceFindings writes a node's new findings over its old ones, touching
// only rows that changed.
func (e *Applier) replaceFindings(txn *state.Txn, cluster, node string, finds []*v1.Finding) error {
	rows := make([]*state.Finding, len(finds))
	for i, f := range finds {
		rows[i] = state.NewFinding(f)
	}
	return replaceRows(txn.FindingsOn(nil, cluster, node), rows, txn.PutFinding, txn.DeleteFinding,
		func(f *state.Finding) string { return f.ID },
		func(a, b *state.Finding) bool { return proto.Equal(a.Finding, b.Finding) })
}

// replaceRows writes rows over a node's old rows, putting only new or
// changed rows and deleting the rest.
func replaceRows[R any](current iter.Seq[R], rows []R, put, del func(R) error, id func(R) string, same func(a, b R) bool) error {
	old := map[string]R{}
	for r := range current {
		old[id(r)] = r
	}
	for _, r := range rows {
		if o, ok := old[id(r)]; ok {
			delete(old, id(r))
			if same(o, r) {
				continue
			}
		}
		if err := put(r); err != nil {
			return err
		}
	}
	for _, o := range old {
		if err := del(o); err != nil {
			return err
		}
	}
	return nil
}

// recomputeCluster decides the cluster's mode from its control-plane
// instances; a changed kube-apiserver version re-joins the cluster's nodes
// for the version skew check.
func (e *Applier) recomputeCluster(txn *state.Txn, cluster string) error {
	var cp []*v1.ComponentInstance
	for _, comp := range v1.Components {
		if !v1.IsControlPlane(comp) {
			continue
		}
		for c := range txn.ComponentsWithPrefix(nil, state.ComponentKeyPrefix(cluster, comp)) {
			cp = append(cp, c.Instance())
		}
	}
	c, err := txn.Cluster(nil, cluster)
	if err != nil || c == nil {
		return err
	}
	res := join.Cluster(join.ClusterInput{ControlPlane: cp, APIConnected: c.APIConnected, AnyAgent: c.HasAgents, APIVersion: c.APIVersion,
		APIHost: c.APIHost, NodeLabelProvider: c.NodeLabelProvider, NodeLabel: c.NodeLabel,
		APIEndpoints: c.APIEndpoints, IsNodeAddress: func(addr string) bool {
			for n := range txn.NodesOf(nil, cluster) {
				if n.API != nil && slices.Contains(n.API.InternalIPs, addr) {
					return true
				}
			}
			return false
		}})
	versionChanged := res.APIServerOldest != c.APIServerOldest
	nc := c.Copy()
	nc.APIServerOldest = res.APIServerOldest
	nc.Mode, nc.ModeEvidence, nc.ControlPlaneNodes, nc.APIServerVersion = res.Mode, res.Evidence, res.ControlPlaneNodes, res.APIServerVersion
	nc.Provider, nc.Datastore = res.Provider, res.Datastore
	if err := txn.PutCluster(nc); err != nil {
		return err
	}
	if versionChanged {
		// The skew policy measures every node's components against the
		// oldest kube-apiserver: a rare change, and every node re-joins.
		var nodes []string
		for n := range txn.NodesOf(nil, cluster) {
			nodes = append(nodes, n.Name)
		}
		for _, n := range nodes {
			if _, err := e.rejoinNode(txn, nc, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// sortedCertificates returns the certificates in the order the API lists
// them: path, field, index.
func sortedCertificates(certs []*v1.Certificate) []*v1.Certificate {
	if len(certs) == 0 {
		return nil
	}
	out := slices.Clone(certs)
	slices.SortFunc(out, func(a, b *v1.Certificate) int {
		if a.Path != b.Path {
			return strings.Compare(a.Path, b.Path)
		}
		if a.Field != b.Field {
			return strings.Compare(a.Field, b.Field)
		}
		return int(a.Index) - int(b.Index)
	})
	return out
}
