// Package ingest serves AgentService: it takes node inventories from agents,
// checks them, applies them to the engine and tracks each agent's liveness.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/redact"
	"github.com/kubeatlas/kubeatlas/safetext"
)

// Config configures the ingest server. Zero fields take defaults.
type Config struct {
	// MaxMessageBytes is the largest message accepted from an agent (4 MiB).
	MaxMessageBytes int
	// MaxProcesses is the most processes kept for one node (100,000).
	MaxProcesses int
	// MaxManifests is the most manifests kept for one node (1,000).
	MaxManifests int
	// MaxCertificates is the most certificates kept for one node (1,000).
	MaxCertificates int
	// MaxNodeBytes bounds one node's stored processes and manifests, and
	// separately a snapshot in progress, in wire bytes (DefaultMaxNodeBytes).
	// A node's peak is twice it, while a new snapshot replaces the old one.
	MaxNodeBytes int64
	// RatePerSecond and Burst bound each node's message rate, across all its
	// streams and reconnects (50/s, burst 500).
	RatePerSecond float64
	Burst         int
	// HeartbeatInterval is assumed when an agent's hello gives none (10s).
	HeartbeatInterval time.Duration
	// StaleAfter is how many heartbeat intervals may be missed before a node is stale (3).
	StaleAfter int
	// ExpireAfter is how long a silent node stays stale before it is expired (10m).
	ExpireAfter time.Duration
	// ForgetAfter is how long a node may stay silent before what its agent
	// reported is forgotten, if the API has no Node for it (24h). A node the
	// API deletes is forgotten as soon as its agent has expired.
	ForgetAfter time.Duration
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
	if c.MaxCertificates == 0 {
		c.MaxCertificates = 1000
	}
	if c.MaxNodeBytes == 0 {
		c.MaxNodeBytes = DefaultMaxNodeBytes
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
	if c.ForgetAfter == 0 {
		c.ForgetAfter = 24 * time.Hour
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

// DefaultMaxNodeBytes is the default byte budget of one node: over 200
// times the 73 KB snapshot of a node with 300 processes (see BENCHMARKS.md).
const DefaultMaxNodeBytes = 16 << 20

// Validate checks a configuration with its defaults filled in.
func (c Config) Validate() error {
	c.defaults()
	switch {
	case c.MaxMessageBytes < 1024:
		return fmt.Errorf("max message bytes %d is below 1024", c.MaxMessageBytes)
	case c.MaxNodeBytes < int64(c.MaxMessageBytes):
		return fmt.Errorf("max node bytes %d is below the message limit %d", c.MaxNodeBytes, c.MaxMessageBytes)
	case c.ForgetAfter < c.ExpireAfter:
		return fmt.Errorf("forget-after %v is shorter than expire-after %v", c.ForgetAfter, c.ExpireAfter)
	case c.RatePerSecond < 0 || c.Burst < 1:
		return fmt.Errorf("rate %v/s with burst %d is not a rate", c.RatePerSecond, c.Burst)
	}
	return nil
}

type nodeKey struct{ cluster, node string }

// streamReg is one registered stream; its address identifies it.
type streamReg struct{ cancel context.CancelCauseFunc }

type liveness struct {
	lastSeen  time.Time
	heartbeat time.Duration
	state     v1.AgentState
	kept      bool // an expired node the API still has: not forgotten yet
}

// nodeState is what the server keeps for a node across its streams.
type nodeState struct {
	// mu is held while one of the node's streams applies a change, and
	// while a new stream takes over.
	mu sync.Mutex
	// epoch counts the node's streams; a stream may apply changes only
	// while its epoch is the newest, so nothing from a replaced stream can
	// land after its successor's snapshot.
	epoch uint64
	// limiter is the node's rate bucket: reconnecting does not refill it.
	limiter *rate.Limiter
}

// Server is the AgentService implementation.
type Server struct {
	v1.UnimplementedAgentServiceServer
	applier *apply.Applier
	cfg     Config

	mu      sync.Mutex
	streams map[nodeKey]*streamReg
	live    map[nodeKey]*liveness
	nodes   map[nodeKey]*nodeState

	stopping chan struct{}
	stopOnce sync.Once
}

var _ v1.AgentServiceServer = (*Server)(nil)

// NewServer returns an ingest server feeding e.
func NewServer(e *apply.Applier, cfg Config) *Server {
	cfg.defaults()
	return &Server{applier: e, cfg: cfg, streams: map[nodeKey]*streamReg{}, live: map[nodeKey]*liveness{},
		nodes: map[nodeKey]*nodeState{}, stopping: make(chan struct{})}
}

// Shutdown ends every agent stream at once with Unavailable, so that a
// graceful stop does not wait for agents to hang up. New streams are refused.
func (s *Server) Shutdown() { s.stopOnce.Do(func() { close(s.stopping) }) }

var errShutdown = status.Error(codes.Unavailable, "the aggregator is shutting down; reconnect")

// ConnectedAgents returns the number of open agent streams.
func (s *Server) ConnectedAgents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

func validName(s string) bool { return state.ValidName(s) }

var (
	errReplaced    = errors.New("replaced by a newer connection for the same node")
	errCertExpired = errors.New("the client certificate expired")
)

// maxEcho bounds how much of a peer's own text an error message repeats.
const maxEcho = 64

func echo(s string) string { return safetext.Ellipsis(s, maxEcho) }

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
	case <-s.stopping:
		return errShutdown
	case <-ctx.Done():
		return nil
	}
	if first.err != nil {
		if err := undecodable(first.err); err != nil {
			s.reject("invalid_argument")
			return err
		}
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
		return status.Errorf(codes.InvalidArgument, "hello names cluster %q and node %q; both must be lower-case DNS names of at most 253 characters", echo(cluster), echo(node))
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
	ns, epoch := s.register(key, reg)
	defer s.unregister(key, reg)
	log := s.cfg.Logger.With("cluster", cluster, "node", node)
	if !s.allow(ns) {
		s.reject("rate")
		log.Warn("agent stream refused", "error", "over the node's message rate")
		return status.Errorf(codes.ResourceExhausted, "node %s/%s is over its rate of %.0f messages a second (burst %d), across reconnects", cluster, node, s.cfg.RatePerSecond, s.cfg.Burst)
	}
	// A stream lives no longer than the client certificate that opened it.
	if exp, ok := certExpiry(ctx); ok {
		t := time.AfterFunc(time.Until(exp), func() { cancel(errCertExpired) })
		defer t.Stop()
	}
	log.Info("agent connected", "agent_version", safetext.Ellipsis(id.GetAgentVersion(), maxEcho))

	if err := stream.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Settings{Settings: &v1.Settings{
		HeartbeatInterval: durationpb.New(hb), MaxMessageBytes: uint32(s.cfg.MaxMessageBytes), MaxProcesses: uint32(s.cfg.MaxProcesses),
	}}}); err != nil {
		return err
	}

	sess := &session{s: s, key: key, hb: hb, stream: stream, log: log, ns: ns, epoch: epoch}
	for {
		var r recvd
		select {
		case <-s.stopping:
			log.Info("stream ended: shutting down")
			return errShutdown
		case <-ctx.Done():
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, errReplaced):
				log.Info("stream replaced by a newer one")
				return status.Error(codes.Aborted, errReplaced.Error())
			case errors.Is(cause, errCertExpired):
				s.reject("certificate_expired")
				log.Warn("stream ended: the agent's client certificate expired")
				return status.Error(codes.Unauthenticated, "the client certificate this stream was opened with has expired")
			}
			return nil
		case r = <-recvCh:
		}
		if r.err != nil {
			if err := undecodable(r.err); err != nil {
				s.reject("invalid_argument")
				log.Warn("agent stream refused", "error", err)
				return err
			}
			log.Info("agent disconnected", "reason", r.err)
			return nil
		}
		if err := sess.handle(r.msg); err != nil {
			log.Warn("agent stream refused", "error", err)
			return err
		}
	}
}

