package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// badAgents sends the aggregator garbage, a lying agent and a flooding agent;
// each is refused and the rest of the fleet is not disturbed.
func badAgents(t *testing.T, e *env) {
	// Bytes that are not HTTP/2.
	c, err := net.Dial("tcp", e.agg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	_, _ = c.Read(buf)
	c.Close()

	conn, err := grpc.NewClient(e.agg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := v1.NewAgentServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	endsWith := func(name string, code codes.Code, send func(v1.AgentService_ConnectClient) error) {
		t.Helper()
		st, err := api.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := send(st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for {
			if _, err = st.Recv(); err != nil {
				break
			}
		}
		if status.Code(err) != code {
			t.Errorf("%s: stream ended with %v, want %v", name, err, code)
		}
	}
	hello := func(cluster, node string) *v1.ConnectRequest {
		return &v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node}}}}
	}
	endsWith("no hello", codes.InvalidArgument, func(st v1.AgentService_ConnectClient) error {
		return st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{}}})
	})
	endsWith("bad names", codes.InvalidArgument, func(st v1.AgentService_ConnectClient) error {
		return st.Send(hello("Seed!", "../etc"))
	})
	endsWith("snapshot for another node", codes.InvalidArgument, func(st v1.AgentService_ConnectClient) error {
		if err := st.Send(hello("seed", "intruder")); err != nil {
			return err
		}
		return st.Send(&v1.ConnectRequest{Generation: 1, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
			SnapshotGeneration: 1, Last: true, Identity: &v1.NodeIdentity{Cluster: "seed", NodeName: "test"}}}})
	})
	endsWith("flood", codes.ResourceExhausted, func(st v1.AgentService_ConnectClient) error {
		if err := st.Send(hello("seed", "flooder")); err != nil {
			return err
		}
		for i := 0; i < 2000; i++ {
			if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{WallClock: timestamppb.Now()}}}); err != nil {
				return nil // the server already hung up
			}
		}
		return nil
	})
}
