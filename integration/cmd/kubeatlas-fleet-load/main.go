// kubeatlas-fleet-load measures the fleet tier at scale on one machine: the
// publishers of many clusters put their nodes into a JetStream key-value
// bucket of an embedded NATS server, and a real fleet view process
// (kubeatlas-aggregator --fleet-from) follows it. It prints, exactly so
// named:
//
//	fleet: catch-up <d>                      an empty fleet view reaching the full state
//	fleet: where etcd p50 <d>, p99 <d>       while 1% of nodes change every interval
//	fleet: heap peak <n> MiB                 the fleet view's heap, and per instance
//	fleet: publish lag p99 <d>               from a put to the fleet view's Watch event
//	fleet: watchers 100, ingest slowdown <p>%  applying bursts with and without watchers (medians)
//
// Indented lines after a figure explain it: what the view did in the steady
// state and how much CPU time the host stole meanwhile, and each burst.
// `make fleet-load` runs it; BENCHMARKS.md records its figures.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/integration/load"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

var (
	clusters  = flag.Int("clusters", 100, "clusters, one publisher each")
	nodes     = flag.Int("nodes", 100_000, "nodes in all")
	instances = flag.Int("instances", 12, "component instances a node")
	interval  = flag.Duration("interval", 10*time.Second, "how often 1% of nodes change")
	steady    = flag.Duration("steady", 60*time.Second, "how long the steady state is measured")
	watchers  = flag.Int("watchers", 100, "fleet-wide watchers for the slowdown figure")
	burst     = flag.Int("burst", 10_000, "node updates in the burst that measures ingest")
	nBursts   = flag.Int("bursts", 3, "bursts on each side of the slowdown figure, compared by their medians")
	aggBin    = flag.String("aggregator", "", "the kubeatlas-aggregator binary (required)")
	heapProf  = flag.String("heap-profile", "", "write the fleet view's heap profile here once it has caught up")
	cpuProf   = flag.String("cpu-profile", "", "write the fleet view's CPU profile of the first 6 s of the bursts with watchers (a burst and its fan-out) here")
	allocProf = flag.String("alloc-profile", "", "write the fleet view's allocation profiles before (`file`.base) and after the bursts with watchers, and before (file.steady.base) and after (file.steady) the steady state; read with go tool pprof -sample_index=alloc_space -base file.base file")
	viewFlags = flag.String("view-flags", "", "more flags for the fleet view, separated by spaces (for example \"--fleet-commit-wait 0\")")
	probe     = flag.String("probe", "", "only ask `where etcd` of the fleet view at this address and print the latencies as JSON (used by the run itself)")
	probeFor  = flag.Duration("probe-for", time.Minute, "how long -probe asks")
	undecoded = flag.Bool("probe-undecoded", false, "the `where etcd` probe receives each answer's bytes and does not decode them, to tell its decoding from the rest of an answer's time")
)

