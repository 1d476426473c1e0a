// Package query serves InventoryService over the state store.
package query

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/filter"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Page sizes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Server answers InventoryService calls.
type Server struct {
	v1.UnimplementedInventoryServiceServer
	store *state.Store
	// BatchInterval is the least time between two responses to a watcher
	// that groups events (WatchRequest.max_batch above 1).
	BatchInterval time.Duration
	// RunHold is how long a watcher of every event holds back the start
	// of a run of events (state.GroupEvents) until the run is whole and
	// can go out as one part encoded once for every such watcher; 0 holds
	// nothing back.
	RunHold time.Duration
	// Now is the clock ListCertificates's expiring_within counts from
	// (time.Now).
	Now func() time.Time
	// FleetView is set on a fleet view: it holds no processes, manifests
	// or certificates, and says which aggregator does.
	FleetView bool
	// Backlog, when set, is the writer's backlog (a fleet view's bucket
	// watch). While it is busy, a watcher holds back its sends for up to
	// IngestFirst, so that a burst is applied before it is fanned out.
	Backlog *state.Backlog
	// IngestFirst bounds how long the oldest event a watcher has yet to
	// send waits while Backlog is busy; 0 never holds back.
	IngestFirst time.Duration

	stopping chan struct{}
	stopOnce sync.Once
}

// Shutdown ends every Watch at once with Unavailable, so that a graceful
// stop does not wait for watchers to hang up.
func (s *Server) Shutdown() { s.stopOnce.Do(func() { close(s.stopping) }) }

var errShutdown = status.Error(codes.Unavailable, "the aggregator is shutting down; watch again")

// DefaultRunHold is the RunHold of a new server.
const DefaultRunHold = 25 * time.Millisecond

// DefaultIngestFirst is the IngestFirst of a new server: longer than a
// 100,000-node fleet view takes to apply a burst of 10,000 node updates
// (2–4 s on two cores), short enough for a watcher to act on.
const DefaultIngestFirst = 5 * time.Second

// yieldFill is how full the history may grow while watchers hold back:
// beyond it they read on, so that holding back never makes one lose events.
const yieldFill = 0.5

// yieldCheck is how often a watcher that holds back looks again at its
// events' age and the history.
const yieldCheck = 50 * time.Millisecond

// DefaultBatchInterval is the BatchInterval of a new server.
const DefaultBatchInterval = 50 * time.Millisecond

var _ v1.InventoryServiceServer = (*Server)(nil)

// NewServer returns a query server over store.
func NewServer(store *state.Store) *Server {
	return &Server{store: store, BatchInterval: DefaultBatchInterval, RunHold: DefaultRunHold, IngestFirst: DefaultIngestFirst,
		stopping: make(chan struct{})}
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, status.Errorf(codes.InvalidArgument, "page_size %d is negative", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

// echo bounds how much of a client's own text an error repeats.
func echo(s string) string { return safetext.Ellipsis(s, 64) }

// compileFilter compiles a request's filter; a bad one is InvalidArgument
// with CEL's message and position.
func compileFilter(kind filter.Kind, expr string) (*filter.Filter, error) {
	f, err := filter.Compile(kind, expr)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, safetext.Ellipsis(err.Error(), 1024))
	}
	return f, nil
}

// matched turns a filter's verdict on a row into the List's: an expression
// too costly for one row refuses the request.
func matched(ok bool, err error) (bool, error) {
	if err != nil {
		return false, status.Error(codes.InvalidArgument, err.Error())
	}
	return ok, nil
}

// ListClusters implements InventoryService.
func (s *Server) ListClusters(_ context.Context, req *v1.ListClustersRequest) (*v1.ListClustersResponse, error) {
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Clusters, req.Filter)
	if err != nil {
		return nil, err
	}
	view := s.store.View()
	resp := &v1.ListClustersResponse{}
	last := ""
	for c := range view.Clusters(nil, pg.after) {
		if pg.after != "" && c.Name <= pg.after {
			continue
		}
		cp := ClusterProto(view, c)
		if ok, err := matched(flt.Cluster(cp)); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		if !pg.fits(proto.Size(cp)) {
			resp.NextPageToken = pg.token(last)
			break
		}
		resp.Clusters = append(resp.Clusters, cp)
		last = c.Name
	}
	return resp, nil
}

