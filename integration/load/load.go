// Package load drives a real aggregator with many simulated agents over
// loopback gRPC and measures it: ingest rate, ack latency, the aggregator's
// CPU and memory, query latency under load, and what Watch clients cost.
// Every run is bounded in streams and time and stops by itself.
package load

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/stream"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Config says how much load to make.
type Config struct {
	Server    string
	Clusters  int
	Nodes     int // in all
	Processes int // per node
	Interval  time.Duration
	Churn     float64 // share of processes replaced per interval
	Steady    time.Duration
	Conns     int // gRPC connections to spread the streams over
	Watchers  int
	// WatchView is the view the watchers ask for, WatchBatch the most
	// events per response.
	WatchView     v1.ComponentView
	WatchBatch    int
	AggregatorPID int
	// MetricsURL is the aggregator's metrics address (http://host:port); when
	// set, its heap is sampled during the run.
	MetricsURL string
	// ProfileDir, when set, receives CPU profiles of the full load and of the
	// steady state and a heap profile, from the aggregator's /debug/pprof.
	ProfileDir string
	// ProbeCommand, when set, runs the queries under load in a separate
	// process: the command is run with -probe ADDR -probe-for DURATION and
	// prints a ProbeResult as JSON.
	ProbeCommand []string
	// SlowQuery, when set, prints each where-etcd query slower than this.
	SlowQuery time.Duration
	// LoadProfile is how long the CPU profile of the full load runs (10 s if 0).
	LoadProfile time.Duration
}

// Report is what a run measured.
type Report struct {
	Nodes, Records             int
	FullLoad                   time.Duration
	IngestPerSecond            float64
	AckP50, AckP99             time.Duration
	LoadCPU                    time.Duration // the aggregator's, during the full load
	SteadyCPUCores             float64
	RSSBytes                   uint64
	HeapPeak, HeapLive         uint64 // heap in use: the most sampled, and after a forced GC at the end
	WhereP50, WhereP99         time.Duration
	EtcdP50, EtcdP99           time.Duration
	EtcdQueries                int
	ProbeProcess               bool  // queries came from a separate process
	SnapshotBytes, DeltaBytes  int64 // on the wire during load and per steady node-minute
	DeltaBytesPerNodeMinute    float64
	SnapshotBytesPerNodeMinute float64
	Watchers                   int
	WatchEvents, WatchBytes    int64
	WatchMessages              int64
	WatchResyncs               int64
}

// String prints the report.
func (r Report) String() string {
	return fmt.Sprintf(`nodes                 %d (%d process records)
full load             %v (%.0f records/s), aggregator CPU %v
ack latency           p50 %v, p99 %v
steady state CPU      %.2f cores (aggregator)
aggregator RSS        %.0f MiB
aggregator heap       peak %.0f MiB in use, live %.0f MiB after GC
where kube-proxy      p50 %v, p99 %v (all instances, basic view, pages of 1,000, under load)
where etcd            p50 %v, p99 %v (%d queries under load, %s)
wire, deltas          %.0f bytes per node-minute
wire, full snapshots  %.0f bytes per node-minute (if each interval sent a snapshot)
watchers              %d (%d events in %d messages, %.0f MiB received; %d resyncs)`,
		r.Nodes, r.Records, r.FullLoad.Round(time.Millisecond), r.IngestPerSecond, r.LoadCPU.Round(10*time.Millisecond), r.AckP50, r.AckP99,
		r.SteadyCPUCores, float64(r.RSSBytes)/(1<<20), float64(r.HeapPeak)/(1<<20), float64(r.HeapLive)/(1<<20), r.WhereP50, r.WhereP99, r.EtcdP50, r.EtcdP99, r.EtcdQueries, map[bool]string{true: "client in its own process", false: "client in the generator"}[r.ProbeProcess],
		r.DeltaBytesPerNodeMinute, r.SnapshotBytesPerNodeMinute, r.Watchers, r.WatchEvents, r.WatchMessages, float64(r.WatchBytes)/(1<<20), r.WatchResyncs)
}

type agent struct {
	cluster, node string
	procs         []*v1.Process
	st            v1.AgentService_ConnectClient
	gen           uint64
}

// run is one load run, taken in phases: dial, watch, full load, steady
// state, then the final measurements.
type run struct {
	cfg    Config
	rep    *Report
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*grpc.ClientConn // the agents' connections
	closes []func()           // every connection, closed at the end
	agents []*agent
	heap   func() uint64
	// The steady phase's context, window and bytes.
	steadyCtx                  context.Context
	stopSteady                 context.CancelFunc
	steadyStart                time.Time
	steadyCPU0                 time.Duration
	deltaBytes                 atomic.Int64
	steadyProfile, steadyTrace <-chan error
}