func main() {
	flag.Parse()
	if *probe != "" {
		if err := probeWhere(*probe, *probeFor); err != nil {
			fmt.Fprintln(os.Stderr, "fleet-load -probe:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-load:", err)
		os.Exit(1)
	}
}

func clusterName(c int) string { return fmt.Sprintf("cluster-%03d", c) }
func nodeName(n int) string    { return fmt.Sprintf("node-%06d", n) }

// nodeRecord is a node as an aggregator would publish it: a worker with
// the reference cluster's shape, version bumped by gen.
func nodeRecord(cluster string, node, gen int) *v1.FleetNode {
	name := nodeName(node)
	rec := &v1.FleetNode{Node: &v1.Node{Cluster: cluster, Name: name, Roles: []string{"worker"}, InApi: true,
		AgentState: v1.AgentState_AGENT_STATE_REPORTING, KubeletVersion: "v1.30.4", InternalIps: []string{fmt.Sprintf("10.%d.%d.%d", node>>16&255, node>>8&255, node&255)},
		ProcessCount: 300, ClockSkew: durationpb.New(0)}}
	kinds := []struct{ component, impl, image string }{
		{"kubelet", "kubelet", ""}, {"container-runtime", "containerd", ""}, {"kube-proxy", "kube-proxy", "registry.k8s.io/kube-proxy:v1.30.4"},
		{"cni", "flannel", "docker.io/flannel/flannel:v0.25.1"}, {"cluster-dns", "coredns", "registry.k8s.io/coredns/coredns:v1.11.1"},
		{"csi", "ebs.csi.aws.com", "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.30.0"},
	}
	for i := 0; i < *instances; i++ {
		k := kinds[i%len(kinds)]
		how, owner := v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET, &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-system", Name: k.impl}
		if k.image == "" {
			how, owner = v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS, nil
		}
		// One node in a hundred runs the control plane's etcd.
		if i == 0 && node%100 == 0 {
			k = struct{ component, impl, image string }{"etcd", "etcd", "registry.k8s.io/etcd:3.5.12-0"}
			how, owner = v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD, &v1.ObjectRef{Kind: "Node", Name: name}
		}
		id := fmt.Sprintf("%s/%s/%d", name, k.component, i)
		in := &v1.ComponentInstance{Cluster: cluster, Node: name, Component: k.component, Implementation: k.impl, How: how, Owner: owner,
			Pid: int32(1000 + i), Image: k.image, Version: "v1.30.4", HasProcess: true, RestartCount: int32(gen), Id: id,
			ContainerId: fmt.Sprintf("%064x", node*100+i),
			Flags:       []*v1.Flag{{Name: "v", Values: []string{"2"}}, {Name: "kubeconfig", Values: []string{"/etc/kubernetes/" + k.impl + ".conf"}}},
			Evidence: []*v1.Evidence{{Kind: v1.EvidenceKind_EVIDENCE_KIND_PROCESS, Summary: fmt.Sprintf("pid %d: /usr/bin/%s --v=2", 1000+i, k.impl)},
				{Kind: v1.EvidenceKind_EVIDENCE_KIND_CGROUP, Summary: "cgroup /kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope"}}}
		if owner != nil {
			in.Pod = &v1.ObjectRef{Kind: "Pod", Namespace: "kube-system", Name: k.impl + "-" + name}
			in.Container = k.impl
		}
		rec.Components = append(rec.Components, in)
	}
	return rec
}

func clusterRecord(c int) *v1.FleetCluster {
	return &v1.FleetCluster{Cluster: &v1.Cluster{Name: clusterName(c), Mode: v1.ClusterMode_CLUSTER_MODE_STATIC_POD, NodeCount: int32(*nodes / *clusters),
		KubernetesVersion: "v1.30.4", ApiConnected: true}, Publisher: fmt.Sprintf("aggregator-%03d", c), PublishedAt: timestamppb.Now()}
}

func key(c, n int) string { return clusterName(c) + ".node." + nodeName(n) }

type loadRun struct {
	kv      jetstream.KeyValue
	mu      sync.Mutex
	putAt   map[string]time.Time // instance id → when its changed node was put
	lags    []time.Duration
	gen     atomic.Int64
	perNode int
}

func run() error {
	if *aggBin == "" {
		return errors.New("-aggregator is required")
	}
	tmp, err := os.MkdirTemp("", "kubeatlas-fleet-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(tmp, "nats"),
		JetStreamMaxMemory: 16 << 30, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("NATS did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.DefaultBucket, History: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		return err
	}
	r := &loadRun{kv: kv, putAt: map[string]time.Time{}, perNode: *nodes / *clusters}

	// The publishers of every cluster put their nodes.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *clusters)
	for c := 0; c < *clusters; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.put(ctx, clusterName(c)+".cluster", clusterRecord(c)); err != nil {
				errs <- err
				return
			}
			for n := c * r.perNode; n < (c+1)*r.perNode; n++ {
				if err := r.put(ctx, key(c, n), nodeRecord(clusterName(c), n, 0)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	total := r.perNode * *clusters
	fmt.Printf("published %d clusters, %d nodes, %d instances in %v\n", *clusters, total, total**instances, time.Since(start).Round(time.Millisecond))
	// Clusters keep heartbeating, as their aggregators do.
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				for c := 0; c < *clusters; c++ {
					_ = r.put(hctx, clusterName(c)+".cluster", clusterRecord(c))
				}
			}
		}
	}()

	// An empty fleet view catches up.
	addr, metrics := "127.0.0.1:"+strconv.Itoa(freePort()), "127.0.0.1:"+strconv.Itoa(freePort())
	cmd := exec.Command(*aggBin, append([]string{"--insecure", "--listen", addr, "--metrics-addr", metrics, "--fleet-from", ns.ClientURL(),
		"--fleet-name", "fleet-view", "--log-level", "warn", "--profiling"}, strings.Fields(*viewFlags)...)...)
	cmd.Stderr = os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var peak atomic.Uint64
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go sampleHeap(sctx, "http://"+metrics, &peak)
	if err := waitReady("http://"+metrics+"/readyz", 10*time.Minute); err != nil {
		return err
	}
	catchUp := time.Since(began)
	fmt.Printf("fleet: catch-up %v\n", catchUp.Round(time.Millisecond))
	if *heapProf != "" {
		if err := saveHeap("http://"+metrics, *heapProf); err != nil {
			return err
		}
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	inv := v1.NewInventoryServiceClient(conn)

	// Steady state: 1% of nodes change every interval, spread over it; a
	// watcher times each change, and `where etcd` is asked meanwhile.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	if err := r.watchLag(wctx, inv); err != nil {
		return err
	}
	// The lag watcher has just decoded the whole state: this process
	// collects that garbage now, not during the minute that measures the
	// steady state.
	runtime.GC()
	if *allocProf != "" {
		if err := saveProfile("http://"+metrics+"/debug/pprof/allocs", *allocProf+".steady.base"); err != nil {
			return err
		}
	}
	before := readMetrics("http://"+metrics, steadyMetrics...)
	cpu0, steal0 := cpuTicks()
	stop := time.Now().Add(*steady)
	churnDone := make(chan struct{})
	go func() { defer close(churnDone); r.churn(ctx, stop) }()
	// `where etcd` is asked by a client in a process of its own, as a
	// user's would be: not among this process's NATS server and publishers.
	whereLat, err := runProbe(ctx, addr, time.Until(stop))
	if err != nil {
		return err
	}
	<-churnDone
	after := readMetrics("http://"+metrics, steadyMetrics...)
	cpu1, steal1 := cpuTicks()
	if *allocProf != "" {
		if err := saveProfile("http://"+metrics+"/debug/pprof/allocs", *allocProf+".steady"); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	slices.Sort(whereLat)
	over := len(whereLat) - sort.Search(len(whereLat), func(i int) bool { return whereLat[i] > 10*time.Millisecond })
	how := ""
	if *undecoded {
		how = ", undecoded"
	}
	fmt.Printf("fleet: where etcd p50 %v, p99 %v (%d answers%s, %d over 10ms, max %v)\n", pct(whereLat, 50).Round(10*time.Microsecond),
		pct(whereLat, 99).Round(10*time.Microsecond), len(whereLat), how, over, whereLat[len(whereLat)-1].Round(10*time.Microsecond))
	r.mu.Lock()
	lags := slices.Clone(r.lags)
	r.mu.Unlock()
	slices.Sort(lags)
	live, liveAlloc := liveHeap("http://" + metrics)
	fmt.Printf("fleet: heap peak %.0f MiB (%.0f bytes per component instance; live after a collection %.0f MiB, %.0f bytes, of which objects %.0f MiB, %.0f bytes)\n",
		float64(peak.Load())/(1<<20), float64(peak.Load())/float64(total**instances), float64(live)/(1<<20), float64(live)/float64(total**instances),
		float64(liveAlloc)/(1<<20), float64(liveAlloc)/float64(total**instances))
	fmt.Printf("fleet: publish lag p99 %v (p50 %v, %d changes)\n", pct(lags, 99).Round(time.Millisecond), pct(lags, 50).Round(time.Millisecond), len(lags))
	delta := func(name string) float64 { return after[name] - before[name] }
	if recs := delta("kubeatlas_fleet_records_applied_total"); recs > 0 {
		fmt.Printf("  steady state: %.0f records in %.0f transactions, %.1f KB allocated a record, %.0f collections\n", recs,
			delta("kubeatlas_fleet_transactions_total"), delta("go_memstats_alloc_bytes_total")/recs/1000, delta("go_gc_duration_seconds_count"))
	}
	if cpu1 > cpu0 {
		// Time the hypervisor gave this machine's CPUs to others: on a
		// shared host it stretches every latency above.
		fmt.Printf("  steady state: %.1f%% of CPU time stolen by the host\n", 100*float64(steal1-steal0)/float64(cpu1-cpu0))
	}
	wcancel()

	// Ingest with and without fleet-wide watchers: a burst of node updates
	// until the last is in the view.
	// Each side is measured over several bursts, and compared by medians:
	// one burst on two shared cores varies by a third from one to the next.
	without, err := r.bursts(ctx, inv, cmd.Process.Pid, nil, 0)
	if err != nil {
		return err
	}
	wctx2, wcancel2 := context.WithCancel(ctx)
	var received, synced atomic.Int64
	var wconns []*grpc.ClientConn
	defer func() {
		for _, c := range wconns {
			_ = c.Close()
		}
	}()
	for range *watchers {
		// Each watcher is a client of its own on a connection of its own.
		// It takes events off the wire without decoding them: the clients
		// share the machine with the fleet view, and what is measured is
		// the view's cost, not that of 100 decoders.
		wc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			wcancel2()
			return err
		}
		wconns = append(wconns, wc)
		st, err := v1.NewInventoryServiceClient(wc).Watch(wctx2, &v1.WatchRequest{MaxBatch: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC},
			grpc.ForceCodecV2(load.RawWatchCodec{}), grpc.MaxCallRecvMsgSize(8<<20))
		if err != nil {
			wcancel2()
			return err
		}
		go func() {
			for {
				var m load.RawWatchMessage
				if err := st.RecvMsg(&m); err != nil {
					return
				}
				if m.Type == v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED {
					synced.Add(1)
				}
				received.Add(int64(max(m.Events, 1)))
			}
		}()
	}
	// The watchers take in the current state first; the burst measures
	// what following changes costs.
	for deadline := time.Now().Add(10 * time.Minute); synced.Load() < int64(*watchers); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			wcancel2()
			return fmt.Errorf("only %d of %d watchers synced", synced.Load(), *watchers)
		}
	}
	received.Store(0)
	var profiled chan error
	if *cpuProf != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- saveProfile("http://"+metrics+"/debug/pprof/profile?seconds=6", *cpuProf) }()
	}
	if *allocProf != "" {
		if err := saveProfile("http://"+metrics+"/debug/pprof/allocs", *allocProf+".base"); err != nil {
			wcancel2()
			return err
		}
	}
	// Each burst with watchers ends when every watcher has had all of it:
	// the next burst then starts from the same quiet view as one without.
	with, err := r.bursts(ctx, inv, cmd.Process.Pid, &received, int64(*watchers)*int64(*burst)*int64(*instances))
	if profiled != nil {
		if perr := <-profiled; perr != nil && err == nil {
			err = perr
		}
	}
	if *allocProf != "" && err == nil {
		err = saveProfile("http://"+metrics+"/debug/pprof/allocs", *allocProf)
	}
	wcancel2()
	if err != nil {
		return err
	}
	fmt.Printf("fleet: watchers %d, ingest slowdown %.0f%% (median of %d bursts of %d nodes: %v without, %v with; every watcher had a burst after %v, %d events a burst)\n", *watchers,
		100*(with.median.Seconds()-without.median.Seconds())/without.median.Seconds(), *nBursts, *burst,
		without.median.Round(time.Millisecond), with.median.Round(time.Millisecond), with.deliveredMedian.Round(time.Millisecond), with.events/int64(*nBursts))
	fmt.Printf("  bursts without: %s\n  bursts with:    %s\n", without, with)
	return nil
}