// GetCluster implements InventoryService.
func (s *Server) GetCluster(_ context.Context, req *v1.GetClusterRequest) (*v1.GetClusterResponse, error) {
	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	view := s.store.View()
	c, err := view.Cluster(nil, req.Name)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "cluster %q not found", echo(req.Name))
	}
	return &v1.GetClusterResponse{Cluster: ClusterProto(view, c)}, nil
}

// ClusterProto is a cluster as the API answers it.
func ClusterProto(view *state.View, c *state.Cluster) *v1.Cluster {
	if c.Published != nil {
		// A fleet view answers as the owning aggregator did, with how
		// fresh that answer is.
		out := proto.CloneOf(c.Published)
		out.Publisher, out.Freshness = c.Publisher, c.Freshness
		if !c.UpdatedAt.IsZero() {
			out.UpdatedAt = timestamppb.New(c.UpdatedAt)
		}
		return out
	}
	out := &v1.Cluster{
		Name: c.Name, Uid: c.UID, Mode: c.Mode, ModeEvidence: c.ModeEvidence,
		ControlPlaneNodes: c.ControlPlaneNodes, KubernetesVersion: c.APIServerVersion, ApiConnected: c.APIConnected,
		Provider: c.Provider, Datastore: c.Datastore,
	}
	if out.KubernetesVersion == "" {
		out.KubernetesVersion = c.APIVersion
	}
	for n := range view.NodesOf(nil, c.Name) {
		out.NodeCount++
		if n.Agent != nil && (n.Agent.State == v1.AgentState_AGENT_STATE_REPORTING || n.Agent.State == v1.AgentState_AGENT_STATE_OFFLINE) {
			out.ReportingNodeCount++
		}
	}
	for range view.FindingsOf(nil, c.Name) {
		out.FindingCount++
	}
	return out
}

func agentState(n *state.Node) v1.AgentState {
	if n.Published != nil {
		return n.Published.AgentState
	}
	if n.Agent == nil {
		return v1.AgentState_AGENT_STATE_NO_AGENT
	}
	return n.Agent.State
}

// NodeProto is a node as the API answers it.
func NodeProto(view *state.View, n *state.Node) *v1.Node {
	if n.Published != nil {
		return n.Published
	}
	out := &v1.Node{Cluster: n.Cluster, Name: n.Name, Roles: n.Roles, InApi: n.API != nil, AgentState: agentState(n)}
	if n.API != nil {
		out.KubeletVersion = n.API.KubeletVersion
		out.InternalIps = n.API.InternalIPs
	}
	if a := n.Agent; a != nil {
		out.Identity = a.Identity
		out.Kubelet = a.Kubelet
		if !a.LastSeen.IsZero() {
			out.LastSeen = timestamppb.New(a.LastSeen)
		}
		out.ClockSkew = durationpb.New(a.ClockSkew)
	}
	if ps, _ := view.Processes(nil, n.Cluster, n.Name); ps != nil {
		out.ProcessCount = int32(len(ps.Procs))
	}
	if ms, _ := view.Manifests(nil, n.Cluster, n.Name); ms != nil {
		out.ManifestCount = int32(len(ms.Manifests))
	}
	if n.Agent != nil {
		out.CertificateCount = int32(len(n.Agent.Certificates))
	}
	return out
}

// ListNodes implements InventoryService.
func (s *Server) ListNodes(_ context.Context, req *v1.ListNodesRequest) (*v1.ListNodesResponse, error) {
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	if err := checkEnums(req.AgentState); err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Nodes, req.Filter)
	if err != nil {
		return nil, err
	}
	after := pg.after
	prefix := ""
	if req.Cluster != "" {
		prefix = req.Cluster + "/"
	}
	view := s.store.View()
	resp := &v1.ListNodesResponse{}
	for n := range view.Nodes(nil, max(prefix, after)) {
		if !strings.HasPrefix(n.ID, prefix) {
			break
		}
		if after != "" && n.ID <= after {
			continue
		}
		if req.AgentState != v1.AgentState_AGENT_STATE_UNSPECIFIED && agentState(n) != req.AgentState {
			continue
		}
		np := NodeProto(view, n)
		if ok, err := matched(flt.Node(np)); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		if !pg.fits(proto.Size(np)) {
			last := resp.Nodes[len(resp.Nodes)-1]
			resp.NextPageToken = pg.token(state.NodeID(last.Cluster, last.Name))
			break
		}
		resp.Nodes = append(resp.Nodes, np)
	}
	return resp, nil
}

