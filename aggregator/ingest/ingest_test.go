package ingest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/stream"
	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/recognize"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type harness struct {
	engine *apply.Applier
	store  *state.Store
	ingest *Server
	conn   *grpc.ClientConn
	api    v1.AgentServiceClient
}

func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	store, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(store, apply.Config{})
	ing := NewServer(e, cfg)
	// In memory (bufconn): the real gRPC stack, no sockets.
	lis := bufconn.Listen(4 << 20)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(query.Codec{}))
	v1.RegisterAgentServiceServer(gs, ing)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		wg.Wait()
	})
	return &harness{engine: e, store: store, ingest: ing, conn: conn, api: v1.NewAgentServiceClient(conn)}
}

func (h *harness) processes(cluster, node string) []*v1.Process {
	ps, _ := h.store.View().Processes(nil, cluster, node)
	if ps == nil {
		return nil
	}
	return ps.Procs
}

func (h *harness) node(cluster, node string) *state.Node {
	n, _ := h.store.View().Node(nil, cluster, node)
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeScanner returns inventories a test controls.
type fakeScanner struct {
	mu  sync.Mutex
	inv *v1.NodeInventory
}

func (f *fakeScanner) Scan(context.Context) (*v1.NodeInventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := &v1.NodeInventory{Processes: f.inv.Processes}
	inv.Identity = &v1.NodeIdentity{Cluster: f.inv.Identity.Cluster, NodeName: f.inv.Identity.NodeName, WallClock: timestamppb.Now()}
	return inv, nil
}

func (f *fakeScanner) set(procs []*v1.Process) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inv.Processes = procs
}

func proc(pid int32, argv ...string) *v1.Process {
	p := &v1.Process{Pid: pid, StartTime: timestamppb.New(time.Unix(1000+int64(pid), 0)), Argv: argv}
	for _, c := range recognize.Recognize(argv).Components {
		p.Components = append(p.Components, c.Proto())
	}
	return p
}

func TestAgentStreamsSnapshotDeltaHeartbeat(t *testing.T) {
	h := start(t, Config{})
	scan := &fakeScanner{inv: &v1.NodeInventory{
		Identity:  &v1.NodeIdentity{Cluster: "c1", NodeName: "n1"},
		Processes: []*v1.Process{proc(1, "/sbin/init"), proc(10, "/usr/bin/kubelet")},
	}}
	client, err := stream.NewClient(h.conn, scan, stream.Config{ScanInterval: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond, ChunkBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "snapshot", func() bool { return len(h.processes("c1", "n1")) == 2 })
	// A tiny chunk budget split the snapshot; it was applied only whole,
	// and the ack (which may reach the client after the store changed) is
	// for its last chunk.
	waitFor(t, "the ack of the snapshot's last chunk", func() bool { return client.Acked() >= 2 })
	scan.set([]*v1.Process{proc(1, "/sbin/init"), proc(20, "/usr/local/bin/kube-proxy")})
	waitFor(t, "delta", func() bool {
		ps := h.processes("c1", "n1")
		return len(ps) == 2 && ps[1].Pid == 20
	})
	waitFor(t, "a heartbeat after the delta", func() bool {
		n := h.node("c1", "n1")
		return n != nil && time.Since(n.Agent.LastSeen) < 150*time.Millisecond
	})
	waitFor(t, "the kube-proxy instance", func() bool {
		for c := range h.store.View().ComponentsOn(nil, "c1", "n1") {
			if c.Instance().Component == "kube-proxy" {
				return true
			}
		}
		return false
	})
}

// rawStream opens a Connect stream and sends a hello.
func rawStream(t testing.TB, h *harness, cluster, node string) v1.AgentService_ConnectClient {
	t.Helper()
	st, err := h.api.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{
		Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node}, HeartbeatInterval: durationpb.New(time.Second)}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetSettings() == nil {
		t.Fatalf("want settings first, got %v %v", m, err)
	}
	return st
}

func snapshotMsg(gen uint64, cluster, node string, procs ...*v1.Process) *v1.ConnectRequest {
	return &v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
		SnapshotGeneration: gen, Last: true, Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node}, Processes: procs}}}
}