// burstRun is the bursts of one side of the slowdown figure.
type burstRun struct {
	took, viewCPU, selfCPU []time.Duration
	median                 time.Duration
	// With watchers: when every watcher had the burst, and the events
	// they took in all.
	delivered       []time.Duration
	deliveredMedian time.Duration
	during          []float64 // the share of a burst's events delivered before the view had all of it
	events          int64
}

// String lists each burst's time and the CPU the fleet view and this
// process (NATS, publishers, watcher clients) spent in it.
func (b burstRun) String() string {
	var parts []string
	for i := range b.took {
		had := ""
		if i < len(b.delivered) {
			had = fmt.Sprintf(", watchers had %.0f%% of it by then and all after %v", 100*b.during[i], b.delivered[i].Round(time.Millisecond))
		}
		parts = append(parts, fmt.Sprintf("%v (CPU: view %v, this process %v%s)", b.took[i].Round(time.Millisecond),
			b.viewCPU[i].Round(10*time.Millisecond), b.selfCPU[i].Round(10*time.Millisecond), had))
	}
	return strings.Join(parts, ", ")
}

// bursts times *nBursts bursts, a second apart, and their median. With
// watchers (received counts the events they take in), a burst lasts until
// they have taken in at least want events, and its CPU counts all of it.
func (r *loadRun) bursts(ctx context.Context, inv v1.InventoryServiceClient, view int, received *atomic.Int64, want int64) (burstRun, error) {
	var b burstRun
	for i := range *nBursts {
		if i > 0 {
			time.Sleep(time.Second)
		}
		view0, self0 := cpuTime(view), cpuTime(os.Getpid())
		if received != nil {
			b.events += received.Swap(0)
		}
		start := time.Now()
		took, err := r.burstTime(ctx, inv)
		if err != nil {
			return b, err
		}
		if received != nil {
			b.during = append(b.during, float64(received.Load())/float64(want))
			for deadline := time.Now().Add(5 * time.Minute); received.Load() < want; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					return b, fmt.Errorf("the watchers took in %d of the burst's %d events", received.Load(), want)
				}
			}
			b.delivered = append(b.delivered, time.Since(start))
		}
		b.took = append(b.took, took)
		b.viewCPU = append(b.viewCPU, cpuTime(view)-view0)
		b.selfCPU = append(b.selfCPU, cpuTime(os.Getpid())-self0)
	}
	if received != nil {
		time.Sleep(time.Second) // the last burst's stragglers
		b.events += received.Swap(0)
		b.deliveredMedian = median(b.delivered)
	}
	b.median = median(b.took)
	return b, nil
}