// register makes reg the node's stream, ends the one it replaces, and
// returns the node's state with the new stream's epoch. It returns only once
// the replaced stream can no longer apply anything.
func (s *Server) register(key nodeKey, reg *streamReg) (*nodeState, uint64) {
	s.mu.Lock()
	old := s.streams[key]
	s.streams[key] = reg
	ns := s.nodes[key]
	if ns == nil {
		ns = &nodeState{limiter: rate.NewLimiter(rate.Limit(s.cfg.RatePerSecond), s.cfg.Burst)}
		s.nodes[key] = ns
	}
	if m := s.cfg.Metrics; m != nil {
		m.ConnectedAgents.Set(float64(len(s.streams)))
	}
	s.mu.Unlock()
	if old != nil {
		old.cancel(errReplaced)
	}
	ns.mu.Lock()
	ns.epoch++
	epoch := ns.epoch
	ns.mu.Unlock()
	return ns, epoch
}

// allow takes one message from the node's rate bucket.
func (s *Server) allow(ns *nodeState) bool { return ns.limiter.AllowN(s.cfg.Now(), 1) }

// undecodable turns a receive error that means the peer sent something
// that is not a valid message (bad protobuf, a string that is not UTF-8)
// into InvalidArgument; other errors give nil.
func undecodable(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Internal || !strings.Contains(st.Message(), "unmarshal") {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "the message cannot be decoded (every string must be valid UTF-8): %s", safetext.Ellipsis(st.Message(), 200))
}

