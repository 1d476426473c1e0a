package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// endsWith reads a stream until it ends and returns its status code.
func endsWith(t *testing.T, st v1.AgentService_ConnectClient) (codes.Code, string) {
	t.Helper()
	var err error
	for err == nil {
		_, err = st.Recv()
	}
	s, _ := status.FromError(err)
	return s.Code(), s.Message()
}

func TestRateLimitIsPerNodeAcrossReconnects(t *testing.T) {
	h := start(t, Config{RatePerSecond: 0.001, Burst: 5})
	st := rawStream(t, h, "c1", "n1")
	for i := 0; i < 10; i++ {
		if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{}}}); err != nil {
			break
		}
	}
	if code, _ := endsWith(t, st); code != codes.ResourceExhausted {
		t.Fatalf("flood ended with %v", code)
	}
	// Reconnecting does not refill the bucket: the hello itself is refused.
	again, err := h.api.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = again.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: "c1", NodeName: "n1"}}}})
	if code, msg := endsWith(t, again); code != codes.ResourceExhausted || !strings.Contains(msg, "across reconnects") {
		t.Fatalf("reconnect got %v %q, want ResourceExhausted", code, msg)
	}
	// Another node is unaffected.
	other := rawStream(t, h, "c1", "n2")
	if err := other.Send(snapshotMsg(1, "c1", "n2", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if m, err := other.Recv(); err != nil || m.GetAck() == nil {
		t.Fatalf("other node: %v %v", m, err)
	}
}

func TestByteBudgetCoversSnapshotsAndDeltas(t *testing.T) {
	h := start(t, Config{MaxNodeBytes: 8 << 10, MaxMessageBytes: 4 << 10})
	big := strings.Repeat("x", 1000)
	// A snapshot over the budget, in chunks each under the message limit.
	st := rawStream(t, h, "c1", "n1")
	var code codes.Code
	for gen := uint64(1); gen <= 12; gen++ {
		msg := &v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
			SnapshotGeneration: 1, Identity: &v1.NodeIdentity{Cluster: "c1", NodeName: "n1"},
			Processes: []*v1.Process{proc(int32(gen), "/bin/x", big), proc(int32(100+gen), "/bin/y", big)}}}}
		if gen > 1 {
			msg.GetSnapshotChunk().Identity = nil
		}
		if err := st.Send(msg); err != nil {
			break
		}
	}
	if code, _ = endsWith(t, st); code != codes.ResourceExhausted {
		t.Fatalf("oversized snapshot ended with %v", code)
	}
	if h.processes("c1", "n1") != nil {
		t.Fatal("a refused snapshot was stored")
	}
	// Deltas that each fit but together pass the budget.
	st = rawStream(t, h, "c1", "n2")
	if err := st.Send(snapshotMsg(1, "c1", "n2", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck() == nil {
		t.Fatal("no ack")
	}
	for gen := uint64(2); gen < 20; gen++ {
		d := &v1.Delta{UpsertedProcesses: []*v1.Process{proc(int32(gen*10), "/bin/x", big), proc(int32(gen*10+1), "/bin/x", big)}}
		if err := st.Send(&v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_Delta{Delta: d}}); err != nil {
			break
		}
		m, err := st.Recv()
		if err != nil {
			s, _ := status.FromError(err)
			code = s.Code()
			if !strings.Contains(s.Message(), "bytes") {
				t.Errorf("refusal does not name the limit: %q", s.Message())
			}
			break
		}
		if m.GetAck() == nil {
			t.Fatalf("want ack, got %v", m)
		}
	}
	if code != codes.ResourceExhausted {
		t.Fatalf("deltas over the budget ended with %v", code)
	}
	if ps, _ := h.store.View().Processes(nil, "c1", "n2"); ps == nil {
		t.Fatal("the node's last good state was lost")
	}
}

func TestProcessLimitHoldsAcrossDeltas(t *testing.T) {
	h := start(t, Config{MaxProcesses: 3})
	st := rawStream(t, h, "c1", "n1")
	if err := st.Send(snapshotMsg(1, "c1", "n1", proc(1), proc(2), proc(3))); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck() == nil {
		t.Fatal("no ack")
	}
	_ = st.Send(&v1.ConnectRequest{Generation: 2, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{UpsertedProcesses: []*v1.Process{proc(4)}}}})
	if code, msg := endsWith(t, st); code != codes.ResourceExhausted || !strings.Contains(msg, "processes") {
		t.Fatalf("got %v %q", code, msg)
	}
	if n := len(h.processes("c1", "n1")); n != 3 {
		t.Fatalf("%d processes stored", n)
	}
}