// GetNode implements InventoryService.
func (s *Server) GetNode(_ context.Context, req *v1.GetNodeRequest) (*v1.GetNodeResponse, error) {
	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	view := s.store.View()
	var found []*state.Node
	if req.Cluster != "" {
		if n, _ := view.Node(nil, req.Cluster, req.Name); n != nil {
			found = append(found, n)
		}
	} else {
		for c := range view.Clusters(nil, "") {
			if n, _ := view.Node(nil, c.Name, req.Name); n != nil {
				found = append(found, n)
			}
		}
	}
	switch len(found) {
	case 0:
		if req.Cluster != "" {
			return nil, status.Errorf(codes.NotFound, "node %q not found in cluster %q", echo(req.Name), echo(req.Cluster))
		}
		return nil, status.Errorf(codes.NotFound, "node %q not found", echo(req.Name))
	case 1:
	default:
		var cs []string
		for _, n := range found {
			cs = append(cs, n.Cluster)
		}
		return nil, status.Errorf(codes.InvalidArgument, "node %q exists in clusters %s; name the cluster", req.Name, strings.Join(cs, ", "))
	}
	n := found[0]
	resp := &v1.GetNodeResponse{Node: NodeProto(view, n)}
	for c := range view.ComponentsOn(nil, n.Cluster, n.Name) {
		resp.Components = append(resp.Components, c.Instance())
	}
	sortInstances(resp.Components)
	return resp, nil
}

func sortInstances(in []*v1.ComponentInstance) {
	sort.Slice(in, func(i, j int) bool {
		a, b := in[i], in[j]
		if ra, rb := v1.ComponentRank(a.Component), v1.ComponentRank(b.Component); ra != rb {
			return ra < rb
		}
		return a.Id < b.Id
	})
}