func median(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return pct(sorted, 50)
}

func (r *loadRun) put(ctx context.Context, k string, rec proto.Message) error {
	data, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = r.kv.Put(pctx, k, data)
		cancel()
		if err == nil || attempt == 5 || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// churn changes 1% of the nodes every interval until stop, recording when
// each changed node was put.
func (r *loadRun) churn(ctx context.Context, stop time.Time) {
	total := r.perNode * *clusters
	per := max(total/100, 1)
	next := 0
	for time.Now().Before(stop) {
		gen := int(r.gen.Add(1))
		gap := *interval / time.Duration(per)
		for i := 0; i < per && time.Now().Before(stop); i++ {
			n := (next * 7919) % total
			next++
			c := n / r.perNode
			rec := nodeRecord(clusterName(c), n, gen)
			r.mu.Lock()
			r.putAt[clusterName(c)+"/"+rec.Components[len(rec.Components)-1].Id] = time.Now()
			r.mu.Unlock()
			_ = r.put(ctx, key(c, n), rec)
			time.Sleep(gap)
		}
	}
}

// watchLag follows component changes on the fleet view and times each from
// its put.
func (r *loadRun) watchLag(ctx context.Context, inv v1.InventoryServiceClient) error {
	st, err := inv.Watch(ctx, &v1.WatchRequest{SkipFindings: true, View: v1.ComponentView_COMPONENT_VIEW_BASIC, MaxBatch: 1000})
	if err != nil {
		return err
	}
	synced := make(chan struct{})
	go func() {
		once := sync.Once{}
		for {
			m, err := st.Recv()
			if err != nil {
				return
			}
			evs := m.Batch
			if len(evs) == 0 {
				evs = []*v1.WatchResponse{m}
			}
			now := time.Now()
			for _, e := range evs {
				if e.Type == v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED {
					once.Do(func() { close(synced) })
				}
				c := e.GetComponent()
				if e.Type != v1.WatchEventType_WATCH_EVENT_TYPE_MODIFIED || c == nil {
					continue
				}
				k := c.Cluster + "/" + c.Id
				r.mu.Lock()
				if at, ok := r.putAt[k]; ok {
					r.lags = append(r.lags, now.Sub(at))
					delete(r.putAt, k)
				}
				r.mu.Unlock()
			}
		}
	}()
	select {
	case <-synced:
		return nil
	case <-time.After(5 * time.Minute):
		return errors.New("the lag watcher never synced")
	}
}

// burstTime puts *burst node updates as fast as the publishers can and
// returns how long until the view shows the last of them.
func (r *loadRun) burstTime(ctx context.Context, inv v1.InventoryServiceClient) (time.Duration, error) {
	gen := int(r.gen.Add(1))
	total := r.perNode * *clusters
	start := time.Now()
	var wg sync.WaitGroup
	workers := min(*clusters, 32)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < *burst; i += workers {
				n := (i * 104729) % total
				c := n / r.perNode
				rec := nodeRecord(clusterName(c), n, gen)
				_ = r.put(ctx, key(c, n), rec)
			}
		}()
	}
	wg.Wait()
	// A marker node last: when it shows, the view has applied the burst
	// (a bucket is applied in order).
	c, n := 0, 0
	marker := nodeRecord(clusterName(c), n, gen+1_000_000)
	if err := r.put(ctx, key(c, n), marker); err != nil {
		return 0, err
	}
	want := marker.Components[1].RestartCount
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := inv.GetNode(ctx, &v1.GetNodeRequest{Cluster: clusterName(c), Name: nodeName(n)})
		if err == nil && len(resp.Components) > 1 && slices.ContainsFunc(resp.Components, func(in *v1.ComponentInstance) bool { return in.RestartCount == want }) {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, errors.New("the burst never reached the view")
}