// certExpiry returns when the stream's client certificate expires.
func certExpiry(ctx context.Context) (time.Time, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return time.Time{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return time.Time{}, false
	}
	return ti.State.PeerCertificates[0].NotAfter, true
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

// Run marks silent agents stale, then expired, and raises findings for
// certificates that have come to expire, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.CheckLiveness()
			if err := s.applier.CheckCertificates(); err != nil {
				s.cfg.Logger.Error("checking certificates", "error", err)
			}
		}
	}
}

// CheckLiveness marks nodes whose agents went silent, forgets nodes that
// stayed silent for ForgetAfter with no Node in the API, and drops the rate
// state of nodes that have no stream and a full bucket.
func (s *Server) CheckLiveness() {
	now := s.cfg.Now()
	type change struct {
		key nodeKey
		st  v1.AgentState
	}
	var changes []change
	var forget []nodeKey
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
			l.state, l.kept = want, false
			changes = append(changes, change{k, want})
		}
		if want == v1.AgentState_AGENT_STATE_EXPIRED && silent > s.cfg.ForgetAfter && !l.kept {
			forget = append(forget, k)
		}
	}
	for k, ns := range s.nodes {
		// A node with no stream and a full bucket has nothing to remember.
		if _, open := s.streams[k]; !open && ns.limiter.TokensAt(now) >= float64(s.cfg.Burst) && ns.mu.TryLock() {
			delete(s.nodes, k)
			ns.mu.Unlock()
		}
	}
	s.mu.Unlock()
	for _, c := range changes {
		if err := s.applier.SetAgentState(c.key.cluster, c.key.node, c.st); err != nil {
			s.cfg.Logger.Error("marking agent", "cluster", c.key.cluster, "node", c.key.node, "state", c.st.String(), "error", err)
			continue
		}
		s.cfg.Logger.Info("agent state changed", "cluster", c.key.cluster, "node", c.key.node, "state", c.st.String())
	}
	for _, k := range forget {
		gone, err := s.applier.ForgetNode(k.cluster, k.node)
		if err != nil {
			s.cfg.Logger.Error("forgetting node", "cluster", k.cluster, "node", k.node, "error", err)
			continue
		}
		s.mu.Lock()
		if l := s.live[k]; l != nil && l.state == v1.AgentState_AGENT_STATE_EXPIRED {
			if gone {
				delete(s.live, k)
			} else {
				// The API still has the Node: it is forgotten when the API deletes it.
				l.kept = true
			}
		}
		s.mu.Unlock()
	}
}

