package stream

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func p(pid int32, argv ...string) *v1.Process {
	return &v1.Process{Pid: pid, StartTime: timestamppb.New(time.Unix(int64(pid), 0)), Argv: argv, RssBytes: 100}
}

func TestDiff(t *testing.T) {
	m1 := &v1.StaticPodManifest{Path: "/m/a.yaml", Sha256: "aa"}
	base := NewState(&v1.NodeInventory{Processes: []*v1.Process{p(1, "init"), p(2, "kubelet"), p(3, "old")}, Manifests: []*v1.StaticPodManifest{m1},
		Kubelet: &v1.KubeletInfo{StaticPodPath: "/m"}})
	if d := base.Diff(base); d != nil {
		t.Fatalf("no change gave %v", d)
	}
	resourceOnly := p(2, "kubelet")
	resourceOnly.RssBytes, resourceOnly.CpuSeconds = 999, 12
	next := NewState(&v1.NodeInventory{
		Processes: []*v1.Process{p(1, "init"), resourceOnly, p(4, "new")},
		Manifests: []*v1.StaticPodManifest{{Path: "/m/b.yaml", Sha256: "bb"}},
		Kubelet:   &v1.KubeletInfo{StaticPodPath: "/m", CgroupDriver: "systemd"},
	})
	d := base.Diff(next)
	if d == nil || len(d.UpsertedProcesses) != 1 || d.UpsertedProcesses[0].Pid != 4 || len(d.RemovedProcesses) != 1 || d.RemovedProcesses[0].Pid != 3 ||
		len(d.UpsertedManifests) != 1 || len(d.RemovedManifestPaths) != 1 || d.Kubelet == nil {
		t.Fatalf("diff %v", d)
	}
}

// A change in any certificate sends the node's whole set; an unchanged set,
// even as new records from a new scan, sends nothing; an emptied set is sent
// as an empty set, not left out.
func TestDiffCertificates(t *testing.T) {
	c := func(path, sum string) *v1.Certificate { return &v1.Certificate{Path: path, Sha256: sum} }
	inv := func(certs ...*v1.Certificate) *State { return NewState(&v1.NodeInventory{Certificates: certs}) }
	base := inv(c("/a.crt", "1"), c("/b.crt", "2"))
	if d := base.Diff(inv(c("/a.crt", "1"), c("/b.crt", "2"))); d != nil {
		t.Errorf("an unchanged set gave %v", d)
	}
	d := base.Diff(inv(c("/a.crt", "1"), c("/b.crt", "3")))
	if d == nil || len(d.Certificates.GetCertificates()) != 2 {
		t.Errorf("a renewed certificate gave %v", d)
	}
	d = base.Diff(inv())
	if d == nil || d.Certificates == nil || len(d.Certificates.Certificates) != 0 {
		t.Errorf("removing every certificate gave %v", d)
	}
	if chunks := Chunks(&v1.NodeInventory{Certificates: []*v1.Certificate{c("/a.crt", "1")}}, 0); len(chunks[0].Certificates) != 1 {
		t.Errorf("the snapshot's first chunk carries no certificates: %v", chunks)
	}
}

func TestChunksStayUnderBudget(t *testing.T) {
	inv := &v1.NodeInventory{Identity: &v1.NodeIdentity{NodeName: "n"}, Stats: &v1.ScanStats{ProcessesSeen: 3000}}
	for i := 0; i < 3000; i++ {
		inv.Processes = append(inv.Processes, p(int32(i), "/usr/bin/some-long-program-name", "--with", "arguments", "--and=values"))
	}
	chunks := Chunks(inv, 16<<10)
	n := 0
	for i, c := range chunks {
		if size := proto.Size(c); size > 17<<10 {
			t.Errorf("chunk %d is %d bytes", i, size)
		}
		n += len(c.Processes)
		if (i == len(chunks)-1) != c.Last {
			t.Errorf("chunk %d last=%v", i, c.Last)
		}
	}
	if n != 3000 || chunks[0].Identity == nil || chunks[len(chunks)-1].Stats == nil || len(chunks) < 5 {
		t.Errorf("%d processes in %d chunks", n, len(chunks))
	}
}

// countingConn counts bytes in both directions.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// sink acks data and ignores heartbeats, as the aggregator does.
type sink struct {
	v1.UnimplementedAgentServiceServer
	snapshots atomic.Int32
}

func (s *sink) Connect(st v1.AgentService_ConnectServer) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		if m.GetHello() != nil {
			if err := st.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Settings{Settings: &v1.Settings{}}}); err != nil {
				return err
			}
		}
		if c := m.GetSnapshotChunk(); c != nil && c.Last {
			s.snapshots.Add(1)
		}
		if m.GetSnapshotChunk().GetLast() || m.GetDelta() != nil {
			if err := st.Send(&v1.ConnectResponse{Payload: &v1.ConnectResponse_Ack{Ack: &v1.Ack{Generation: m.Generation}}}); err != nil {
				return err
			}
		}
	}
}

type staticScanner struct{ inv *v1.NodeInventory }

func (s staticScanner) Scan(context.Context) (*v1.NodeInventory, error) {
	return &v1.NodeInventory{Identity: &v1.NodeIdentity{Cluster: "c", NodeName: "n", WallClock: timestamppb.Now()}, Processes: s.inv.Processes}, nil
}

// TestSteadyStateBytes measures the bytes on the wire, both ways and with all
// HTTP/2 framing, per heartbeat interval on a node where nothing changes.
func TestSteadyStateBytes(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	sk := &sink{}
	v1.RegisterAgentServiceServer(gs, sk)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	defer func() { gs.Stop(); wg.Wait() }()
	var bytes atomic.Int64
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &bytes}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var procs []*v1.Process
	for i := 0; i < 300; i++ {
		procs = append(procs, p(int32(i), "/usr/bin/x", "--y"))
	}
	const interval = 100 * time.Millisecond
	client, err := NewClient(conn, staticScanner{&v1.NodeInventory{Processes: procs}}, Config{ScanInterval: interval, HeartbeatInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for client.Acked() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("snapshot never acked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * interval)
	before, start := bytes.Load(), time.Now()
	time.Sleep(30 * interval)
	used, elapsed := bytes.Load()-before, time.Since(start)
	cancel()
	<-done
	perInterval := float64(used) / (float64(elapsed) / float64(interval))
	t.Logf("steady state: %d bytes in %v = %.0f bytes per heartbeat interval", used, elapsed.Round(time.Millisecond), perInterval)
	if perInterval > 200 {
		t.Errorf("%.0f bytes per heartbeat interval, want at most 200", perInterval)
	}
	if sk.snapshots.Load() != 1 {
		t.Errorf("%d snapshots sent", sk.snapshots.Load())
	}
}