// ListComponents implements InventoryService.
func (s *Server) ListComponents(_ context.Context, req *v1.ListComponentsRequest) (*v1.ListComponentsResponse, error) {
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	if err := checkEnums(req.How); err != nil {
		return nil, err
	}
	after := pg.after
	if req.Component != "" && v1.ComponentRank(req.Component) == len(v1.Components) {
		return nil, status.Errorf(codes.InvalidArgument, "unknown component %q; known: %s", echo(req.Component), strings.Join(v1.Components, ", "))
	}
	if !checkView(req.View) {
		return nil, status.Errorf(codes.InvalidArgument, "unknown view %d; known: COMPONENT_VIEW_BASIC, COMPONENT_VIEW_FULL", req.View)
	}
	flt, err := compileFilter(filter.Components, req.Filter)
	if err != nil {
		return nil, err
	}
	// The filter's top-level equalities on indexed fields narrow the scan
	// as the typed fields do; a typed field and an equality that disagree
	// match nothing.
	cluster, component, node, impl, how := req.Cluster, req.Component, req.Node, req.Implementation, req.How
	if flt != nil {
		for field, v := range flt.Pushed {
			var typed *string
			switch field {
			case "cluster":
				typed = &cluster
			case "component":
				typed = &component
			case "node":
				typed = &node
			case "implementation":
				typed = &impl
			case "how":
				h, ok := v1.DeploymentKind_value[v]
				if !ok || (how != v1.DeploymentKind_DEPLOYMENT_KIND_UNSPECIFIED && how != v1.DeploymentKind(h)) {
					return &v1.ListComponentsResponse{}, nil
				}
				how = v1.DeploymentKind(h)
				continue
			}
			if *typed != "" && *typed != v {
				return &v1.ListComponentsResponse{}, nil
			}
			*typed = v
		}
	}
	order, prefix := state.ByCluster, ""
	switch {
	case cluster != "":
		prefix = state.ComponentKeyPrefix(cluster, component)
	case component != "":
		order, prefix = state.ByComponent, component+"\x00"
	}
	view := s.store.View()
	resp := &v1.ListComponentsResponse{}
	var last *state.Component
	var k []byte
	pp := pages.Get().(*[]pageItem)
	page := (*pp)[:0]
	defer func() {
		if cap(page) <= maxPooledPage {
			clear(page)
			*pp = page[:0]
			pages.Put(pp)
		}
	}()
	encoded := false
	basic := req.View == v1.ComponentView_COMPONENT_VIEW_BASIC
	for c := range view.Components(nil, order, max(prefix, after)) {
		k = c.AppendSortKey(order, k[:0])
		if !bytes.HasPrefix(k, []byte(prefix)) {
			break
		}
		if after != "" && string(k) <= after {
			continue
		}
		if node != "" && c.Node != node {
			continue
		}
		slot := formFull
		if basic {
			slot = formBasic
		}
		if c.Encoded() && how == v1.DeploymentKind_DEPLOYMENT_KIND_UNSPECIFIED && impl == "" && !flt.NeedsDetail() {
			// Nothing to read in the instance: its encoding is sent as
			// it is, with no decode and no encode.
			size := c.Size(slot, func() int { return c.EncodingSize(basic) })
			if !pg.fits(size) {
				resp.NextPageToken = pg.token(lastKey(last, order))
				break
			}
			page = toPage(page, resp, &encoded)
			page = append(page, pageItem{row: c, size: size})
			last = c
			continue
		}
		var in *v1.ComponentInstance
		if basic && !flt.NeedsDetail() {
			in = c.InstanceBasic()
		} else {
			in = c.Instance()
		}
		if (how != v1.DeploymentKind_DEPLOYMENT_KIND_UNSPECIFIED && in.How != how) ||
			(impl != "" && in.Implementation != impl) {
			continue
		}
		if ok, err := matched(flt.Rest(in)); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		item := inView(in, req.View)
		size := c.Size(slot, func() int {
			if c.Encoded() {
				// Sent as it is kept, which need not be as protobuf
				// would encode it again.
				return c.EncodingSize(basic)
			}
			return proto.Size(item)
		})
		if !pg.fits(size) {
			resp.NextPageToken = pg.token(lastKey(last, order))
			break
		}
		switch {
		case c.Encoded():
			// Decoded to be filtered; sent as it is kept.
			page = toPage(page, resp, &encoded)
			page = append(page, pageItem{row: c, size: size})
		case encoded:
			page = append(page, pageItem{item: item, size: size})
		default:
			resp.Components = append(resp.Components, item)
		}
		last = c
	}
	if !encoded {
		return resp, nil
	}
	// Instances kept encoded are sent as they are, in one buffer of the
	// answer's size; any others are encoded beside them, in order.
	total := 0
	for _, p := range page {
		total += protowire.SizeTag(componentsField) + protowire.SizeBytes(p.size)
	}
	buf := answerPool.Get(total)
	enc := (*buf)[:0]
	for _, p := range page {
		enc = protowire.AppendTag(enc, componentsField, protowire.BytesType)
		enc = protowire.AppendVarint(enc, uint64(p.size))
		start := len(enc)
		if p.row != nil {
			enc, _ = p.row.AppendEncoding(enc, basic)
		} else {
			var err error
			if enc, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(enc, p.item); err != nil {
				answerPool.Put(buf)
				return nil, status.Errorf(codes.Internal, "encoding instance %s: %v", p.item.Id, err)
			}
		}
		if len(enc)-start != p.size {
			answerPool.Put(buf)
			return nil, status.Errorf(codes.Internal, "instance encoded in %d bytes, sized %d", len(enc)-start, p.size)
		}
	}
	// The buffer is lent: Codec sends it as it is and grpc returns it to
	// the pool once written.
	resp.ProtoReflect().SetUnknown(enc)
	lendAnswer(resp, buf)
	return resp, nil
}

// pages keeps ListComponents' page lists for the next request; one of
// more than maxPooledPage items is left to the collector.
var pages = sync.Pool{New: func() any { p := make([]pageItem, 0, 1024); return &p }}

const maxPooledPage = 4096

// toPage moves the instances of resp into page the first time an
// instance kept encoded joins the answer.
func toPage(page []pageItem, resp *v1.ListComponentsResponse, encoded *bool) []pageItem {
	if *encoded {
		return page
	}
	*encoded = true
	for _, in := range resp.Components {
		page = append(page, pageItem{item: in, size: proto.Size(in)})
	}
	resp.Components = nil
	return page
}

// pageItem is an instance of a ListComponents page: a row that keeps its
// encoding, or an instance, and its size on the wire.
type pageItem struct {
	row  *state.Component
	item *v1.ComponentInstance
	size int
}

// lastKey is the sort key a next page resumes after.
func lastKey(last *state.Component, order state.ComponentOrder) string {
	if last == nil {
		return ""
	}
	return string(last.AppendSortKey(order, nil))
}

// componentsField is ListComponentsResponse.components' field number.
var componentsField = (&v1.ListComponentsResponse{}).ProtoReflect().Descriptor().Fields().ByName("components").Number()

