package query

import (
	"context"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func seed(t testing.TB) (*Server, *apply.Applier) {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(st, apply.Config{})
	if _, err := bundle.Load(e, "../../examples/seed-cluster"); err != nil {
		t.Fatal(err)
	}
	return NewServer(st), e
}

func TestGetAndList(t *testing.T) {
	s, _ := seed(t)
	ctx := context.Background()
	cl, err := s.GetCluster(ctx, &v1.GetClusterRequest{Name: "seed"})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Cluster.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD || cl.Cluster.NodeCount != 6 || cl.Cluster.ReportingNodeCount != 6 ||
		cl.Cluster.FindingCount != 8 || cl.Cluster.KubernetesVersion != "v1.27.0" || cl.Cluster.Uid == "" || len(cl.Cluster.ModeEvidence) == 0 {
		t.Errorf("cluster: %v", cl.Cluster)
	}
	for _, tt := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"GetCluster empty", func() error { _, err := s.GetCluster(ctx, &v1.GetClusterRequest{}); return err }(), codes.InvalidArgument},
		{"GetCluster missing", func() error { _, err := s.GetCluster(ctx, &v1.GetClusterRequest{Name: "nope"}); return err }(), codes.NotFound},
		{"GetNode missing", func() error { _, err := s.GetNode(ctx, &v1.GetNodeRequest{Name: "nope"}); return err }(), codes.NotFound},
		{"bad token", func() error { _, err := s.ListNodes(ctx, &v1.ListNodesRequest{PageToken: "garbage"}); return err }(), codes.InvalidArgument},
		{"negative page", func() error { _, err := s.ListComponents(ctx, &v1.ListComponentsRequest{PageSize: -1}); return err }(), codes.InvalidArgument},
		{"unknown component", func() error {
			_, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-nonsense"})
			return err
		}(), codes.InvalidArgument},
	} {
		if status.Code(tt.err) != tt.code {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.code)
		}
	}
	n, err := s.GetNode(ctx, &v1.GetNodeRequest{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Components) != 11 || n.Node.ProcessCount == 0 || n.Node.ManifestCount != 4 || n.Node.Roles[0] != "control-plane" {
		t.Errorf("node test: %d components, %v", len(n.Components), n.Node)
	}
	where, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(where.Components) != 6 {
		t.Errorf("kube-proxy instances: %d", len(where.Components))
	}
	for _, in := range where.Components {
		if in.How != v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET || !in.HasProcess || in.Pid == 0 {
			t.Errorf("kube-proxy instance %v", in)
		}
	}
	flannel, _ := s.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: "seed", Implementation: "flannel", How: v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET})
	if len(flannel.Components) != 6 {
		t.Errorf("flannel: %d", len(flannel.Components))
	}
	procs, _ := s.ListProcesses(ctx, &v1.ListProcessesRequest{Cluster: "seed", Node: "test", Component: "etcd"})
	if len(procs.Processes) != 1 || procs.Processes[0].Process.Pid != 1326 {
		t.Errorf("etcd process: %v", procs.Processes)
	}
	mans, _ := s.ListManifests(ctx, &v1.ListManifestsRequest{Cluster: "seed"})
	if len(mans.Manifests) != 4 {
		t.Fatalf("manifests: %d", len(mans.Manifests))
	}
	for _, m := range mans.Manifests {
		if m.MirrorPod == "" || len(m.Pids) != 1 {
			t.Errorf("manifest %s: mirror %q pids %v", m.Manifest.Path, m.MirrorPod, m.Pids)
		}
	}
	fs, _ := s.ListFindings(ctx, &v1.ListFindingsRequest{Kind: v1.FindingKind_FINDING_KIND_CLOCK_SKEW})
	if len(fs.Findings) != 5 {
		t.Errorf("clock skew findings: %d", len(fs.Findings))
	}
}