// cpuTime returns a process's user and system CPU time so far, from
// /proc/<pid>/stat (0 if unreadable).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks of 1/100 s
}

// runProbe runs this program as a `where etcd` client in a process of its
// own for d and returns its latencies.
func runProbe(ctx context.Context, addr string, d time.Duration) ([]time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-probe", addr, "-probe-for", d.String(), "-probe-undecoded="+strconv.FormatBool(*undecoded))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("where etcd probe: %w", err)
	}
	var lat []time.Duration
	if err := json.Unmarshal(out, &lat); err != nil {
		return nil, fmt.Errorf("where etcd probe output: %w", err)
	}
	if len(lat) == 0 {
		return nil, errors.New("where etcd probe: no answers")
	}
	return lat, nil
}

// probeWhere asks `where etcd` (basic view, one page of up to 1,000) every
// 50 ms for d, decoding each answer as any client does (unless
// -probe-undecoded), and prints the latencies as JSON.
func probeWhere(addr string, d time.Duration) error {
	opts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(64 << 20)}
	if *undecoded {
		opts = append(opts, grpc.ForceCodecV2(undecodedCodec{}))
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(opts...))
	if err != nil {
		return err
	}
	defer conn.Close()
	inv := v1.NewInventoryServiceClient(conn)
	ctx := context.Background()
	var lat []time.Duration
	for stop := time.Now().Add(d); time.Now().Before(stop); time.Sleep(50 * time.Millisecond) {
		t0 := time.Now()
		resp, err := inv.ListComponents(ctx, &v1.ListComponentsRequest{Component: "etcd", PageSize: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC})
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		if len(resp.Components) == 0 && !*undecoded {
			return errors.New("where etcd: nothing")
		}
	}
	return json.NewEncoder(os.Stdout).Encode(lat)
}