// ComponentsOf returns a ListComponents answer's instances. A fleet view
// sends the instances it keeps encoded as they are, in the message's unknown
// fields under the components field's number, which every protobuf decoder
// (a gRPC client's included) reads as components; a caller in the same
// process, which gets the message itself, reads them with ComponentsOf.
func ComponentsOf(resp *v1.ListComponentsResponse) ([]*v1.ComponentInstance, error) {
	if len(resp.ProtoReflect().GetUnknown()) == 0 {
		return resp.Components, nil
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return nil, err
	}
	var out v1.ListComponentsResponse
	if err := proto.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out.Components, nil
}

// ListProcesses implements InventoryService.
func (s *Server) ListProcesses(_ context.Context, req *v1.ListProcessesRequest) (*v1.ListProcessesResponse, error) {
	if err := s.heldElsewhere("processes", req.Cluster); err != nil {
		return nil, err
	}
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Processes, req.Filter)
	if err != nil {
		return nil, err
	}
	after := pg.after
	afterNode, afterPID := "", int32(-1)
	if after != "" {
		n, p, ok := strings.Cut(after, "\x00")
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "page_token is malformed")
		}
		var pid int32
		if _, err := fmt.Sscan(p, &pid); err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token is malformed")
		}
		afterNode, afterPID = n, pid
	}
	prefix := nodePrefix(req.Cluster, req.Node)
	resp := &v1.ListProcessesResponse{}
	for ps := range s.store.View().ProcessSets(nil, max(prefix, afterNode)) {
		if !strings.HasPrefix(ps.ID, prefix) {
			break
		}
		if req.Node != "" && ps.Node != req.Node {
			continue
		}
		for _, p := range ps.Procs {
			if ps.ID == afterNode && p.Pid <= afterPID {
				continue
			}
			if (req.ComponentsOnly || req.Component != "") && len(p.Components) == 0 {
				continue
			}
			if req.Component != "" && !hosts(p, req.Component) {
				continue
			}
			if ok, err := matched(flt.Process(ps.Cluster, ps.Node, p)); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			np := &v1.NodeProcess{Cluster: ps.Cluster, Node: ps.Node, Process: p}
			if !pg.fits(proto.Size(np)) {
				l := resp.Processes[len(resp.Processes)-1]
				resp.NextPageToken = pg.token(state.NodeID(l.Cluster, l.Node) + "\x00" + fmt.Sprint(l.Process.Pid))
				return resp, nil
			}
			resp.Processes = append(resp.Processes, np)
		}
	}
	return resp, nil
}

// nodePrefix is the ID prefix of the per-node rows a request asks for:
// every node, one cluster's, or one node's.
func nodePrefix(cluster, node string) string {
	switch {
	case cluster == "":
		return ""
	case node == "":
		return cluster + "/"
	}
	return state.NodeID(cluster, node)
}

func hosts(p *v1.Process, component string) bool {
	for _, hc := range p.Components {
		if hc.Component == component {
			return true
		}
	}
	return false
}

// ListManifests implements InventoryService.
func (s *Server) ListManifests(_ context.Context, req *v1.ListManifestsRequest) (*v1.ListManifestsResponse, error) {
	if err := s.heldElsewhere("static pod manifests", req.Cluster); err != nil {
		return nil, err
	}
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Manifests, req.Filter)
	if err != nil {
		return nil, err
	}
	afterNode, afterPath, _ := strings.Cut(pg.after, "\x00")
	prefix := nodePrefix(req.Cluster, req.Node)
	view := s.store.View()
	resp := &v1.ListManifestsResponse{}
	for ms := range view.ManifestSets(nil, max(prefix, afterNode)) {
		if !strings.HasPrefix(ms.ID, prefix) {
			break
		}
		if req.Node != "" && ms.Node != req.Node {
			continue
		}
		var insts []*v1.ComponentInstance
		for c := range view.ComponentsOn(nil, ms.Cluster, ms.Node) {
			insts = append(insts, c.Instance())
		}
		for _, m := range ms.Manifests {
			if ms.ID == afterNode && m.Path <= afterPath {
				continue
			}
			nm := &v1.NodeManifest{Cluster: ms.Cluster, Node: ms.Node, Manifest: m}
			if m.PodName != "" {
				mirror := m.PodName + "-" + ms.Node
				if pod, _ := view.Pod(nil, ms.Cluster, m.PodNamespace, mirror); pod != nil {
					nm.MirrorPod = m.PodNamespace + "/" + mirror
				}
			}
			for _, in := range insts {
				if in.ManifestPath == m.Path && in.Pid != 0 {
					nm.Pids = append(nm.Pids, in.Pid)
				}
			}
			if ok, err := matched(flt.Manifest(ms.Cluster, ms.Node, nm.MirrorPod, m)); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			if !pg.fits(proto.Size(nm)) {
				l := resp.Manifests[len(resp.Manifests)-1]
				resp.NextPageToken = pg.token(state.NodeID(l.Cluster, l.Node) + "\x00" + l.Manifest.Path)
				return resp, nil
			}
			resp.Manifests = append(resp.Manifests, nm)
		}
	}
	return resp, nil
}

