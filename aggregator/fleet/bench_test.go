package fleet

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// benchNode is a published worker node of 12 instances, with flags and
// evidence, about 6 KB encoded: the shape kubeatlas-fleet-load publishes.
// One node in etcdEvery runs etcd.
func benchNode(cluster string, node, etcdEvery int) *v1.FleetNode {
	name := fmt.Sprintf("node-%06d", node)
	rec := &v1.FleetNode{Node: &v1.Node{Cluster: cluster, Name: name, Roles: []string{"worker"}, InApi: true,
		AgentState: v1.AgentState_AGENT_STATE_REPORTING, KubeletVersion: "v1.30.4", ProcessCount: 300}}
	kinds := []struct{ component, impl, image string }{
		{"kubelet", "kubelet", ""}, {"container-runtime", "containerd", ""}, {"kube-proxy", "kube-proxy", "registry.k8s.io/kube-proxy:v1.30.4"},
		{"cni", "flannel", "docker.io/flannel/flannel:v0.25.1"}, {"cluster-dns", "coredns", "registry.k8s.io/coredns/coredns:v1.11.1"},
		{"csi", "ebs.csi.aws.com", "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.30.0"},
	}
	for i := range 12 {
		k := kinds[i%len(kinds)]
		how, owner := v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET, &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-system", Name: k.impl}
		if i == 0 && node%etcdEvery == 0 {
			k = struct{ component, impl, image string }{"etcd", "etcd", "registry.k8s.io/etcd:3.5.12-0"}
			how, owner = v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD, &v1.ObjectRef{Kind: "Node", Name: name}
		}
		id := fmt.Sprintf("%s/%s/%d", name, k.component, i)
		rec.Components = append(rec.Components, &v1.ComponentInstance{Cluster: cluster, Node: name, Component: k.component,
			Implementation: k.impl, How: how, Owner: owner, Pid: int32(1000 + i), Image: k.image, Version: "v1.30.4", HasProcess: true, Id: id,
			ContainerId: fmt.Sprintf("%064x", node*100+i), Pod: &v1.ObjectRef{Kind: "Pod", Namespace: "kube-system", Name: k.impl + "-" + name},
			Flags: []*v1.Flag{{Name: "v", Values: []string{"2"}}, {Name: "kubeconfig", Values: []string{"/etc/kubernetes/" + k.impl + ".conf"}}},
			Evidence: []*v1.Evidence{{Kind: v1.EvidenceKind_EVIDENCE_KIND_PROCESS, Summary: fmt.Sprintf("pid %d: /usr/bin/%s --v=2", 1000+i, k.impl)},
				{Kind: v1.EvidenceKind_EVIDENCE_KIND_CGROUP, Summary: "cgroup /kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope"}}})
	}
	return rec
}

// loadView applies nodes published nodes in clusters clusters to an empty
// fleet view's store, as View does with the bucket's records.
func loadView(tb testing.TB, clusters, nodes, etcdEvery int) *state.Store {
	tb.Helper()
	st, err := state.NewStore()
	if err != nil {
		tb.Fatal(err)
	}
	v := &View{Applier: apply.New(st, apply.Config{})}
	v.defaults()
	per := nodes / clusters
	var batch []jetstream.KeyValueEntry
	for n := range nodes {
		cluster := fmt.Sprintf("cluster-%03d", n/per)
		rec := benchNode(cluster, n, etcdEvery)
		data, err := proto.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		batch = append(batch, entry{key: nodeKey(cluster, rec.Node.Name), value: data})
		if len(batch) == maxBatch || n == nodes-1 {
			v.applyBatch(batch)
			batch = batch[:0]
		}
	}
	if v.Refused.Load() != 0 {
		tb.Fatalf("%d records refused", v.Refused.Load())
	}
	return st
}