// Run drives the load and reports. It ends when the steady phase is over.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Conns == 0 {
		cfg.Conns = 32
	}
	if cfg.Clusters == 0 {
		cfg.Clusters = 1
	}
	r := &run{cfg: cfg, rep: &Report{Nodes: cfg.Nodes, Records: cfg.Nodes * cfg.Processes, Watchers: cfg.Watchers}}
	r.ctx, r.cancel = context.WithCancel(ctx)
	defer r.close()
	if err := r.dial(); err != nil {
		return nil, err
	}
	if err := r.startWatchers(); err != nil {
		return nil, err
	}
	r.heap = startHeapSampler(r.ctx, cfg.MetricsURL)
	if err := r.fullLoad(); err != nil {
		return nil, err
	}
	probe, err := r.steady()
	if err != nil {
		return nil, err
	}
	if err := r.measure(probe); err != nil {
		return nil, err
	}
	return r.rep, nil
}

// close ends every stream and goroutine of the run and closes its
// connections.
func (r *run) close() {
	for _, a := range r.agents {
		if a.st != nil {
			_ = a.st.CloseSend()
		}
	}
	if r.stopSteady != nil {
		r.stopSteady()
	}
	r.cancel()
	r.wg.Wait()
	for _, c := range r.closes {
		c()
	}
}

// newConn opens a connection that the run closes at its end.
func (r *run) newConn() (*grpc.ClientConn, error) {
	c, err := grpc.NewClient(r.cfg.Server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	r.closes = append(r.closes, func() { _ = c.Close() })
	return c, nil
}

// dial opens the connections the agents' streams are spread over.
func (r *run) dial() error {
	r.conns = make([]*grpc.ClientConn, r.cfg.Conns)
	for i := range r.conns {
		c, err := r.newConn()
		if err != nil {
			return err
		}
		r.conns[i] = c
	}
	return nil
}

// startWatchers starts the Watch clients, each on a connection of its own as
// separate programs would be, and returns once each has the state.
func (r *run) startWatchers() error {
	rep := r.rep
	for w := 0; w < r.cfg.Watchers; w++ {
		c, err := r.newConn()
		if err != nil {
			return err
		}
		r.wg.Add(1)
		synced := make(chan struct{})
		go func(synced chan struct{}) {
			defer r.wg.Done()
			defer func() {
				if synced != nil {
					close(synced)
				}
			}()
			// The watchers take events off the wire without decoding them:
			// they share the machine with the aggregator, and what is
			// measured is the aggregator's cost, not 100 clients' decoders.
			st, err := v1.NewInventoryServiceClient(c).Watch(r.ctx, &v1.WatchRequest{View: r.cfg.WatchView, MaxBatch: int32(r.cfg.WatchBatch)},
				grpc.ForceCodecV2(RawWatchCodec{}), grpc.MaxCallRecvMsgSize(8<<20))
			if err != nil {
				return
			}
			for {
				var m RawWatchMessage
				if err := st.RecvMsg(&m); err != nil {
					return
				}
				atomic.AddInt64(&rep.WatchEvents, int64(max(1, m.Events)))
				atomic.AddInt64(&rep.WatchMessages, 1)
				atomic.AddInt64(&rep.WatchBytes, int64(m.Size))
				switch m.Type {
				case v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED:
					if synced != nil {
						close(synced)
						synced = nil
					}
				case v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC:
					atomic.AddInt64(&rep.WatchResyncs, 1)
				}
			}
		}(synced)
		<-synced
	}
	return nil
}

// fullLoad has every agent say hello and send its snapshot, and measures
// how long the aggregator takes to ack them all.
func (r *run) fullLoad() error {
	cfg, rep := r.cfg, r.rep
	var loadProfile <-chan error
	if cfg.ProfileDir != "" {
		loadProfile = fetchProfile(r.ctx, cfg.MetricsURL, fmt.Sprintf("profile?seconds=%d", max(1, int(cfg.LoadProfile.Seconds()))), filepath.Join(cfg.ProfileDir, "cpu-load.pprof"))
	}
	loadCPU0 := cpuTime(cfg.AggregatorPID)
	r.agents = make([]*agent, cfg.Nodes)
	for i := range r.agents {
		c := i % cfg.Clusters
		r.agents[i] = &agent{cluster: fmt.Sprintf("cluster-%02d", c), node: fmt.Sprintf("node-%05d", i), procs: synth.SyntheticProcesses(cfg.Processes, i)}
	}
	var mu sync.Mutex
	var acks []time.Duration
	var snapBytes atomic.Int64
	start := time.Now()
	errs := make(chan error, len(r.agents))
	sem := make(chan struct{}, 256)
	for i, a := range r.agents {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			took, n, err := r.sendSnapshot(a, r.conns[i%len(r.conns)])
			snapBytes.Add(n)
			if err == nil {
				mu.Lock()
				acks = append(acks, took)
				mu.Unlock()
			}
			errs <- err
		}()
	}
	for range r.agents {
		if err := <-errs; err != nil {
			return err
		}
	}
	rep.FullLoad = time.Since(start)
	rep.LoadCPU = cpuTime(cfg.AggregatorPID) - loadCPU0
	if loadProfile != nil {
		if err := <-loadProfile; err != nil {
			return err
		}
	}
	rep.IngestPerSecond = float64(rep.Records) / rep.FullLoad.Seconds()
	rep.AckP50, rep.AckP99 = pct(acks, 50), pct(acks, 99)
	rep.SnapshotBytes = snapBytes.Load()
	return nil
}