// Certificates are bounded per node, in snapshots and deltas, and their free
// text is redacted again.
func TestCertificateLimitAndRedaction(t *testing.T) {
	h := start(t, Config{MaxCertificates: 2})
	certs := func(n int) []*v1.Certificate {
		var out []*v1.Certificate
		for i := range n {
			out = append(out, &v1.Certificate{Path: fmt.Sprintf("/pki/%d.crt?token=S3CR3T", i), Error: "Authorization: Bearer S3CR3T"})
		}
		return out
	}
	st := rawStream(t, h, "c1", "n1")
	msg := snapshotMsg(1, "c1", "n1", proc(1))
	msg.GetSnapshotChunk().Certificates = certs(2)
	if err := st.Send(msg); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck() == nil {
		t.Fatal("no ack")
	}
	stored := h.node("c1", "n1").Agent.Certificates
	b, _ := proto.Marshal(&v1.CertificateSet{Certificates: stored})
	if len(stored) != 2 || bytes.Contains(b, []byte("S3CR3T")) {
		t.Fatalf("stored %v", stored)
	}
	_ = st.Send(&v1.ConnectRequest{Generation: 2, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{Certificates: &v1.CertificateSet{Certificates: certs(3)}}}})
	if code, msg := endsWith(t, st); code != codes.ResourceExhausted || !strings.Contains(msg, "certificates") {
		t.Fatalf("got %v %q", code, msg)
	}
	if n := len(h.node("c1", "n1").Agent.Certificates); n != 2 {
		t.Fatalf("%d certificates stored after a refused delta", n)
	}
	st = rawStream(t, h, "c1", "n2")
	msg = snapshotMsg(1, "c1", "n2", proc(1))
	msg.GetSnapshotChunk().Certificates = certs(3)
	_ = st.Send(msg)
	if code, msg := endsWith(t, st); code != codes.ResourceExhausted || !strings.Contains(msg, "certificates") {
		t.Fatalf("a snapshot over the limit: %v %q", code, msg)
	}
}

func TestIngestRedactsAgain(t *testing.T) {
	h := start(t, Config{})
	st := rawStream(t, h, "c1", "n1")
	p := proc(7, "kube-apiserver", "--token=S3CR3T", "--etcd-servers=https://root:S3CR3T@10.0.0.1:2379")
	p.Components[0].Flags = append(p.Components[0].Flags, &v1.Flag{Name: "token", Values: []string{"S3CR3T"}})
	p.Exe = "/opt/bin/app?token=S3CR3T"
	p.Components[0].ConfigFile = "/srv/config.yaml?token=S3CR3T"
	msg := snapshotMsg(1, "c1", "n1", p)
	msg.GetSnapshotChunk().Identity.OsImage = "Debian password=S3CR3T"
	msg.GetSnapshotChunk().Manifests = []*v1.StaticPodManifest{{Path: "/etc/kubernetes/manifests/x.yaml", ParseError: "line 3: password: S3CR3T",
		Containers: []*v1.ManifestContainer{{Name: "c", Command: []string{"kube-apiserver", "--token"}, Args: []string{"S3CR3T"}}}}}
	msg.GetSnapshotChunk().Kubelet = &v1.KubeletInfo{KubeadmFlags: []string{"--bootstrap-token=S3CR3T"}, Errors: []string{"Authorization: Bearer S3CR3T"}}
	if err := st.Send(msg); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Recv(); m.GetAck() == nil {
		t.Fatal("no ack")
	}
	stored := h.processes("c1", "n1")[0]
	b, _ := proto.Marshal(stored)
	if bytes.Contains(b, []byte("S3CR3T")) {
		t.Fatalf("a secret was stored: %v", stored)
	}
	mans, _ := h.store.View().Manifests(nil, "c1", "n1")
	mb, _ := proto.Marshal(mans.Manifests[0])
	kb, _ := proto.Marshal(h.node("c1", "n1").Agent.Kubelet)
	ib, _ := proto.Marshal(h.node("c1", "n1").Agent.Identity)
	if bytes.Contains(mb, []byte("S3CR3T")) || bytes.Contains(kb, []byte("S3CR3T")) || bytes.Contains(ib, []byte("S3CR3T")) {
		t.Fatalf("a secret was stored in a manifest or the kubelet's info")
	}
}

