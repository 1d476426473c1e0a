// Package hostile is an adversarial agent. It attacks an aggregator the ways
// a compromised, broken or unlucky node could: garbage bytes, message floods,
// snapshots that never complete, oversized command lines, reconnect storms,
// invalid UTF-8 and secrets in argv. Tests run it beside honest agents and
// check that the aggregator holds and the honest nodes notice nothing.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Config says where and how long to attack.
type Config struct {
	Server string
	// Cluster and Node name the hostile node; attacks that need several
	// nodes add suffixes.
	Cluster, Node string
	Duration      time.Duration
	// MessageBytes is the size of the large messages sent (default 1 MiB,
	// under the aggregator's default 4 MiB limit).
	MessageBytes int
}

// Result counts what each attack did and how the aggregator ended its streams.
type Result struct {
	mu sync.Mutex
	// Streams maps an attack to the status codes its streams ended with.
	Streams map[string]map[string]int `json:"streams"`
	// Bytes maps an attack to the bytes it sent.
	Bytes map[string]int64 `json:"bytes"`
}

func (r *Result) record(attack string, err error, sent int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Streams[attack] == nil {
		r.Streams[attack] = map[string]int{}
	}
	if errors.Is(err, io.EOF) {
		err = nil // the server ended the stream cleanly
	}
	r.Streams[attack][status.Code(err).String()]++
	r.Bytes[attack] += sent
}

// String lists the attacks and their outcomes.
func (r *Result) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n := range r.Streams {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%-24s %6.1f MiB sent, streams ended: %v\n", n, float64(r.Bytes[n])/(1<<20), r.Streams[n])
	}
	return b.String()
}

// attack is one way of misbehaving; it runs one stream and returns how it ended.
type attack struct {
	name string
	run  func(ctx context.Context, a *attacker) (int64, error)
}

type attacker struct {
	cfg  Config
	conn *grpc.ClientConn
	api  v1.AgentServiceClient
	seq  int
	mu   sync.Mutex
}

func (a *attacker) node(suffix string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	return fmt.Sprintf("%s-%s-%d", a.cfg.Node, suffix, a.seq)
}

// Run attacks until cfg.Duration is over or ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.MessageBytes == 0 {
		cfg.MessageBytes = 1 << 20
	}
	conn, err := grpc.NewClient(cfg.Server, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	a := &attacker{cfg: cfg, conn: conn, api: v1.NewAgentServiceClient(conn)}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	res := &Result{Streams: map[string]map[string]int{}, Bytes: map[string]int64{}}
	var wg sync.WaitGroup
	for _, at := range attacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
				sent, err := at.run(sctx, a)
				scancel()
				if ctx.Err() != nil {
					return
				}
				res.record(at.name, err, sent)
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return res, nil
}

var attacks = []attack{
	{"garbage", garbage},
	{"flood", flood},
	{"endless-snapshot", endlessSnapshot},
	{"oversized-argv", oversizedArgv},
	{"reconnect-storm", reconnectStorm},
	{"invalid-utf8", invalidUTF8},
	{"lying-generations", lyingGenerations},
}

func hello(cluster, node string) *v1.ConnectRequest {
	return &v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node}}}}
}

// open starts a stream and says hello.
func (a *attacker) open(ctx context.Context, node string) (v1.AgentService_ConnectClient, error) {
	st, err := a.api.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(hello(a.cfg.Cluster, node)); err != nil {
		return nil, ending(st)
	}
	return st, nil
}

// ending reads a stream to its end and returns how it ended.
func ending(st v1.AgentService_ConnectClient) error {
	for {
		if _, err := st.Recv(); err != nil {
			return err
		}
	}
}

// hugeProcesses are processes whose argv add up to about n bytes.
func hugeProcesses(firstPID, n int) []*v1.Process {
	const per = 64 << 10
	var out []*v1.Process
	for i := 0; i*per < n; i++ {
		out = append(out, &v1.Process{Pid: int32(firstPID + i), StartTime: timestamppb.New(time.Unix(int64(firstPID+i), 0)),
			Argv: []string{"/usr/bin/kube-apiserver", "--token=hostile-secret", "--x=" + strings.Repeat("A", per)}})
	}
	return out
}

func garbage(ctx context.Context, a *attacker) (int64, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a.cfg.Server)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	junk := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00\xff\xfe\xfd garbage \x00\x01")
	_, _ = c.Write(junk)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1024)
	_, _ = c.Read(buf)
	return int64(len(junk)), nil
}

func flood(ctx context.Context, a *attacker) (int64, error) {
	st, err := a.open(ctx, a.cfg.Node+"-flood")
	if err != nil {
		return 0, err
	}
	var sent int64
	hb := &v1.ConnectRequest{Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{WallClock: timestamppb.Now()}}}
	for i := 0; i < 100_000; i++ {
		if err := st.Send(hb); err != nil {
			break
		}
		sent += int64(proto.Size(hb))
	}
	return sent, ending(st)
}