// sendSnapshot opens a's stream on conn, says hello, sends its snapshot and
// waits for the ack. It returns how long the ack took and the bytes sent.
func (r *run) sendSnapshot(a *agent, conn *grpc.ClientConn) (time.Duration, int64, error) {
	st, err := v1.NewAgentServiceClient(conn).Connect(r.ctx)
	if err != nil {
		return 0, 0, err
	}
	a.st = st
	id := &v1.NodeIdentity{Cluster: a.cluster, NodeName: a.node, WallClock: timestamppb.Now()}
	if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: id,
		HeartbeatInterval: durationpb.New(r.cfg.Interval)}}}); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	var sent int64
	snap := a.gen + 1
	for _, ch := range stream.Chunks(&v1.NodeInventory{Identity: id, Processes: a.procs}, 0) {
		a.gen++
		ch.SnapshotGeneration = snap
		m := &v1.ConnectRequest{Generation: a.gen, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: ch}}
		sent += int64(proto.Size(m))
		if err := st.Send(m); err != nil {
			return 0, sent, err
		}
	}
	if err := waitAck(st, a.gen); err != nil {
		return 0, sent, fmt.Errorf("%s: %w", a.node, err)
	}
	return time.Since(t0), sent, nil
}

// steady runs the steady state: each interval every agent sends a delta
// (churn) or a heartbeat, while queries are asked under the load. It returns
// the queries' latencies once the phase is over.
func (r *run) steady() (*ProbeResult, error) {
	cfg := r.cfg
	if cfg.ProfileDir != "" {
		r.steadyTrace = fetchProfile(r.ctx, cfg.MetricsURL, "trace?seconds=5", filepath.Join(cfg.ProfileDir, "steady.trace"))
		r.steadyProfile = fetchProfile(r.ctx, cfg.MetricsURL, fmt.Sprintf("profile?seconds=%d", max(1, int(cfg.Steady.Seconds())-2)), filepath.Join(cfg.ProfileDir, "cpu-steady.pprof"))
	}
	r.steadyCPU0 = cpuTime(cfg.AggregatorPID)
	r.steadyStart = time.Now()
	r.steadyCtx, r.stopSteady = context.WithTimeout(r.ctx, cfg.Steady)
	for i, a := range r.agents {
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			r.churn(a, uint64(i))
		}()
		// Acks of deltas are read and dropped.
		go func() {
			defer r.wg.Done()
			for {
				if _, err := a.st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	// Queries under load, from a process of their own when one is given,
	// as an operator's client would be: the generator's thousands of
	// goroutines would otherwise delay the client's own reads.
	r.rep.ProbeProcess = len(cfg.ProbeCommand) > 0
	if r.rep.ProbeProcess {
		dl, _ := r.steadyCtx.Deadline()
		probe, err := runProbe(r.ctx, cfg.ProbeCommand, cfg.Server, time.Until(dl))
		<-r.steadyCtx.Done()
		return probe, err
	}
	qconn, err := r.newConn()
	if err != nil {
		return nil, err
	}
	probe := Probe(r.steadyCtx, qconn, cfg.SlowQuery)
	<-r.steadyCtx.Done()
	return probe, nil
}

// churn sends a's deltas or heartbeats every interval until the steady phase
// ends, starting at a random offset in the interval.
func (r *run) churn(a *agent, seed uint64) {
	cfg := r.cfg
	// Each agent its own seed, so that their offsets and churn differ.
	rng := rand.New(rand.NewPCG(seed, a.gen))
	// Spread the agents over the interval: the ticker starts after each
	// agent's own offset, so they stay spread.
	select {
	case <-time.After(time.Duration(rng.Int64N(int64(cfg.Interval)))):
	case <-r.steadyCtx.Done():
		return
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		n := int(float64(len(a.procs)) * cfg.Churn)
		var m *v1.ConnectRequest
		if n > 0 {
			d := &v1.Delta{WallClock: timestamppb.Now()}
			// Distinct processes: replacing one twice in a delta would
			// upsert a process the same delta removes.
			picked := make(map[int]bool, n)
			for j := 0; j < n; j++ {
				k := 5 + rng.IntN(len(a.procs)-5)
				if picked[k] {
					continue
				}
				picked[k] = true
				old := a.procs[k]
				d.RemovedProcesses = append(d.RemovedProcesses, &v1.ProcessKey{Pid: old.Pid, StartTime: old.StartTime})
				nw := proto.Clone(old).(*v1.Process)
				nw.Pid += 100000
				nw.StartTime = timestamppb.Now()
				a.procs[k] = nw
				d.UpsertedProcesses = append(d.UpsertedProcesses, nw)
			}
			a.gen++
			m = &v1.ConnectRequest{Generation: a.gen, Payload: &v1.ConnectRequest_Delta{Delta: d}}
		} else {
			m = &v1.ConnectRequest{Generation: a.gen, Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{WallClock: timestamppb.Now()}}}
		}
		r.deltaBytes.Add(int64(proto.Size(m)))
		if err := a.st.Send(m); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-r.steadyCtx.Done():
			return
		}
	}
}

