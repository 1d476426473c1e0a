// Package ingest serves AgentService: it takes node inventories from agents,
// checks them, applies them to the engine and tracks each agent's liveness.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kubeatlas/kubeatlas/aggregator/engine"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Config configures the ingest server. Zero fields take defaults.
type Config struct {
	// MaxMessageBytes is the largest message accepted from an agent (4 MiB).
	MaxMessageBytes int
	// MaxProcesses is the most processes kept for one node (100,000).
	MaxProcesses int
	// MaxManifests is the most manifests kept for one node (1,000).
	MaxManifests int
	// RatePerSecond and Burst bound each agent's message rate (50/s, burst 500).
	RatePerSecond float64
	Burst         int
	// HeartbeatInterval is assumed when an agent's hello gives none (10s).
	HeartbeatInterval time.Duration
	// StaleAfter is how many heartbeat intervals may be missed before a node is stale (3).
	StaleAfter int
	// ExpireAfter is how long a silent node stays stale before it is expired (10m).
	ExpireAfter time.Duration
	// HelloTimeout is how long a new stream may take to say hello (30s).
	HelloTimeout time.Duration
	// Authorize, if set, decides whether a stream may report for (cluster, node).
	Authorize func(ctx context.Context, cluster, node string) error
	// Logger receives stream events.
	Logger *slog.Logger
	// Metrics, if set, is updated.
	Metrics *Metrics
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 4 << 20
	}
	if c.MaxProcesses == 0 {
		c.MaxProcesses = 100_000
	}
	if c.MaxManifests == 0 {
		c.MaxManifests = 1000
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 50
	}
	if c.Burst == 0 {
		c.Burst = 500
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 3
	}
	if c.ExpireAfter == 0 {
		c.ExpireAfter = 10 * time.Minute
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

type nodeKey struct{ cluster, node string }

// streamReg is one registered stream; its address identifies it.
type streamReg struct{ cancel context.CancelCauseFunc }

type liveness struct {
	lastSeen  time.Time
	heartbeat time.Duration
	state     v1.AgentState
}

// Server is the AgentService implementation.
type Server struct {
	v1.UnimplementedAgentServiceServer
	engine *engine.Engine
	cfg    Config

	mu      sync.Mutex
	streams map[nodeKey]*streamReg
	live    map[nodeKey]*liveness
}

var _ v1.AgentServiceServer = (*Server)(nil)

// NewServer returns an ingest server feeding e.
func NewServer(e *engine.Engine, cfg Config) *Server {
	cfg.defaults()
	return &Server{engine: e, cfg: cfg, streams: map[nodeKey]*streamReg{}, live: map[nodeKey]*liveness{}}
}

// ConnectedAgents returns the number of open agent streams.
func (s *Server) ConnectedAgents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

func validName(s string) bool { return nameRE.MatchString(s) }

var errReplaced = errors.New("replaced by a newer connection for the same node")

// Connect implements AgentService.
func (s *Server) Connect(stream v1.AgentService_ConnectServer) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	type recvd struct {
		msg *v1.ConnectRequest
		err error
	}
	recvCh := make(chan recvd)
	// The receiver ends when the handler returns: gRPC then cancels the
	// stream, Recv fails and ctx is done. It cannot be waited for here, as
	// Recv does not return before the handler does.
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case recvCh <- recvd{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	// Hello first.
	helloT := time.NewTimer(s.cfg.HelloTimeout)
	defer helloT.Stop()
	var first recvd
	select {
	case first = <-recvCh:
	case <-helloT.C:
		return status.Error(codes.DeadlineExceeded, "no hello within the hello timeout")
	case <-ctx.Done():
		return nil
	}
	if first.err != nil {
		return nil
	}
	hello := first.msg.GetHello()
	if hello == nil {
		s.reject("invalid_argument")
		return status.Error(codes.InvalidArgument, "the first message must be a hello")
	}
	id := hello.GetIdentity()
	cluster, node := id.GetCluster(), id.GetNodeName()
	if !validName(cluster) || !validName(node) {
		s.reject("invalid_argument")
		return status.Errorf(codes.InvalidArgument, "hello names cluster %q and node %q; both must be lower-case DNS names", cluster, node)
	}
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(ctx, cluster, node); err != nil {
			s.reject("permission_denied")
			s.cfg.Logger.Warn("agent refused", "cluster", cluster, "node", node, "error", err)
			return status.Errorf(codes.PermissionDenied, "may not report for %s/%s: %v", cluster, node, err)
		}
	}
	key := nodeKey{cluster, node}
	hb := hello.GetHeartbeatInterval().AsDuration()
	if hb <= 0 {
		hb = s.cfg.HeartbeatInterval
	}
	reg := &streamReg{cancel: cancel}
	s.register(key, reg)
	defer s.unregister(key, reg)
	log := s.cfg.Logger.With("cluster", cluster, "node", node)
	log.Info("agent connected", "agent_version", id.GetAgentVersion())

	if err := stream.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Settings{Settings: &v1.Settings{
		HeartbeatInterval: durationpb.New(hb), MaxMessageBytes: uint32(s.cfg.MaxMessageBytes), MaxProcesses: uint32(s.cfg.MaxProcesses),
	}}}); err != nil {
		return err
	}

	sess := &session{s: s, key: key, hb: hb, stream: stream, log: log, tokens: float64(s.cfg.Burst), last: s.cfg.Now()}
	for {
		var r recvd
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errReplaced) {
				log.Info("stream replaced by a newer one")
				return status.Error(codes.Aborted, errReplaced.Error())
			}
			return nil
		case r = <-recvCh:
		}
		if r.err != nil {
			log.Info("agent disconnected", "reason", r.err)
			return nil
		}
		if err := sess.handle(r.msg); err != nil {
			log.Warn("agent stream refused", "error", err)
			return err
		}
	}
}