// ListCertificates implements InventoryService.
func (s *Server) ListCertificates(_ context.Context, req *v1.ListCertificatesRequest) (*v1.ListCertificatesResponse, error) {
	if err := s.heldElsewhere("certificates", req.Cluster); err != nil {
		return nil, err
	}
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Certificates, req.Filter)
	if err != nil {
		return nil, err
	}
	var deadline time.Time
	if w := req.ExpiringWithin; w != nil {
		if err := w.CheckValid(); err != nil || w.AsDuration() < 0 {
			return nil, status.Error(codes.InvalidArgument, "expiring_within must be a duration of zero or more")
		}
		deadline = s.now().Add(w.AsDuration())
	}
	afterNode, afterKey, _ := strings.Cut(pg.after, "\x00")
	prefix := nodePrefix(req.Cluster, req.Node)
	resp := &v1.ListCertificatesResponse{}
	for n := range s.store.View().Nodes(nil, max(prefix, afterNode)) {
		if !strings.HasPrefix(n.ID, prefix) {
			break
		}
		if (req.Node != "" && n.Name != req.Node) || n.Agent == nil {
			continue
		}
		for _, c := range n.Agent.Certificates {
			key := certificateKey(c)
			if n.ID == afterNode && key <= afterKey {
				continue
			}
			if !deadline.IsZero() && (c.NotAfter == nil || c.NotAfter.AsTime().After(deadline)) {
				continue
			}
			if ok, err := matched(flt.Certificate(n.Cluster, n.Name, c)); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			nc := &v1.NodeCertificate{Cluster: n.Cluster, Node: n.Name, Certificate: c}
			if !pg.fits(proto.Size(nc)) {
				l := resp.Certificates[len(resp.Certificates)-1]
				resp.NextPageToken = pg.token(state.NodeID(l.Cluster, l.Node) + "\x00" + certificateKey(l.Certificate))
				return resp, nil
			}
			resp.Certificates = append(resp.Certificates, nc)
		}
	}
	return resp, nil
}