// measure takes the figures of the end of the run: the steady state's CPU,
// the aggregator's memory, the profiles, the queries and the bytes.
func (r *run) measure(probe *ProbeResult) error {
	cfg, rep := r.cfg, r.rep
	elapsed := time.Since(r.steadyStart)
	rep.SteadyCPUCores = (cpuTime(cfg.AggregatorPID) - r.steadyCPU0).Seconds() / elapsed.Seconds()
	rep.RSSBytes = rss(cfg.AggregatorPID)
	for _, ch := range []<-chan error{r.steadyProfile, r.steadyTrace} {
		if ch == nil {
			continue
		}
		if err := <-ch; err != nil {
			return err
		}
	}
	rep.HeapPeak = r.heap()
	if cfg.MetricsURL != "" {
		// A heap profile with gc=1 collects first, so the heap in use after it is the live heap.
		path := os.DevNull
		if cfg.ProfileDir != "" {
			path = filepath.Join(cfg.ProfileDir, "heap.pprof")
		}
		if err := <-fetchProfile(r.ctx, cfg.MetricsURL, "heap?gc=1", path); err != nil {
			return err
		}
		if v, err := heapInUse(r.ctx, cfg.MetricsURL); err == nil {
			rep.HeapLive = v
		}
	}
	rep.WhereP50, rep.WhereP99 = pct(probe.KubeProxy, 50), pct(probe.KubeProxy, 99)
	rep.EtcdP50, rep.EtcdP99 = pct(probe.Etcd, 50), pct(probe.Etcd, 99)
	rep.EtcdQueries = len(probe.Etcd)
	rep.DeltaBytes = r.deltaBytes.Load()
	rep.DeltaBytesPerNodeMinute = float64(rep.DeltaBytes) / float64(cfg.Nodes) / elapsed.Minutes()
	rep.SnapshotBytesPerNodeMinute = float64(rep.SnapshotBytes) / float64(cfg.Nodes) * (time.Minute.Seconds() / cfg.Interval.Seconds())
	return nil
}

// ProbeResult holds query latencies measured under load.
type ProbeResult struct {
	Etcd, KubeProxy []time.Duration
}