// undecodedCodec encodes requests as protobuf and takes an answer's bytes
// in one buffer, as a decoder would, without decoding them.
type undecodedCodec struct{}

func (undecodedCodec) Name() string { return "proto" }

func (undecodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (undecodedCodec) Unmarshal(data mem.BufferSlice, _ any) error {
	if data.Len() == 0 {
		return errors.New("where etcd: nothing")
	}
	_ = data.Materialize()
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the fleet view never became ready")
}

// saveHeap writes the fleet view's heap profile (after a collection).
func saveHeap(base, path string) error { return saveProfile(base+"/debug/pprof/heap?gc=1", path) }

// saveProfile writes what a pprof endpoint of the fleet view answers to path.
func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// liveHeap forces a collection in the fleet view (its heap profile with
// gc=1) and reads the heap in use after it (go_memstats_heap_inuse_bytes:
// spans holding objects) and the bytes of its objects
// (go_memstats_heap_alloc_bytes).
func liveHeap(base string) (inuse, alloc uint64) {
	if resp, err := http.Get(base + "/debug/pprof/heap?gc=1"); err == nil {
		resp.Body.Close()
	}
	var v, a atomic.Uint64
	sampleOnce(base, &v)
	sampleMetric(base, "go_memstats_heap_alloc_bytes", &a)
	return v.Load(), a.Load()
}

// sampleHeap keeps the peak of the fleet view's go_memstats_heap_inuse_bytes.
func sampleHeap(ctx context.Context, base string, peak *atomic.Uint64) {
	for ctx.Err() == nil {
		sampleOnce(base, peak)
		time.Sleep(200 * time.Millisecond)
	}
}

// sampleOnce reads go_memstats_heap_inuse_bytes once and raises peak to it.
func sampleOnce(base string, peak *atomic.Uint64) {
	sampleMetric(base, "go_memstats_heap_inuse_bytes", peak)
}

// sampleMetric reads a gauge of the fleet view once and raises peak to it.
func sampleMetric(base, name string, peak *atomic.Uint64) {
	if v, ok := readMetrics(base, name)[name]; ok {
		if u := uint64(v); u > peak.Load() {
			peak.Store(u)
		}
	}
}

// steadyMetrics are what the steady state's line compares before and after.
var steadyMetrics = []string{"kubeatlas_fleet_records_applied_total", "kubeatlas_fleet_transactions_total",
	"go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count"}

// readMetrics reads samples without labels of the fleet view once.
func readMetrics(base string, names ...string) map[string]float64 {
	got := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return got
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			got[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	return got
}

// cpuTicks reads the machine's CPU time and the part of it stolen by the
// hypervisor from /proc/stat, in clock ticks (0, 0 where there is none).
func cpuTicks() (total, steal uint64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal; guest time, after
	// them, is counted in user time already.
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i == 7 {
			steal = n
		}
	}
	return total, steal
}