// TestPagingIsStableAndComplete pages with every size and checks each
// listing comes back whole, in order, without repeats.
func TestPagingIsStableAndComplete(t *testing.T) {
	s, _ := seed(t)
	ctx := context.Background()
	all, _ := s.ListComponents(ctx, &v1.ListComponentsRequest{PageSize: 1000})
	allProcs, _ := s.ListProcesses(ctx, &v1.ListProcessesRequest{PageSize: 1000})
	allFindings, _ := s.ListFindings(ctx, &v1.ListFindingsRequest{PageSize: 1000})
	for size := int32(1); size <= 7; size++ {
		var ids []string
		req := &v1.ListComponentsRequest{PageSize: size}
		for {
			resp, err := s.ListComponents(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range resp.Components {
				ids = append(ids, c.Id)
			}
			if resp.NextPageToken == "" {
				break
			}
			req.PageToken = resp.NextPageToken
		}
		if len(ids) != len(all.Components) {
			t.Fatalf("page size %d: %d components, want %d", size, len(ids), len(all.Components))
		}
		for i := range ids {
			if ids[i] != all.Components[i].Id {
				t.Fatalf("page size %d: order differs at %d", size, i)
			}
		}
		n := 0
		preq := &v1.ListProcessesRequest{PageSize: size * 10}
		for {
			resp, err := s.ListProcesses(ctx, preq)
			if err != nil {
				t.Fatal(err)
			}
			n += len(resp.Processes)
			if resp.NextPageToken == "" {
				break
			}
			preq.PageToken = resp.NextPageToken
		}
		if n != len(allProcs.Processes) {
			t.Fatalf("page size %d: %d processes, want %d", size*10, n, len(allProcs.Processes))
		}
		n = 0
		freq := &v1.ListFindingsRequest{PageSize: size}
		for {
			resp, err := s.ListFindings(ctx, freq)
			if err != nil {
				t.Fatal(err)
			}
			n += len(resp.Findings)
			if resp.NextPageToken == "" {
				break
			}
			freq.PageToken = resp.NextPageToken
		}
		if n != len(allFindings.Findings) {
			t.Fatalf("page size %d: %d findings, want %d", size, n, len(allFindings.Findings))
		}
	}
}

// watchStream is an in-memory Watch stream.
type watchStream struct {
	ctx  context.Context
	sent chan *v1.WatchResponse
}

func (w *watchStream) Send(m *v1.WatchResponse) error {
	select {
	case w.sent <- m:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}
func (w *watchStream) Context() context.Context     { return w.ctx }
func (w *watchStream) SetHeader(metadata.MD) error  { return nil }
func (w *watchStream) SendHeader(metadata.MD) error { return nil }
func (w *watchStream) SetTrailer(metadata.MD)       {}

// SendMsg puts m through the server's codec and back, as the wire would.
func (w *watchStream) SendMsg(m any) error {
	data, err := Codec{}.Marshal(m)
	if err != nil {
		return err
	}
	defer data.Free() // as grpc does once it has written them
	resp := &v1.WatchResponse{}
	if err := proto.Unmarshal(data.Materialize(), resp); err != nil {
		return err
	}
	return w.Send(resp)
}
func (w *watchStream) RecvMsg(any) error { return nil }

func TestWatchSendsStateThenChanges(t *testing.T) {
	s, e := seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	ws := &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 1000)}
	done := make(chan error, 1)
	go func() { done <- s.Watch(&v1.WatchRequest{Cluster: "seed", SkipFindings: true}, ws) }()
	added := 0
	for m := range ws.sent {
		if m.Type == v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED {
			break
		}
		if m.Type != v1.WatchEventType_WATCH_EVENT_TYPE_ADDED || m.GetComponent() == nil {
			t.Fatalf("unexpected event before SYNCED: %v", m)
		}
		added++
	}
	if added != 36 {
		t.Errorf("initial state: %d components", added)
	}
	// A DaemonSet pod goes away: its instance changes.
	if err := e.DeletePod("seed", "kube-system", "kube-proxy-xgvz8"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ws.sent:
		if m.GetComponent().GetNode() != "zzk-1" {
			t.Errorf("change event %v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change event")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSlowWatcherGetsResync(t *testing.T) {
	s, e := seed(t)
	s.store.Broker().SetHistory(4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws := &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse)} // nobody reads yet
	done := make(chan error, 1)
	go func() { done <- s.Watch(&v1.WatchRequest{SkipFindings: true}, ws) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.store.Broker().Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	// Ingest goes on while the watcher is stuck.
	start := time.Now()
	for i := 0; i < 50; i++ {
		if err := e.Heartbeat("seed", "zzk-1", time.Now().Add(time.Duration(i%2)*time.Hour), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("ingest was held up by a slow watcher")
	}
	sawResync := false
	timeout := time.After(10 * time.Second)
	for !sawResync {
		select {
		case m := <-ws.sent:
			sawResync = m.Type == v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC
		case <-timeout:
			t.Fatal("no RESYNC marker")
		}
	}
	if s.store.Broker().Dropped() == 0 {
		t.Error("dropped counter not moved")
	}
	cancel()
	<-done
}

// watchUntil runs a Watch and returns what it sent up to and including the
// first response of type until, then the channel of what follows and a stop.
func watchUntil(t *testing.T, s *Server, req *v1.WatchRequest, until v1.WatchEventType) ([]*v1.WatchResponse, chan *v1.WatchResponse, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ws := &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 1000)}
	done := make(chan error, 1)
	go func() { done <- s.Watch(req, ws) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	var got []*v1.WatchResponse
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-ws.sent:
			got = append(got, m)
			if m.Type == until {
				return got, ws.sent, stop
			}
		case <-timeout:
			stop()
			t.Fatalf("no %v in %d responses", until, len(got))
		}
	}
}

func TestWatchResumesAfterItsIndex(t *testing.T) {
	s, e := seed(t)
	req := &v1.WatchRequest{Cluster: "seed", SkipFindings: true}
	state, _, stop := watchUntil(t, s, req, v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED)
	stop()
	synced := state[len(state)-1].Index
	if synced == 0 {
		t.Fatal("SYNCED carries no index")
	}
	// The watcher is away while the cluster changes.
	if err := e.DeletePod("seed", "kube-system", "kube-proxy-xgvz8"); err != nil {
		t.Fatal(err)
	}

	// Resuming at SYNCED's index sends RESUMED, then only the change.
	req.ResumeIndex = synced
	got, sent, stop := watchUntil(t, s, req, v1.WatchEventType_WATCH_EVENT_TYPE_RESUMED)
	if len(got) != 1 || got[0].Index != synced {
		t.Fatalf("resuming sent %v first", got)
	}
	var changes []*v1.WatchResponse
	for quiet := false; !quiet; {
		select {
		case m := <-sent:
			changes = append(changes, m)
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	stop()
	if len(changes) == 0 {
		t.Fatal("no change after RESUMED")
	}
	last := synced
	for i, c := range changes {
		if c.GetComponent().GetNode() != "zzk-1" || c.Index <= last {
			t.Fatalf("change %d: %v, after index %d", i, c, last)
		}
		last = c.Index
	}
	change := changes[len(changes)-1]

	// Resuming at the change's own index sends nothing more.
	req.ResumeIndex = change.Index
	_, sent, stop = watchUntil(t, s, req, v1.WatchEventType_WATCH_EVENT_TYPE_RESUMED)
	select {
	case m := <-sent:
		t.Fatalf("resumed at the newest change and got %v", m)
	case <-time.After(100 * time.Millisecond):
	}
	stop()

	// An index the aggregator cannot resume at (another process's, or let
	// go) gets RESYNC, the whole state, then SYNCED.
	for _, idx := range []uint64{1, change.Index + 1000} {
		req.ResumeIndex = idx
		got, _, stop := watchUntil(t, s, req, v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED)
		stop()
		if got[0].Type != v1.WatchEventType_WATCH_EVENT_TYPE_RESYNC || len(got) != len(state)+1 {
			t.Fatalf("resume at %d: first %v, %d responses, want RESYNC and %d", idx, got[0].Type, len(got), len(state)+1)
		}
		// Findings changed too, unseen by this watcher: SYNCED is at the
		// newest change of all.
		if got[len(got)-1].Index != s.store.Broker().Last() {
			t.Fatalf("SYNCED at %d, want %d", got[len(got)-1].Index, s.store.Broker().Last())
		}
	}
}

// BenchmarkWhereKubeProxy answers `where kube-proxy` (ListComponents for one
// component, pages of 1,000) over a fleet of 10,000 nodes in 10 clusters and
// reports the server-side p99 of one page and of the whole answer.
func BenchmarkWhereKubeProxy(b *testing.B) {
	e := synth.NewApplier()
	if err := synth.LoadFleet(e, 10, 1000, 300); err != nil {
		b.Fatal(err)
	}
	s := NewServer(e.Store())
	ctx := context.Background()
	// The first query after instances change computes their sizes for the
	// pager (cached on the rows); measure the queries after it.
	if _, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-proxy", PageSize: 1000}); err != nil {
		b.Fatal(err)
	}
	warm := &v1.ListComponentsRequest{Component: "kube-proxy", PageSize: 1000}
	for {
		resp, err := s.ListComponents(ctx, warm)
		if err != nil {
			b.Fatal(err)
		}
		if resp.NextPageToken == "" {
			break
		}
		warm.PageToken = resp.NextPageToken
	}
	var pages, whole []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := &v1.ListComponentsRequest{Component: "kube-proxy", PageSize: 1000}
		t0 := time.Now()
		n := 0
		for {
			t := time.Now()
			resp, err := s.ListComponents(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			pages = append(pages, time.Since(t))
			n += len(resp.Components)
			if resp.NextPageToken == "" {
				break
			}
			req.PageToken = resp.NextPageToken
		}
		whole = append(whole, time.Since(t0))
		if n != 10000 {
			b.Fatalf("%d instances", n)
		}
	}
	p99 := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(p99(pages), "page-p99-ms")
	b.ReportMetric(p99(whole), "all-10k-p99-ms")
}

func TestViews(t *testing.T) {
	s, _ := seed(t)
	ctx := context.Background()
	full, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-apiserver"})
	if err != nil {
		t.Fatal(err)
	}
	basic, err := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-apiserver", View: v1.ComponentView_COMPONENT_VIEW_BASIC})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Components) == 0 || len(full.Components) != len(basic.Components) {
		t.Fatalf("full %d instances, basic %d", len(full.Components), len(basic.Components))
	}
	for i, in := range full.Components {
		if len(in.Evidence) == 0 || len(in.Flags) == 0 {
			t.Fatalf("full view of %s lacks evidence or flags", in.Id)
		}
		b := basic.Components[i]
		if len(b.Evidence) != 0 || len(b.Flags) != 0 {
			t.Fatalf("basic view of %s carries evidence or flags", b.Id)
		}
		// Apart from flags and evidence the views agree.
		want := proto.Clone(in).(*v1.ComponentInstance)
		want.Flags, want.Evidence = nil, nil
		if !proto.Equal(want, b) {
			t.Fatalf("basic view differs:\n%v\n%v", want, b)
		}
	}
	// The stored instance is untouched by the basic view.
	again, _ := s.ListComponents(ctx, &v1.ListComponentsRequest{Component: "kube-apiserver"})
	if !proto.Equal(again, full) {
		t.Fatal("the basic view changed the stored instances")
	}
	if _, err := s.ListComponents(ctx, &v1.ListComponentsRequest{View: 7}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown view: %v", err)
	}
	ws := &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 1)}
	if err := s.Watch(&v1.WatchRequest{View: 7}, ws); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("watch with unknown view: %v", err)
	}
}