// Probe asks `where etcd` (10 instances in a 10,000-node fleet) every 50 ms
// and `where kube-proxy` (every node: 10 pages of 1,000) every 500 ms until
// ctx ends, and returns how long each answer took. Queries slower than slow
// are printed to stderr with the time, when slow is set.
func Probe(ctx context.Context, conn *grpc.ClientConn, slow time.Duration) *ProbeResult {
	inv := v1.NewInventoryServiceClient(conn)
	where := func(component string) (time.Duration, error) {
		t := time.Now()
		_, err := Where(ctx, inv, component)
		return time.Since(t), err
	}
	res := &ProbeResult{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if d, err := where("etcd"); err == nil {
			res.Etcd = append(res.Etcd, d)
			if slow > 0 && d > slow {
				fmt.Fprintf(os.Stderr, "%s slow where etcd: %v\n", time.Now().Format("15:04:05.000"), d.Round(time.Millisecond))
			}
		}
		if i%10 == 5 {
			if d, err := where("kube-proxy"); err == nil {
				res.KubeProxy = append(res.KubeProxy, d)
			}
		}
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
	}
}

// Where asks where a component runs, as the CLI's table does (basic view,
// pages of 1,000), and returns how many instances the answer has.
func Where(ctx context.Context, inv v1.InventoryServiceClient, component string) (int, error) {
	req := &v1.ListComponentsRequest{Component: component, PageSize: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC}
	n := 0
	for {
		resp, err := inv.ListComponents(ctx, req)
		if err != nil {
			return n, err
		}
		n += len(resp.Components)
		if resp.NextPageToken == "" {
			return n, nil
		}
		req.PageToken = resp.NextPageToken
	}
}

// runProbe runs the probe command and reads its result.
func runProbe(ctx context.Context, command []string, server string, d time.Duration) (*ProbeResult, error) {
	cmd := exec.CommandContext(ctx, command[0], append(command[1:], "-probe", server, "-probe-for", d.String())...)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("query probe: %w", err)
	}
	res := &ProbeResult{}
	if err := json.Unmarshal(out, res); err != nil {
		return nil, fmt.Errorf("query probe output: %w", err)
	}
	return res, nil
}

// startHeapSampler reads the aggregator's heap in use once a second until ctx
// ends; the returned function gives the most it saw.
func startHeapSampler(ctx context.Context, metricsURL string) func() uint64 {
	var peak atomic.Uint64
	if metricsURL == "" {
		return peak.Load
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if v, err := heapInUse(ctx, metricsURL); err == nil && v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return peak.Load
}

// heapInUse reads go_memstats_heap_inuse_bytes from the aggregator's /metrics.
func heapInUse(ctx context.Context, metricsURL string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return uint64(f), err
		}
	}
	return 0, errors.New("no go_memstats_heap_inuse_bytes in /metrics")
}

// fetchProfile saves /debug/pprof/<what> to path in the background.
func fetchProfile(ctx context.Context, metricsURL, what, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL+"/debug/pprof/"+what, nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- fmt.Errorf("profile %s: %w", what, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile %s: %s (is the aggregator running with --profiling?)", what, resp.Status)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return done
}

// RawWatchMessage is a WatchResponse left undecoded: only its size, its type
// and how many events its batch holds are read. Watch clients that share
// the machine with the server they measure receive into it, so that what is
// measured is the server's cost, not that of their decoders.
type RawWatchMessage struct {
	Size, Events int
	Type         v1.WatchEventType
}

// RawWatchCodec receives messages without decoding them (see
// RawWatchMessage); pass it with grpc.ForceCodecV2.
type RawWatchCodec struct{}

func (RawWatchCodec) Name() string { return "proto" }

func (RawWatchCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (RawWatchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*RawWatchMessage)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	m.Size = data.Len()
	// Walk the top-level fields in place, without copying the message.
	r := data.Reader()
	defer r.Close()
	for r.Remaining() > 0 {
		tag, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		skip := 0
		switch typ {
		case protowire.VarintType:
			v, err := binary.ReadUvarint(r)
			if err != nil {
				return err
			}
			if num == 1 {
				m.Type = v1.WatchEventType(v)
			}
		case protowire.BytesType:
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return err
			}
			if num == 4 {
				m.Events++
			}
			skip = int(n)
		case protowire.Fixed32Type:
			skip = 4
		case protowire.Fixed64Type:
			skip = 8
		default:
			return fmt.Errorf("watch response: field %d has wire type %d", num, typ)
		}
		if n, err := r.Discard(skip); err != nil || n != skip {
			return fmt.Errorf("watch response: field %d cut short", num)
		}
	}
	return nil
}

func waitAck(st v1.AgentService_ConnectClient, gen uint64) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return err
		}
		if a := m.GetAck(); a != nil && a.Generation >= gen {
			return nil
		}
		if r := m.GetResync(); r != nil {
			return errors.New("resync asked: " + r.Reason)
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond)
}

// cpuTime reads a process's user+system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss reads a process's resident memory from /proc/<pid>/status.
func rss(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