func endlessSnapshot(ctx context.Context, a *attacker) (int64, error) {
	node := a.node("endless")
	st, err := a.open(ctx, node)
	if err != nil {
		return 0, err
	}
	var sent int64
	for gen := uint64(1); ctx.Err() == nil; gen++ {
		ch := &v1.SnapshotChunk{SnapshotGeneration: 1, Processes: hugeProcesses(int(gen)*1000, a.cfg.MessageBytes*3/4)}
		if gen == 1 {
			ch.Identity = &v1.NodeIdentity{Cluster: a.cfg.Cluster, NodeName: node}
		}
		m := &v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: ch}}
		if err := st.Send(m); err != nil {
			break
		}
		sent += int64(proto.Size(m))
	}
	return sent, ending(st)
}

func oversizedArgv(ctx context.Context, a *attacker) (int64, error) {
	node := a.cfg.Node + "-argv"
	st, err := a.open(ctx, node)
	if err != nil {
		return 0, err
	}
	var sent int64
	m := &v1.ConnectRequest{Generation: 1, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
		SnapshotGeneration: 1, Last: true, Identity: &v1.NodeIdentity{Cluster: a.cfg.Cluster, NodeName: node},
		Processes: hugeProcesses(1, a.cfg.MessageBytes*3/4)}}}
	if err := st.Send(m); err != nil {
		return 0, ending(st)
	}
	sent += int64(proto.Size(m))
	// Then grow the node delta by delta, each within the message limit.
	for gen := uint64(2); ctx.Err() == nil; gen++ {
		d := &v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{
			UpsertedProcesses: hugeProcesses(int(gen)*1000, a.cfg.MessageBytes*3/4)}}}
		if err := st.Send(d); err != nil {
			break
		}
		sent += int64(proto.Size(d))
	}
	return sent, ending(st)
}

func reconnectStorm(ctx context.Context, a *attacker) (int64, error) {
	var last error
	var sent int64
	for i := 0; i < 50 && ctx.Err() == nil; i++ {
		sctx, cancel := context.WithCancel(ctx)
		st, err := a.open(sctx, a.cfg.Node+"-storm")
		if err != nil {
			cancel()
			last = err
			continue
		}
		sent += int64(proto.Size(hello(a.cfg.Cluster, a.cfg.Node+"-storm")))
		cancel()
		last = ending(st)
	}
	return sent, last
}

// rawCodec sends pre-encoded bytes as they are: what a real client cannot.
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

func invalidUTF8(ctx context.Context, a *attacker) (int64, error) {
	desc := &grpc.StreamDesc{StreamName: "Connect", ClientStreams: true, ServerStreams: true}
	cs, err := a.conn.NewStream(ctx, desc, v1.AgentService_Connect_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return 0, err
	}
	node := a.cfg.Node + "-utf8"
	h, _ := proto.Marshal(hello(a.cfg.Cluster, node))
	snap, _ := proto.Marshal(&v1.ConnectRequest{Generation: 1, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{
		SnapshotGeneration: 1, Last: true, Identity: &v1.NodeIdentity{Cluster: a.cfg.Cluster, NodeName: node},
		Processes: []*v1.Process{{Pid: 1, Argv: []string{"kube-proxy", "--x=" + strings.Repeat("a", 184) + "XXXX"}, User: "XXXX"}}}}})
	snap = []byte(strings.ReplaceAll(string(snap), "XXXX", "\xc3\xff\xfe\xfd"))
	var sent int64
	for _, b := range [][]byte{h, snap} {
		if err := cs.SendMsg(b); err != nil {
			break
		}
		sent += int64(len(b))
	}
	_ = cs.CloseSend()
	for {
		var m v1.ConnectResponse
		if err := cs.RecvMsg(&m); err != nil {
			return sent, err
		}
	}
}

func lyingGenerations(ctx context.Context, a *attacker) (int64, error) {
	node := a.cfg.Node + "-liar"
	st, err := a.open(ctx, node)
	if err != nil {
		return 0, err
	}
	var sent int64
	msgs := []*v1.ConnectRequest{
		{Generation: 1, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: &v1.SnapshotChunk{SnapshotGeneration: 1, Last: true,
			Identity: &v1.NodeIdentity{Cluster: a.cfg.Cluster, NodeName: "someone-else"}}}},
		{Generation: 99, Payload: &v1.ConnectRequest_Delta{Delta: &v1.Delta{}}},
		{Generation: 7, Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{}}},
		{},
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			break
		}
		sent += int64(proto.Size(m))
	}
	err = ending(st)
	if status.Code(err) == codes.OK {
		return sent, nil
	}
	return sent, err
}