// Watchers asking for different views of one change each get their view, and
// the change is encoded once per view, not once per watcher.
func TestWatchEncodesOncePerView(t *testing.T) {
	s, e := seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	views := []v1.ComponentView{v1.ComponentView_COMPONENT_VIEW_BASIC, v1.ComponentView_COMPONENT_VIEW_FULL, v1.ComponentView_COMPONENT_VIEW_FULL}
	streams := make([]*watchStream, len(views))
	done := make(chan error, len(views))
	for i, v := range views {
		streams[i] = &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 1000)}
		go func() {
			done <- s.Watch(&v1.WatchRequest{Cluster: "seed", Component: "kube-proxy", SkipFindings: true, View: v}, streams[i])
		}()
		for m := range streams[i].sent {
			if m.Type == v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED {
				break
			}
		}
	}
	for s.store.Broker().Subscribers() != len(views) {
		time.Sleep(time.Millisecond)
	}
	if err := e.DeletePod("seed", "kube-system", "kube-proxy-xgvz8"); err != nil {
		t.Fatal(err)
	}
	for i, ws := range streams {
		select {
		case m := <-ws.sent:
			c := m.GetComponent()
			if c.GetNode() != "zzk-1" {
				t.Fatalf("watcher %d: change event %v", i, m)
			}
			if hasEvidence := len(c.Evidence) > 0; hasEvidence != (views[i] == v1.ComponentView_COMPONENT_VIEW_FULL) {
				t.Errorf("watcher %d (%v): evidence %d", i, views[i], len(c.Evidence))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watcher %d: no change event", i)
		}
	}
	cancel()
	for range views {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEncodeEventOnce(t *testing.T) {
	b := state.NewBroker()
	sub := b.Subscribe()
	defer sub.Close()
	in := &v1.ComponentInstance{Cluster: "c", Node: "n", Component: "kube-proxy", Evidence: []*v1.Evidence{{Summary: "x"}}}
	b.Publish([]state.Event{{Type: v1.WatchEventType_WATCH_EVENT_TYPE_ADDED, Component: in}})
	<-sub.Ready
	evs, lagged := sub.Read(nil, 10)
	if lagged || len(evs) != 1 {
		t.Fatalf("read %d events, lagged %v", len(evs), lagged)
	}
	ev := evs[0]
	first, second := encodeEvent(ev, v1.ComponentView_COMPONENT_VIEW_FULL), encodeEvent(ev, v1.ComponentView_COMPONENT_VIEW_FULL)
	if first != second {
		t.Fatal("a published event was encoded twice for the same view")
	}
	basic := encodeEvent(ev, v1.ComponentView_COMPONENT_VIEW_BASIC)
	if basic == first || len(basic.wire) >= len(first.wire) {
		t.Fatalf("basic form %d bytes, full %d", len(basic.wire), len(first.wire))
	}
	// Under a codec that does not know the wire form the message is still the response.
	var _ proto.Message = first
	if got, _ := proto.Marshal(first); !proto.Equal(first.message(), mustUnmarshal(t, got)) {
		t.Fatal("fallback encoding differs")
	}
}

func mustUnmarshal(t *testing.T, b []byte) *v1.WatchResponse {
	t.Helper()
	m := &v1.WatchResponse{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// flatten turns a watcher's responses into single events.
func flatten(ms []*v1.WatchResponse) []*v1.WatchResponse {
	var out []*v1.WatchResponse
	for _, m := range ms {
		if len(m.Batch) > 0 {
			if m.Type != v1.WatchEventType_WATCH_EVENT_TYPE_UNSPECIFIED || m.Object != nil {
				panic("a batch with its own event")
			}
			out = append(out, m.Batch...)
			continue
		}
		out = append(out, m)
	}
	return out
}

// A batching watcher receives exactly the events of a watcher that asked for
// one event per response, in the same order, in fewer responses.
func TestWatchBatches(t *testing.T) {
	s, e := seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := []int32{0, 7, 5000}
	streams := make([]*watchStream, len(batches))
	done := make(chan error, len(batches))
	for i, b := range batches {
		streams[i] = &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 10000)}
		go func() { done <- s.Watch(&v1.WatchRequest{MaxBatch: b}, streams[i]) }()
	}
	for s.store.Broker().Subscribers() != len(batches) {
		time.Sleep(time.Millisecond)
	}
	// Changes in one commit and in several.
	for _, pod := range []string{"kube-proxy-xgvz8", "kube-flannel-ds-9nvcd", "coredns-7db6d8ff4d-8lxkq"} {
		_ = e.DeletePod("seed", "kube-system", pod)
	}
	if err := e.Heartbeat("seed", "zzk-1", time.Now().Add(time.Hour), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Let every watcher take in the changes, then compare.
	time.Sleep(300 * time.Millisecond)
	cancel()
	var got [][]*v1.WatchResponse
	var responses []int
	for i, ws := range streams {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var ms []*v1.WatchResponse
		for len(ws.sent) > 0 {
			ms = append(ms, <-ws.sent)
		}
		for _, m := range ms {
			if len(m.Batch) > int(max(batches[i], 1)) {
				t.Fatalf("watcher %d: a batch of %d events, max %d", i, len(m.Batch), batches[i])
			}
		}
		responses = append(responses, len(ms))
		got = append(got, flatten(ms))
	}
	if len(got[0]) < 40 {
		t.Fatalf("only %d events", len(got[0]))
	}
	for i := 1; i < len(got); i++ {
		if len(got[i]) != len(got[0]) {
			t.Fatalf("max_batch %d: %d events, unbatched %d", batches[i], len(got[i]), len(got[0]))
		}
		for j := range got[0] {
			if !proto.Equal(got[i][j], got[0][j]) {
				t.Fatalf("max_batch %d: event %d differs:\n%v\n%v", batches[i], j, got[i][j], got[0][j])
			}
		}
		if responses[i] >= responses[0] {
			t.Errorf("max_batch %d: %d responses, unbatched %d", batches[i], responses[i], responses[0])
		}
	}
}

// BenchmarkFilter answers selective questions over 10,000 nodes in 10
// clusters (40,000 instances) three ways: with the typed fields, with the
// same question as a CEL filter the server pushes down to the index, and
// with a filter evaluated on every instance.
func BenchmarkFilter(b *testing.B) {
	e := synth.NewApplier()
	if err := synth.LoadFleet(e, 10, 1000, 300); err != nil {
		b.Fatal(err)
	}
	s := NewServer(e.Store())
	ctx := context.Background()
	all := func(b *testing.B, req *v1.ListComponentsRequest, want int) {
		b.Helper()
		n := 0
		for {
			resp, err := s.ListComponents(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			n += len(resp.Components)
			if resp.NextPageToken == "" {
				break
			}
			req.PageToken = resp.NextPageToken
		}
		if n != want {
			b.Fatalf("%d instances, want %d", n, want)
		}
	}
	for _, bc := range []struct {
		name string
		req  func() *v1.ListComponentsRequest
		want int
	}{
		{"typed/cluster+component", func() *v1.ListComponentsRequest {
			return &v1.ListComponentsRequest{Cluster: "cluster-03", Component: "kubelet", PageSize: 1000}
		}, 1000},
		{"filter-pushed/cluster+component", func() *v1.ListComponentsRequest {
			return &v1.ListComponentsRequest{Filter: `component.cluster == "cluster-03" && component.component == "kubelet"`, PageSize: 1000}
		}, 1000},
		{"filter-pushed+rest/cluster+component+node", func() *v1.ListComponentsRequest {
			return &v1.ListComponentsRequest{Filter: `component.cluster == "cluster-03" && component.component == "kubelet" && component.node.endsWith("7")`, PageSize: 1000}
		}, 100},
		{"filter-every-row/implementation", func() *v1.ListComponentsRequest {
			return &v1.ListComponentsRequest{Filter: `component.implementation.startsWith("flan") && component.cluster == "cluster-03" || component.node == "x"`, PageSize: 1000}
		}, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			all(b, bc.req(), bc.want) // warms the size cache
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				all(b, bc.req(), bc.want)
			}
		})
	}
}