func TestGapAsksForResync(t *testing.T) {
	h := start(t, Config{})
	st := rawStream(t, h, "c1", "n1")
	defer st.CloseSend()
	if err := st.Send(snapshotMsg(1, "c1", "n1", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck().GetGeneration() != 1 {
		t.Fatalf("want ack 1, got %v", m)
	}
	// Generation 2 never arrives.
	if err := st.Send(&v1.ConnectRequest{Generation: 3, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{UpsertedProcesses: []*v1.Process{proc(5, "x")}}}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil || m.GetResync() == nil || m.GetResync().ExpectedGeneration != 2 {
		t.Fatalf("want a resync expecting 2, got %v %v", m, err)
	}
	if len(h.processes("c1", "n1")) != 1 {
		t.Fatal("the out-of-order delta was applied")
	}
	// A new snapshot heals the stream.
	if err := st.Send(snapshotMsg(4, "c1", "n1", proc(1, "init"), proc(7, "etcd"))); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck().GetGeneration() != 4 {
		t.Fatalf("want ack 4, got %v", m)
	}
	if len(h.processes("c1", "n1")) != 2 {
		t.Fatal("resync snapshot not applied")
	}
}

func TestRefusals(t *testing.T) {
	h := start(t, Config{MaxProcesses: 3, RatePerSecond: 1, Burst: 5})
	// A good node first, whose state must survive the others.
	good := rawStream(t, h, "c1", "good")
	if err := good.Send(snapshotMsg(1, "c1", "good", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if m, _ := good.Recv(); m.GetAck() == nil {
		t.Fatal("no ack")
	}
	tests := []struct {
		name string
		send func(st v1.AgentService_ConnectClient) error
		code codes.Code
	}{
		{"too many processes", func(st v1.AgentService_ConnectClient) error {
			return st.Send(snapshotMsg(1, "c1", "n10", proc(1), proc(2), proc(3), proc(4)))
		}, codes.ResourceExhausted},
		{"flood", func(st v1.AgentService_ConnectClient) error {
			for i := 0; i < 50; i++ {
				if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{}}}); err != nil {
					return nil
				}
			}
			return nil
		}, codes.ResourceExhausted},
		{"second hello", func(st v1.AgentService_ConnectClient) error {
			return st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{}}})
		}, codes.InvalidArgument},
		{"snapshot for another node", func(st v1.AgentService_ConnectClient) error {
			return st.Send(snapshotMsg(1, "c1", "someone-else", proc(1)))
		}, codes.InvalidArgument},
		{"empty message", func(st v1.AgentService_ConnectClient) error {
			return st.Send(&v1.ConnectRequest{})
		}, codes.InvalidArgument},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case on a node of its own: the rate limit is per node.
			st := rawStream(t, h, "c1", fmt.Sprintf("n%d", 10+i))
			if err := tt.send(st); err != nil {
				t.Fatal(err)
			}
			var err error
			for err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) != tt.code {
				t.Errorf("got %v, want %v", err, tt.code)
			}
		})
	}
	for _, hello := range []*v1.Hello{nil, {Identity: &v1.NodeIdentity{Cluster: "UPPER", NodeName: "n"}}, {Identity: &v1.NodeIdentity{Cluster: "c", NodeName: ""}}} {
		st, err := h.api.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		msg := &v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: hello}}
		if hello == nil {
			msg = &v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{}}}
		}
		_ = st.Send(msg)
		if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("hello %v: got %v, want InvalidArgument", hello, err)
		}
	}
	if len(h.processes("c1", "good")) != 1 {
		t.Error("the good node's state was lost")
	}
	good.CloseSend()
}

func TestNewStreamReplacesOld(t *testing.T) {
	h := start(t, Config{})
	old := rawStream(t, h, "c1", "n1")
	_ = rawStream(t, h, "c1", "n1")
	var err error
	for err == nil {
		_, err = old.Recv()
	}
	if status.Code(err) != codes.Aborted {
		t.Errorf("old stream ended with %v, want Aborted", err)
	}
	waitFor(t, "one connected agent", func() bool { return h.ingest.ConnectedAgents() == 1 })
}

func TestStaleThenExpired(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := start(t, Config{Now: clock, ExpireAfter: time.Minute})
	st := rawStream(t, h, "c1", "n1")
	if err := st.Send(snapshotMsg(1, "c1", "n1", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	state := func() v1.AgentState { return h.node("c1", "n1").Agent.State }
	advance(2 * time.Second)
	h.ingest.CheckLiveness()
	if state() != v1.AgentState_AGENT_STATE_REPORTING {
		t.Fatalf("state %v after 2 intervals", state())
	}
	advance(2 * time.Second)
	h.ingest.CheckLiveness()
	if state() != v1.AgentState_AGENT_STATE_STALE {
		t.Fatalf("state %v after 4 missed intervals", state())
	}
	if len(h.processes("c1", "n1")) != 1 {
		t.Fatal("a stale node lost its processes")
	}
	advance(time.Minute)
	h.ingest.CheckLiveness()
	if state() != v1.AgentState_AGENT_STATE_EXPIRED {
		t.Fatalf("state %v after expiry", state())
	}
	// The agent comes back.
	if err := st.Send(&v1.ConnectRequest{Generation: 1, Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{WallClock: timestamppb.New(clock())}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reporting again", func() bool { return state() == v1.AgentState_AGENT_STATE_REPORTING })
	st.CloseSend()
}