// Forgotten logs and counts a node whose agent rows were forgotten; the
// aggregator wires it into apply.Config.Forgotten.
func (s *Server) Forgotten(cluster, node, reason string) {
	s.cfg.Logger.Info("node forgotten", "cluster", cluster, "node", node, "reason", reason)
	if m := s.cfg.Metrics; m != nil {
		m.Forgotten.WithLabelValues(reason).Inc()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[nodeKey{cluster, node}]; l != nil && l.state == v1.AgentState_AGENT_STATE_EXPIRED {
		delete(s.live, nodeKey{cluster, node})
	}
}

// session is one agent stream's protocol state.
type session struct {
	s      *Server
	key    nodeKey
	hb     time.Duration
	stream v1.AgentService_ConnectServer
	log    *slog.Logger
	ns     *nodeState
	epoch  uint64

	applied      uint64 // newest generation applied
	hasState     bool   // a snapshot was applied on this stream
	pending      *apply.Inventory
	pendingAt    uint64 // generation of the pending snapshot's first chunk
	pendingBytes int64  // wire bytes of the pending snapshot's records
	resyncing    bool   // a resync was asked for; data is ignored until a snapshot starts
}

// apply runs f, a change to the engine, unless a newer stream of the same
// node has taken over.
func (ss *session) apply(f func() error) error {
	ss.ns.mu.Lock()
	defer ss.ns.mu.Unlock()
	if ss.ns.epoch != ss.epoch {
		return status.Error(codes.Aborted, errReplaced.Error())
	}
	return f()
}

// exhausted refuses a stream over one of its node's limits.
func (ss *session) exhausted(reason, format string, args ...any) error {
	ss.s.reject(reason)
	return status.Errorf(codes.ResourceExhausted, format, args...)
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
	if !ss.s.allow(ss.ns) {
		return ss.exhausted("rate", "more than %.0f messages a second (burst %d) from this node, across its streams", cfg.RatePerSecond, cfg.Burst)
	}
	n := proto.Size(msg)
	if n > cfg.MaxMessageBytes {
		return ss.exhausted("size", "message of %d bytes is over the %d-byte limit", n, cfg.MaxMessageBytes)
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
			ss.pendingBytes = 0
			ss.pending = &apply.Inventory{Cluster: ss.key.cluster, Node: ss.key.node, Identity: ch.Identity, Kubelet: ch.Kubelet,
				State: v1.AgentState_AGENT_STATE_REPORTING}
			if ch.Identity == nil {
				ss.s.reject("invalid_argument")
				return status.Error(codes.InvalidArgument, "a snapshot's first chunk must carry the node identity")
			}
			if ch.Identity.NodeName != ss.key.node || ch.Identity.Cluster != ss.key.cluster {
				ss.s.reject("invalid_argument")
				return status.Errorf(codes.InvalidArgument, "snapshot is for %q/%q, the stream for %s/%s",
					echo(ch.Identity.Cluster), echo(ch.Identity.NodeName), ss.key.cluster, ss.key.node)
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
		ss.pendingBytes += int64(n)
		if ss.pendingBytes > cfg.MaxNodeBytes {
			ss.pending = nil
			return ss.exhausted("bytes", "snapshot of more than %d bytes: over the node's byte budget (--max-node-bytes)", cfg.MaxNodeBytes)
		}
		if len(ss.pending.Processes)+len(ch.Processes) > cfg.MaxProcesses {
			ss.pending = nil
			return ss.exhausted("processes", "snapshot has more than %d processes (--max-processes)", cfg.MaxProcesses)
		}
		if len(ss.pending.Manifests)+len(ch.Manifests) > cfg.MaxManifests {
			ss.pending = nil
			return ss.exhausted("manifests", "snapshot has more than %d manifests (--max-manifests)", cfg.MaxManifests)
		}
		if len(ss.pending.Certificates)+len(ch.Certificates) > cfg.MaxCertificates {
			ss.pending = nil
			return ss.exhausted("certificates", "snapshot has more than %d certificates", cfg.MaxCertificates)
		}
		ss.scrub(ch.Processes, ch.Manifests, ch.Kubelet)
		ss.scrubCertificates(ch.Certificates)
		ss.scrubIdentity(ch.Identity)
		ss.pending.Processes = append(ss.pending.Processes, ch.Processes...)
		ss.pending.Manifests = append(ss.pending.Manifests, ch.Manifests...)
		ss.pending.Certificates = append(ss.pending.Certificates, ch.Certificates...)
		if !ch.Last {
			return nil
		}
		inv := ss.pending
		ss.pending = nil
		inv.Stats, inv.Generation, inv.SeenAt, inv.Reference = ch.Stats, msg.Generation, now, now
		inv.Bytes = ss.pendingBytes
		if err := ss.apply(func() error { return ss.s.applier.ApplyInventory(*inv) }); err != nil {
			if status.Code(err) == codes.Aborted {
				return err
			}
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
		if n := len(d.Certificates.GetCertificates()); n > cfg.MaxCertificates {
			return ss.exhausted("certificates", "delta refused: the node would hold %d certificates, over its limit of %d", n, cfg.MaxCertificates)
		}
		ss.scrub(d.UpsertedProcesses, d.UpsertedManifests, d.Kubelet)
		ss.scrubCertificates(d.Certificates.GetCertificates())
		lim := apply.Limits{MaxProcesses: cfg.MaxProcesses, MaxManifests: cfg.MaxManifests, MaxBytes: cfg.MaxNodeBytes}
		err := ss.apply(func() error { return ss.s.applier.ApplyDelta(ss.key.cluster, ss.key.node, d, now, msg.Generation, lim) })
		var le *apply.LimitError
		switch {
		case err == nil:
		case errors.Is(err, apply.ErrNoState):
			return ss.resync("no state for this node", ss.applied+1)
		case errors.As(err, &le):
			return ss.exhausted(le.What, "delta refused: %v", le)
		case status.Code(err) == codes.Aborted:
			return err
		default:
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
		if err := ss.apply(func() error {
			return ss.s.applier.Heartbeat(ss.key.cluster, ss.key.node, p.Heartbeat.GetWallClock().AsTime(), now)
		}); err != nil {
			if errors.Is(err, apply.ErrNoState) {
				return ss.resync("no state for this node", ss.applied+1)
			}
			if status.Code(err) == codes.Aborted {
				return err
			}
			return status.Errorf(codes.Internal, "recording heartbeat: %v", err)
		}
		return nil
	}
	ss.s.reject("invalid_argument")
	return status.Error(codes.InvalidArgument, "message carries no payload")
}

// scrub redacts what an agent sent once more, with the agent's own rules:
// an old, misconfigured or lying agent must not put a secret in the store.
func (ss *session) scrub(procs []*v1.Process, mans []*v1.StaticPodManifest, kubelet *v1.KubeletInfo) {
	n := 0
	for _, p := range procs {
		if redactProcess(p) {
			n++
		}
	}
	for _, m := range mans {
		if t, ok := redact.Text(m.ParseError); ok {
			m.ParseError = t
			n++
		}
		for _, c := range m.Containers {
			cmd, args := redact.Container(c.Command, c.Args)
			if !slices.Equal(cmd, c.Command) || !slices.Equal(args, c.Args) {
				c.Command, c.Args = cmd, args
				n++
			}
		}
	}
	if kubelet != nil {
		if f := redact.Lines(kubelet.KubeadmFlags); !slices.Equal(f, kubelet.KubeadmFlags) {
			kubelet.KubeadmFlags = f
			n++
		}
		for i, e := range kubelet.Errors {
			if t, ok := redact.Text(e); ok {
				kubelet.Errors[i] = t
				n++
			}
		}
		for _, f := range []*string{&kubelet.ContainerRuntimeEndpoint, &kubelet.ConfigPath, &kubelet.StaticPodPath} {
			if t, ok := redact.Text(*f); ok {
				*f = t
				n++
			}
		}
	}
	if n > 0 {
		ss.log.Warn("the agent sent secrets; redacted them", "records", n)
		if m := ss.s.cfg.Metrics; m != nil {
			m.Redacted.Add(float64(n))
		}
	}
}

// scrubCertificates redacts the free text of certificates once more (names
// and error messages come from the node) and makes it valid UTF-8.
func (ss *session) scrubCertificates(certs []*v1.Certificate) {
	n := 0
	for _, c := range certs {
		fields := []*string{&c.Path, &c.Field, &c.Subject, &c.Issuer, &c.Error}
		for i := range c.DnsNames {
			fields = append(fields, &c.DnsNames[i])
		}
		for _, u := range c.Uses {
			fields = append(fields, &u.Flag)
		}
		for _, f := range fields {
			if t, ok := redact.Text(*f); ok {
				*f = t
				n++
			}
		}
		safetext.Message(c)
	}
	if n > 0 {
		ss.log.Warn("the agent sent secrets in certificate records; redacted them", "fields", n)
	}
}

// scrubIdentity redacts the node's free-text identity fields once more.
func (ss *session) scrubIdentity(id *v1.NodeIdentity) {
	if id == nil {
		return
	}
	for _, f := range []*string{&id.Hostname, &id.OsImage, &id.KernelVersion, &id.AgentVersion} {
		if t, ok := redact.Text(*f); ok {
			*f = t
			ss.log.Warn("the agent sent a secret in its identity; redacted it")
		}
	}
}

// redactProcess redacts a process's argv, executable, and its components'
// flags and config files in place; it reports whether anything was a secret.
func redactProcess(p *v1.Process) bool {
	changed := false
	if argv := redact.Argv(p.Argv); !slices.Equal(argv, p.Argv) {
		p.Argv, changed = argv, true
	}
	if exe, ok := redact.Text(p.Exe); ok {
		p.Exe, changed = exe, true
	}
	for _, hc := range p.Components {
		// A path the agent resolved against the process's working
		// directory is free text from the node.
		if cf, ok := redact.Text(hc.ConfigFile); ok {
			hc.ConfigFile, changed = cf, true
		}
		for _, f := range hc.Flags {
			for i, v := range f.Values {
				if r, ok := redact.Value(f.Name, v); ok {
					f.Values[i], f.Redacted, changed = r, true, true
				}
			}
		}
	}
	return changed
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