func (s *Server) register(key nodeKey, reg *streamReg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.streams[key]; ok {
		old.cancel(errReplaced)
	}
	s.streams[key] = reg
	if m := s.cfg.Metrics; m != nil {
		m.ConnectedAgents.Set(float64(len(s.streams)))
	}
}

func (s *Server) unregister(key nodeKey, reg *streamReg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A replaced stream must not remove its successor.
	if s.streams[key] == reg {
		delete(s.streams, key)
	}
	if m := s.cfg.Metrics; m != nil {
		m.ConnectedAgents.Set(float64(len(s.streams)))
	}
}

func (s *Server) reject(reason string) {
	if m := s.cfg.Metrics; m != nil {
		m.Rejected.WithLabelValues(reason).Inc()
	}
}

// seen records that a node's agent is alive.
func (s *Server) seen(key nodeKey, hb time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.live[key]
	if l == nil {
		l = &liveness{}
		s.live[key] = l
	}
	l.lastSeen, l.heartbeat, l.state = s.cfg.Now(), hb, v1.AgentState_AGENT_STATE_REPORTING
}

// Run marks silent agents stale, then expired, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.CheckLiveness()
		}
	}
}

// CheckLiveness marks nodes whose agents went silent.
func (s *Server) CheckLiveness() {
	now := s.cfg.Now()
	type change struct {
		key nodeKey
		st  v1.AgentState
	}
	var changes []change
	s.mu.Lock()
	for k, l := range s.live {
		silent := now.Sub(l.lastSeen)
		want := v1.AgentState_AGENT_STATE_REPORTING
		switch {
		case silent > s.cfg.ExpireAfter:
			want = v1.AgentState_AGENT_STATE_EXPIRED
		case silent > time.Duration(s.cfg.StaleAfter)*l.heartbeat:
			want = v1.AgentState_AGENT_STATE_STALE
		}
		if want != l.state {
			l.state = want
			changes = append(changes, change{k, want})
		}
	}
	s.mu.Unlock()
	for _, c := range changes {
		if err := s.engine.SetAgentState(c.key.cluster, c.key.node, c.st); err != nil {
			s.cfg.Logger.Error("marking agent", "cluster", c.key.cluster, "node", c.key.node, "state", c.st.String(), "error", err)
			continue
		}
		s.cfg.Logger.Info("agent state changed", "cluster", c.key.cluster, "node", c.key.node, "state", c.st.String())
	}
}