// rawCodec sends pre-encoded bytes as they are, to put what a real client
// cannot (invalid UTF-8) on the wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func TestHelloWithInvalidUTF8IsInvalidArgument(t *testing.T) {
	h := start(t, Config{})
	hello := &v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: "c1", NodeName: "XXXXXXXX"}}}}
	b, err := proto.Marshal(hello)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("XXXXXXXX"), []byte("n\xff\xfe\xfd\xfc\xfb\xfa1"), 1)
	desc := &grpc.StreamDesc{StreamName: "Connect", ClientStreams: true, ServerStreams: true}
	cs, err := h.conn.NewStream(context.Background(), desc, v1.AgentService_Connect_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(b); err != nil {
		t.Fatal(err)
	}
	var m v1.ConnectResponse
	err = cs.RecvMsg(&m)
	// The server makes the name valid (U+FFFD for each bad byte) and then
	// refuses it for what it is: not a DNS name.
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "DNS name") {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
}

func TestErrorsDoNotEchoHugeNames(t *testing.T) {
	h := start(t, Config{})
	st, err := h.api.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("A", 1<<20)
	_ = st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: huge, NodeName: "n"}}}})
	code, msg := endsWith(t, st)
	if code != codes.InvalidArgument || len(msg) > 400 {
		t.Fatalf("got %v with a %d-byte message", code, len(msg))
	}
}

func TestShutdownEndsStreamsAtOnce(t *testing.T) {
	h := start(t, Config{})
	st := rawStream(t, h, "c1", "n1")
	h.ingest.Shutdown()
	done := make(chan codes.Code, 1)
	go func() { c, _ := endsWith(t, st); done <- c }()
	select {
	case c := <-done:
		if c != codes.Unavailable {
			t.Fatalf("stream ended with %v, want Unavailable", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after shutdown")
	}
}

func TestReplacedStreamCannotApply(t *testing.T) {
	h := start(t, Config{})
	key := nodeKey{"c1", "n1"}
	ns, oldEpoch := h.ingest.register(key, &streamReg{cancel: func(error) {}})
	_, _ = h.ingest.register(key, &streamReg{cancel: func(error) {}})
	old := &session{s: h.ingest, key: key, ns: ns, epoch: oldEpoch}
	applied := false
	err := old.apply(func() error { applied = true; return nil })
	if status.Code(err) != codes.Aborted || applied {
		t.Fatalf("a replaced stream applied a change: %v", err)
	}
}

func TestForgetAfter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := start(t, Config{Now: clock, ExpireAfter: time.Minute, ForgetAfter: time.Hour})
	st := rawStream(t, h, "c1", "gone")
	if err := st.Send(snapshotMsg(1, "c1", "gone", proc(1, "init"))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
	advance(2 * time.Minute)
	h.ingest.CheckLiveness()
	if n := h.node("c1", "gone"); n == nil || n.Agent.State != v1.AgentState_AGENT_STATE_EXPIRED {
		t.Fatal("not expired")
	}
	advance(time.Hour)
	h.ingest.CheckLiveness()
	if h.node("c1", "gone") != nil || h.processes("c1", "gone") != nil {
		t.Fatal("an expired node with no Node object was not forgotten")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{ForgetAfter: time.Minute}, {MaxNodeBytes: 10, MaxMessageBytes: 4096}, {Burst: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

var _ = apply.Limits{}

// FuzzIngest feeds the ingest server, over a real gRPC stream, a hello
// and then fuzzed messages: whatever they hold, the server answers or
// refuses them and keeps serving an honest node.
func FuzzIngest(f *testing.F) {
	seedMsg, _ := proto.Marshal(snapshotMsg(1, "c1", "n1", proc(1, "init"), proc(2, "kube-apiserver", "--token=x")))
	f.Add(seedMsg, uint8(1))
	delta, _ := proto.Marshal(&v1.ConnectRequest{Generation: 2, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{UpsertedProcesses: []*v1.Process{proc(3, "x")}}}})
	f.Add(delta, uint8(2))
	h := start(f, Config{MaxNodeBytes: 1 << 20, MaxMessageBytes: 64 << 10})
	honest := rawStream(f, h, "c1", "honest")
	if err := honest.Send(snapshotMsg(1, "c1", "honest", proc(1, "init"))); err != nil {
		f.Fatal(err)
	}
	if m, err := honest.Recv(); err != nil || m.GetAck() == nil {
		f.Fatal("honest node not acked")
	}
	var runs atomic.Int64
	f.Fuzz(func(t *testing.T, b []byte, repeat uint8) {
		var m v1.ConnectRequest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		// A node per run: each node's rate bucket is its own.
		st := rawStream(t, h, "c1", fmt.Sprintf("fuzzed-%d", runs.Add(1)))
		for i := 0; i <= int(repeat%4); i++ {
			if st.Send(&m) != nil {
				break
			}
		}
		_ = st.CloseSend()
		for {
			if _, err := st.Recv(); err != nil {
				break
			}
		}
		if len(h.processes("c1", "honest")) != 1 {
			t.Fatal("the honest node's state was lost")
		}
	})
}