// heldElsewhere refuses, on a fleet view, what only a cluster's own
// aggregator holds, naming that aggregator.
func (s *Server) heldElsewhere(what, cluster string) error {
	if !s.FleetView {
		return nil
	}
	view := s.store.View()
	var owners []string
	for c := range view.Clusters(nil, "") {
		if (cluster == "" || c.Name == cluster) && c.Publisher != "" {
			owners = append(owners, c.Name+" by "+c.Publisher)
		}
	}
	if cluster != "" && len(owners) == 0 {
		return status.Errorf(codes.NotFound, "cluster %q not found in the fleet view", echo(cluster))
	}
	return status.Errorf(codes.FailedPrecondition,
		"this is a fleet view: %s stay with the aggregator that owns each cluster; ask it (clusters held: %s)", what, strings.Join(owners, ", "))
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// certificateKey orders a node's certificates as they are stored: path,
// field, index.
func certificateKey(c *v1.Certificate) string {
	return fmt.Sprintf("%s\x00%s\x00%010d", c.Path, c.Field, c.Index)
}

func findingKey(f *v1.Finding) string {
	return fmt.Sprintf("%d\x00%s\x00%s", 9-int(f.Severity), f.Cluster, f.Id)
}

// ListFindings implements InventoryService.
func (s *Server) ListFindings(_ context.Context, req *v1.ListFindingsRequest) (*v1.ListFindingsResponse, error) {
	pg, err := newPager(req)
	if err != nil {
		return nil, err
	}
	if err := checkEnums(req.Kind, req.MinSeverity); err != nil {
		return nil, err
	}
	flt, err := compileFilter(filter.Findings, req.Filter)
	if err != nil {
		return nil, err
	}
	after := pg.after
	view := s.store.View()
	rows := view.Findings(nil)
	if req.Cluster != "" {
		rows = view.FindingsOf(nil, req.Cluster)
	}
	var all []*v1.Finding
	for row := range rows {
		f := row.Finding
		if (req.Node != "" && f.Node != req.Node) || (req.Kind != v1.FindingKind_FINDING_KIND_UNSPECIFIED && f.Kind != req.Kind) ||
			f.Severity < req.MinSeverity {
			continue
		}
		if after != "" && findingKey(f) <= after {
			continue
		}
		if ok, err := matched(flt.Finding(f)); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		all = append(all, f)
	}
	sort.Slice(all, func(i, j int) bool { return findingKey(all[i]) < findingKey(all[j]) })
	resp := &v1.ListFindingsResponse{}
	for _, f := range all {
		if !pg.fits(proto.Size(f)) {
			resp.NextPageToken = pg.token(findingKey(resp.Findings[len(resp.Findings)-1]))
			break
		}
		resp.Findings = append(resp.Findings, f)
	}
	return resp, nil
}

// Watch implements InventoryService.
func (s *Server) Watch(req *v1.WatchRequest, stream v1.InventoryService_WatchServer) error {
	if !checkView(req.View) {
		return status.Errorf(codes.InvalidArgument, "unknown view %d; known: COMPONENT_VIEW_BASIC, COMPONENT_VIEW_FULL", req.View)
	}
	err := s.watch(req, stream)
	if stream.Context().Err() != nil {
		// The watcher went away; a failed send on the way is no error.
		return nil
	}
	return err
}

func (s *Server) watch(req *v1.WatchRequest, stream v1.InventoryService_WatchServer) error {
	ctx := stream.Context()
	flt, err := compileFilter(filter.Events, req.Filter)
	if err != nil {
		return err
	}
	match := func(ev state.Event) bool {
		switch {
		case ev.IsComponent():
			cluster, _, component := ev.Where()
			if req.SkipComponents || (req.Cluster != "" && cluster != req.Cluster) ||
				(req.Component != "" && component != req.Component) {
				return false
			}
		case ev.Finding != nil:
			if req.SkipFindings || (req.Cluster != "" && ev.Finding.Cluster != req.Cluster) {
				return false
			}
		default:
			return false
		}
		// A filter too costly for an event drops that event: the watch
		// goes on for the others.
		if flt == nil {
			return true
		}
		ok, _ := flt.Event(ev.Instance(), ev.Finding)
		return ok
	}
	out := newWatchSender(stream, req.View, int(req.MaxBatch))
	// A watcher of every component and finding event takes whole runs of
	// events as parts encoded once for every such watcher.
	plain := req.Cluster == "" && req.Component == "" && flt == nil
	marker := func(t v1.WatchEventType, index uint64) error {
		if err := out.flush(); err != nil {
			return err
		}
		return stream.Send(&v1.WatchResponse{Type: t, Index: index})
	}
	// subscribe sends the current state and SYNCED, and returns the
	// subscription to every change after that state.
	subscribe := func() (*state.Subscription, error) {
		view, sub, pos := s.store.Subscribe()
		if err := s.sendState(view, req, flt, match, out); err != nil {
			sub.Close()
			return nil, err
		}
		if err := marker(v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED, pos); err != nil {
			sub.Close()
			return nil, err
		}
		return sub, nil
	}
	var sub *state.Subscription
	if req.ResumeIndex != 0 {
		var ok bool
		if sub, ok = s.store.Broker().Resume(req.ResumeIndex); ok {
			if err := marker(v1.WatchEventType_WATCH_EVENT_TYPE_RESUMED, req.ResumeIndex); err != nil {
				sub.Close()
				return err
			}
		} else if err := marker(v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC, 0); err != nil {
			return err
		}
	}
	if sub == nil {
		var err error
		if sub, err = subscribe(); err != nil {
			return err
		}
	}
	defer func() { sub.Close() }()
	var buf []state.Event
	// A plain watcher holds back the start of a run until it is whole,
	// for up to RunHold: a burst of changes then reaches every such
	// watcher as shared runs, while a lone change waits no longer.
	var held <-chan time.Time
	var heldFrom uint64 // the first event held back
	for {
		takeAll := false
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return errShutdown
		case <-sub.Ready:
		case <-held:
			// Still held back: its run did not fill in time.
			held, takeAll = nil, sub.Next() <= heldFrom
		}
		for {
			if s.Backlog.Busy() && s.IngestFirst > 0 {
				if err := s.yieldToIngest(ctx, sub, out); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
			}
			var lagged bool
			n := 1024
			if plain {
				// End where a run of events ends, so that the next read
				// begins with a whole run.
				n -= int((sub.Next() + 1024) % state.GroupEvents)
			}
			if plain && !takeAll && s.RunHold > 0 {
				var waiting int
				buf, lagged, waiting = sub.ReadRuns(buf[:0], n, state.GroupEvents)
				if waiting > 0 && held == nil {
					held, heldFrom = time.After(s.RunHold), sub.Next()
				}
			} else {
				buf, lagged = sub.Read(buf[:0], n)
			}
			if lagged {
				// Events were lost: say so and send the state again.
				sub.Close()
				if err := marker(v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC, 0); err != nil {
					return err
				}
				var err error
				if sub, err = subscribe(); err != nil {
					return err
				}
				continue
			}
			if len(buf) == 0 {
				break
			}
			for i := 0; i < len(buf); i++ {
				ev := buf[i]
				if plain && ev.Seq%state.GroupEvents == 0 && i+state.GroupEvents <= len(buf) {
					// A whole run: one part shared with every watcher
					// that takes the same events.
					if sent, err := out.addRun(buf[i:i+state.GroupEvents], req.SkipComponents, req.SkipFindings); err != nil {
						return err
					} else if sent {
						i += state.GroupEvents - 1
						continue
					}
				}
				if match(ev) {
					if err := out.add(ev); err != nil {
						return err
					}
				}
			}
			clear(buf) // let the events go
		}
		if err := out.flush(); err != nil {
			return err
		}
		if req.MaxBatch > 1 && s.BatchInterval > 0 {
			// Let the next events gather; Ready stays set meanwhile.
			select {
			case <-ctx.Done():
				return nil
			case <-s.stopping:
				return errShutdown
			case <-time.After(s.BatchInterval):
			}
		}
	}
}