// session is one agent stream's protocol state.
type session struct {
	s      *Server
	key    nodeKey
	hb     time.Duration
	stream v1.AgentService_ConnectServer
	log    *slog.Logger

	applied   uint64 // newest generation applied
	hasState  bool   // a snapshot was applied on this stream
	pending   *engine.Inventory
	pendingAt uint64 // generation of the pending snapshot's first chunk
	resyncing bool   // a resync was asked for; data is ignored until a snapshot starts

	tokens float64
	last   time.Time
}

func (ss *session) allow() bool {
	now := ss.s.cfg.Now()
	ss.tokens += now.Sub(ss.last).Seconds() * ss.s.cfg.RatePerSecond
	if ss.tokens > float64(ss.s.cfg.Burst) {
		ss.tokens = float64(ss.s.cfg.Burst)
	}
	ss.last = now
	if ss.tokens < 1 {
		return false
	}
	ss.tokens--
	return true
}

func (ss *session) resync(reason string, expected uint64) error {
	ss.pending, ss.resyncing = nil, true
	ss.log.Info("asking for a resync", "reason", reason)
	if m := ss.s.cfg.Metrics; m != nil {
		m.Resyncs.Inc()
	}
	return ss.stream.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Resync{Resync: &v1.ResyncRequest{Reason: reason, ExpectedGeneration: expected}}})
}

func (ss *session) ack(gen uint64) error {
	return ss.stream.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Ack{Ack: &v1.Ack{Generation: gen}}})
}