// BenchmarkFleetWhereEtcd answers `where etcd` in the basic view (1,000
// instances among 120,000) on a fleet view's store, encoding the answer as
// gRPC would, and reports the p99 of one answer.
func BenchmarkFleetWhereEtcd(b *testing.B) {
	st := loadView(b, 10, 10_000, 10)
	s := query.NewServer(st)
	req := &v1.ListComponentsRequest{Component: "etcd", PageSize: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC}
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		resp, err := s.ListComponents(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		data, err := proto.Marshal(resp)
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		if i == 0 {
			// What a client receives, decoded (not timed).
			var got v1.ListComponentsResponse
			if err := proto.Unmarshal(data, &got); err != nil || len(got.Components) != 1000 || got.NextPageToken != "" {
				b.Fatalf("%d instances, next page %q, %v", len(got.Components), got.NextPageToken, err)
			}
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFleetWhereEtcdOverGRPC asks `where etcd` as BenchmarkFleetWhereEtcd
// does, through a gRPC client with default settings over loopback: the
// answer as a user's client sees it, decoded, on an idle machine. The
// client asks back to back, and with 50 ms between questions, as
// fleet-load's probe does: an idle client and server wake for each
// question, and on this machine that costs more than the server's answer.
func BenchmarkFleetWhereEtcdOverGRPC(b *testing.B) {
	st := loadView(b, 10, 10_000, 10)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(query.Codec{}))
	v1.RegisterInventoryServiceServer(gs, query.NewServer(st))
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	inv := v1.NewInventoryServiceClient(conn)
	req := &v1.ListComponentsRequest{Component: "etcd", PageSize: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC}
	for _, gap := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run("gap="+gap.String(), func(b *testing.B) {
			var took []time.Duration
			for range b.N {
				time.Sleep(gap)
				t0 := time.Now()
				resp, err := inv.ListComponents(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
				if len(resp.Components) != 1000 {
					b.Fatalf("%d instances", len(resp.Components))
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkFleetViewHeap loads 10,000 published nodes (120,000 instances)
// into a fleet view's store and reports the live heap and objects per
// instance, and what a collection of that heap takes: the collector's cost
// grows with the objects it marks and the pointers it follows.
func BenchmarkFleetViewHeap(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		st := loadView(b, 10, 10_000, 100)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/120_000, "live-B/instance")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/120_000, "objects/instance")
		gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
		metrics.Read(gcCPU)
		cpu0 := gcCPU[0].Value.Float64()
		for range 5 {
			runtime.GC()
		}
		metrics.Read(gcCPU)
		b.ReportMetric((gcCPU[0].Value.Float64()-cpu0)/5*1000, "gc-cpu-ms")
		runtime.KeepAlive(st)
	}
}

// BenchmarkFleetApply applies published node updates, as View does with
// the bucket's records, to a fleet view's store of 10,000 nodes.
func BenchmarkFleetApply(b *testing.B) {
	st := loadView(b, 10, 10_000, 100)
	e := apply.New(st, apply.Config{})
	recs := make([][]byte, 1000)
	for i := range recs {
		n := benchNode("cluster-000", i, 100)
		n.Components[1].RestartCount = 1
		data, err := proto.Marshal(n)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = data
	}
	v := &View{Applier: e}
	v.defaults()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(recs) == 0 && i > 0 {
			b.StopTimer()
			for j := range recs {
				n := benchNode("cluster-000", j, 100)
				n.Components[1].RestartCount = int32(i)
				recs[j], _ = proto.Marshal(n)
			}
			b.StartTimer()
		}
		data := recs[i%len(recs)]
		v.applyBatch([]jetstream.KeyValueEntry{entry{key: "cluster-000.node." + fmt.Sprintf("node-%06d", i%len(recs)), value: data}})
	}
}

// entry is a bucket record put.
type entry struct {
	key   string
	value []byte
}

func (e entry) Bucket() string                  { return DefaultBucket }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return 1 }
func (e entry) Created() time.Time              { return time.Now() }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

// BenchmarkFleetApplyShared applies updates of random nodes, every
// instance changed, to a fleet view's store of 10,000 nodes, alone and
// several to a transaction, as records that wait out CommitWait are: the
// records of one transaction share the copies of the trees' paths that
// they change. It reports allocation a record.
func BenchmarkFleetApplyShared(b *testing.B) {
	for _, size := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("records=%d", size), func(b *testing.B) {
			st := loadView(b, 10, 10_000, 100)
			v := &View{Applier: apply.New(st, apply.Config{})}
			v.defaults()
			recs := make([]jetstream.KeyValueEntry, 2000)
			for i := range recs {
				n := (i * 7919) % 10_000
				cluster := fmt.Sprintf("cluster-%03d", n/1000)
				rec := benchNode(cluster, n, 100)
				for _, c := range rec.Components {
					c.RestartCount = int32(i + 1)
				}
				data, err := proto.Marshal(rec)
				if err != nil {
					b.Fatal(err)
				}
				recs[i] = entry{key: nodeKey(cluster, rec.Node.Name), value: data}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				j := i % len(recs)
				v.applyBatch(recs[j:min(j+size, len(recs), j+b.N-i)])
			}
		})
	}
}
