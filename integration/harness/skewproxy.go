package harness

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// SkewProxy stands between agents and the aggregator and moves every wall
// clock the agents report by Offset: to the aggregator, those nodes' clocks
// run ahead (or behind), as the reference cluster's workers' do. The real
// clock cannot be set per node (time namespaces leave CLOCK_REALTIME alone).
type SkewProxy struct {
	v1.UnimplementedAgentServiceServer
	Addr   string
	Offset time.Duration
	up     v1.AgentServiceClient
}

// StartSkewProxy serves AgentService on a loopback port and forwards to target.
func StartSkewProxy(t testing.TB, target string, offset time.Duration) *SkewProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p := &SkewProxy{Addr: lis.Addr().String(), Offset: offset, up: v1.NewAgentServiceClient(conn)}
	gs := grpc.NewServer()
	v1.RegisterAgentServiceServer(gs, p)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		wg.Wait()
		conn.Close()
	})
	return p
}

func (p *SkewProxy) shift(ts *timestamppb.Timestamp) *timestamppb.Timestamp {
	if ts == nil {
		return nil
	}
	return timestamppb.New(ts.AsTime().Add(p.Offset))
}

// Connect forwards one agent stream, shifting its clocks.
func (p *SkewProxy) Connect(down v1.AgentService_ConnectServer) error {
	ctx, cancel := context.WithCancel(down.Context())
	defer cancel()
	up, err := p.up.Connect(ctx)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() {
		for {
			m, err := down.Recv()
			if err != nil {
				_ = up.CloseSend()
				errs <- nil
				return
			}
			if id := m.GetHello().GetIdentity(); id != nil {
				id.WallClock = p.shift(id.WallClock)
			}
			if id := m.GetSnapshotChunk().GetIdentity(); id != nil {
				id.WallClock = p.shift(id.WallClock)
			}
			if d := m.GetDelta(); d != nil {
				d.WallClock = p.shift(d.WallClock)
			}
			if h := m.GetHeartbeat(); h != nil {
				h.WallClock = p.shift(h.WallClock)
			}
			if err := up.Send(m); err != nil {
				errs <- nil // the upstream's status comes from Recv
				return
			}
		}
	}()
	go func() {
		for {
			m, err := up.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				errs <- err
				cancel()
				return
			}
			if err := down.Send(m); err != nil {
				errs <- err
				cancel()
				return
			}
		}
	}()
	// The upstream's verdict (a status error, or its end) ends the stream.
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}