func (ss *session) handle(msg *v1.ConnectRequest) error {
	cfg := &ss.s.cfg
	if !ss.allow() {
		ss.s.reject("rate")
		return status.Errorf(codes.ResourceExhausted, "more than %.0f messages a second (burst %d)", cfg.RatePerSecond, cfg.Burst)
	}
	if n := proto.Size(msg); n > cfg.MaxMessageBytes {
		ss.s.reject("size")
		return status.Errorf(codes.ResourceExhausted, "message of %d bytes is over the %d-byte limit", n, cfg.MaxMessageBytes)
	}
	if m := cfg.Metrics; m != nil {
		m.Messages.WithLabelValues(payloadName(msg)).Inc()
	}
	ss.s.seen(ss.key, ss.hb)
	now := cfg.Now()
	switch p := msg.Payload.(type) {
	case *v1.ConnectRequest_Hello:
		ss.s.reject("invalid_argument")
		return status.Error(codes.InvalidArgument, "hello sent twice on one stream")
	case *v1.ConnectRequest_SnapshotChunk:
		ch := p.SnapshotChunk
		if ch.SnapshotGeneration == msg.Generation {
			// The first chunk of a snapshot.
			if msg.Generation != ss.applied+1 && !ss.resyncing && ss.pending == nil && ss.hasState {
				return ss.resync(fmt.Sprintf("generation %d missing", ss.applied+1), ss.applied+1)
			}
			ss.resyncing = false
			ss.pendingAt = msg.Generation
			ss.pending = &engine.Inventory{Cluster: ss.key.cluster, Node: ss.key.node, Identity: ch.Identity, Kubelet: ch.Kubelet,
				State: v1.AgentState_AGENT_STATE_REPORTING}
			if ch.Identity == nil {
				ss.s.reject("invalid_argument")
				return status.Error(codes.InvalidArgument, "a snapshot's first chunk must carry the node identity")
			}
			if ch.Identity.NodeName != ss.key.node || ch.Identity.Cluster != ss.key.cluster {
				ss.s.reject("invalid_argument")
				return status.Errorf(codes.InvalidArgument, "snapshot is for %s/%s, the stream for %s/%s",
					ch.Identity.Cluster, ch.Identity.NodeName, ss.key.cluster, ss.key.node)
			}
		} else {
			if ss.resyncing {
				return nil
			}
			if ss.pending == nil || ch.SnapshotGeneration != ss.pendingAt || msg.Generation != ss.applied+1 {
				return ss.resync(fmt.Sprintf("snapshot chunk %d out of order", msg.Generation), ss.applied+1)
			}
		}
		ss.applied = msg.Generation
		ss.pending.Processes = append(ss.pending.Processes, ch.Processes...)
		ss.pending.Manifests = append(ss.pending.Manifests, ch.Manifests...)
		if len(ss.pending.Processes) > cfg.MaxProcesses {
			ss.s.reject("processes")
			return status.Errorf(codes.ResourceExhausted, "snapshot has more than %d processes", cfg.MaxProcesses)
		}
		if len(ss.pending.Manifests) > cfg.MaxManifests {
			ss.s.reject("manifests")
			return status.Errorf(codes.ResourceExhausted, "snapshot has more than %d manifests", cfg.MaxManifests)
		}
		if !ch.Last {
			return nil
		}
		inv := ss.pending
		ss.pending = nil
		inv.Stats, inv.Generation, inv.SeenAt, inv.Reference = ch.Stats, msg.Generation, now, now
		if err := ss.s.engine.ApplyInventory(*inv); err != nil {
			return status.Errorf(codes.Internal, "applying snapshot: %v", err)
		}
		ss.hasState = true
		if m := cfg.Metrics; m != nil {
			m.Records.Add(float64(len(inv.Processes)))
		}
		return ss.ack(msg.Generation)
	case *v1.ConnectRequest_Delta:
		if ss.resyncing {
			return nil
		}
		if !ss.hasState || ss.pending != nil {
			return ss.resync("no snapshot on this stream yet", ss.applied+1)
		}
		if msg.Generation != ss.applied+1 {
			return ss.resync(fmt.Sprintf("generation %d missing", ss.applied+1), ss.applied+1)
		}
		d := p.Delta
		if len(d.UpsertedProcesses) > cfg.MaxProcesses || len(d.UpsertedManifests) > cfg.MaxManifests {
			ss.s.reject("processes")
			return status.Errorf(codes.ResourceExhausted, "delta over the per-node limits")
		}
		if err := ss.s.engine.ApplyDelta(ss.key.cluster, ss.key.node, d, now, msg.Generation); err != nil {
			if errors.Is(err, engine.ErrNoState) {
				return ss.resync("no state for this node", ss.applied+1)
			}
			return status.Errorf(codes.Internal, "applying delta: %v", err)
		}
		ss.applied = msg.Generation
		if m := cfg.Metrics; m != nil {
			m.Records.Add(float64(len(d.UpsertedProcesses) + len(d.RemovedProcesses)))
		}
		return ss.ack(msg.Generation)
	case *v1.ConnectRequest_Heartbeat:
		if ss.resyncing || ss.pending != nil {
			return nil
		}
		if msg.Generation != ss.applied {
			return ss.resync(fmt.Sprintf("heartbeat at generation %d, applied %d", msg.Generation, ss.applied), ss.applied+1)
		}
		if !ss.hasState {
			return nil
		}
		if err := ss.s.engine.Heartbeat(ss.key.cluster, ss.key.node, p.Heartbeat.GetWallClock().AsTime(), now); err != nil {
			if errors.Is(err, engine.ErrNoState) {
				return ss.resync("no state for this node", ss.applied+1)
			}
			return status.Errorf(codes.Internal, "recording heartbeat: %v", err)
		}
		return nil
	}
	ss.s.reject("invalid_argument")
	return status.Error(codes.InvalidArgument, "message carries no payload")
}

func payloadName(m *v1.ConnectRequest) string {
	switch m.Payload.(type) {
	case *v1.ConnectRequest_Hello:
		return "hello"
	case *v1.ConnectRequest_SnapshotChunk:
		return "snapshot_chunk"
	case *v1.ConnectRequest_Delta:
		return "delta"
	case *v1.ConnectRequest_Heartbeat:
		return "heartbeat"
	}
	return "empty"
}