// yieldToIngest holds a watcher back while the writer has a backlog, until
// the oldest event it has yet to read is IngestFirst old or the history is
// yieldFill full. A burst of changes is then applied before it is fanned
// out, yet no watcher hears of a change much later than IngestFirst, nor
// falls so far behind that it loses events.
func (s *Server) yieldToIngest(ctx context.Context, sub *state.Subscription, out *watchSender) error {
	flushed := false
	for s.Backlog.Busy() {
		n, age := sub.Waiting()
		if n == 0 || age >= s.IngestFirst || s.store.Broker().Fill() >= yieldFill {
			return nil
		}
		if !flushed {
			// What was read already waits no longer than the rest.
			if err := out.flush(); err != nil {
				return err
			}
			flushed = true
		}
		s.Backlog.Wait(ctx, min(s.IngestFirst-age, yieldCheck))
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return errShutdown
		default:
		}
	}
	return nil
}

// sendState sends the components and findings of view that match the
// request, as ADDED events.
func (s *Server) sendState(view *state.View, req *v1.WatchRequest, flt *filter.Filter, match func(state.Event) bool, out *watchSender) error {
	if !req.SkipComponents {
		from := ""
		if req.Cluster != "" {
			from = state.ComponentKeyPrefix(req.Cluster, "")
		}
		for c := range view.Components(nil, state.ByCluster, from) {
			if req.Cluster != "" && c.Cluster != req.Cluster {
				break
			}
			if req.Component != "" && c.Component != req.Component {
				continue
			}
			if flt == nil {
				// No expression to evaluate: a row that keeps its
				// encoding is sent as it is.
				if sent, err := out.addRow(c); err != nil {
					return err
				} else if sent {
					continue
				}
			}
			var in *v1.ComponentInstance
			if req.View == v1.ComponentView_COMPONENT_VIEW_BASIC && !flt.NeedsDetail() {
				in = c.InstanceBasic()
			} else {
				in = c.Instance()
			}
			ev := state.Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Component: in}
			if match(ev) {
				if err := out.add(ev); err != nil {
					return err
				}
			}
		}
	}
	if !req.SkipFindings {
		for f := range view.Findings(nil) {
			ev := state.Event{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Finding: f.Finding}
			if match(ev) {
				if err := out.add(ev); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
