package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// copyStore is a store holding the seed cluster's instances as a fleet
// view holds them: encoded, as their aggregator published them; with mixed,
// every other node keeps its instances decoded.
func copyStore(t *testing.T, src *Server, mixed bool) *Server {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	e := apply.New(st, apply.Config{})
	view := src.store.View()
	i := 0
	for n := range view.Nodes(nil, "") {
		rec := &v1.FleetNode{Node: &v1.Node{Cluster: n.Cluster, Name: n.Name}}
		var raw [][]byte
		for c := range view.ComponentsOn(nil, n.Cluster, n.Name) {
			b, err := proto.Marshal(c.Instance())
			if err != nil {
				t.Fatal(err)
			}
			var in v1.ComponentInstance
			if err := proto.Unmarshal(b, &in); err != nil {
				t.Fatal(err)
			}
			rec.Components = append(rec.Components, &in)
			raw = append(raw, b)
		}
		if mixed && i%2 == 1 {
			txn := st.WriteTxn()
			var rows []*state.Component
			for _, in := range rec.Components {
				rows = append(rows, state.NewComponent(in))
			}
			if err := txn.PutNode(&state.Node{ID: state.NodeID(n.Cluster, n.Name), Cluster: n.Cluster, Name: n.Name, Published: rec.Node}); err != nil {
				t.Fatal(err)
			}
			if _, err := txn.ReplaceComponents(n.Cluster, n.Name, rows, nil); err != nil {
				t.Fatal(err)
			}
			txn.Commit()
		} else if err := e.PutFleetNode(n.Cluster, rec); err != nil {
			t.Fatal(err)
		}
		i++
	}
	return NewServer(st)
}

// Rows that keep their instance encoded answer every query, in every view
// and through every filter, exactly as rows that hold it decoded.
func TestEncodedRowsAnswerAsDecodedOnes(t *testing.T) {
	decoded, _ := seed(t)
	for _, mixed := range []bool{false, true} {
		t.Run(fmt.Sprintf("mixed=%v", mixed), func(t *testing.T) { encodedAnswersAsDecoded(t, decoded, copyStore(t, decoded, mixed)) })
	}
}

func encodedAnswersAsDecoded(t *testing.T, decoded, encoded *Server) {
	ctx := context.Background()
	same := func(what string, a, b proto.Message) {
		t.Helper()
		if !proto.Equal(a, b) {
			t.Fatalf("%s:\ndecoded %v\nencoded %v", what, a, b)
		}
	}
	views := []v1.ComponentView{v1.ComponentView_COMPONENT_VIEW_UNSPECIFIED, v1.ComponentView_COMPONENT_VIEW_BASIC, v1.ComponentView_COMPONENT_VIEW_FULL}
	for _, view := range views {
		for _, req := range []*v1.ListComponentsRequest{
			{}, {Component: "etcd"}, {Cluster: "seed", Component: "kube-proxy"}, {Node: "test"}, {PageSize: 3},
			{Filter: `"etcd-servers" in component.flags`}, {How: v1.DeploymentKind_DEPLOYMENT_KIND_STATIC_POD},
		} {
			req.View = view
			for page := 0; ; page++ {
				a, err := decoded.ListComponents(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := encoded.ListComponents(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Components) == 0 {
					t.Fatalf("%v: nothing", req)
				}
				// What a client receives: the same instances.
				ai, err := ComponentsOf(a)
				if err != nil {
					t.Fatal(err)
				}
				bi, err := ComponentsOf(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(ai) != len(bi) || a.NextPageToken != b.NextPageToken {
					t.Fatalf("%v, page %d: %d instances decoded, %d encoded", req, page, len(ai), len(bi))
				}
				for i := range ai {
					same(fmt.Sprintf("%v, page %d, instance %d", req, page, i), ai[i], bi[i])
				}
				if a.NextPageToken == "" {
					break
				}
				req.PageToken = a.NextPageToken
			}
		}
	}
	a, err := decoded.GetNode(ctx, &v1.GetNodeRequest{Cluster: "seed", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := encoded.GetNode(ctx, &v1.GetNodeRequest{Cluster: "seed", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Components {
		same("GetNode", a.Components[i], b.Components[i])
	}
	for _, view := range views {
		for _, req := range []*v1.WatchRequest{
			{SkipFindings: true}, {SkipFindings: true, MaxBatch: 5}, {SkipFindings: true, MaxBatch: 100, Cluster: "seed"},
			{SkipFindings: true, MaxBatch: 100, Component: "kube-proxy"}, {SkipFindings: true, MaxBatch: 100, Cluster: "other"},
			{SkipFindings: true, MaxBatch: 100, Filter: `component.how == "DEPLOYMENT_KIND_STATIC_POD"`},
		} {
			req.View = view
			got := map[string][]*v1.WatchResponse{}
			for name, s := range map[string]*Server{"decoded": decoded, "encoded": encoded} {
				msgs, _, stop := watchUntil(t, s, req, v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED)
				stop()
				got[name] = flatten(msgs)
			}
			a, b := got["decoded"], got["encoded"]
			if len(a) != len(b) || (req.Cluster != "other" && len(a) < 2) {
				t.Fatalf("%v: %d events decoded, %d encoded", req, len(a), len(b))
			}
			for i := range a {
				a[i].Index, b[i].Index = 0, 0 // each store numbers its own
				same(fmt.Sprintf("%v, event %d", req, i), a[i], b[i])
			}
		}
	}
}

// Watchers of every event take whole runs of events as one part encoded
// once for all of them, and receive exactly what a watcher of single
// events does, in every view and with either kind skipped.
func TestWatchSharesRunsOfEvents(t *testing.T) {
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reqs := []*v1.WatchRequest{
		{}, {MaxBatch: 1000}, {MaxBatch: 1000}, {MaxBatch: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC},
		{MaxBatch: 1000, SkipFindings: true}, {MaxBatch: 300, SkipComponents: true}, {MaxBatch: 100},
	}
	streams := make([]*watchStream, len(reqs))
	done := make(chan error, len(reqs))
	for i, req := range reqs {
		streams[i] = &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 100000)}
		go func() { done <- s.Watch(req, streams[i]) }()
	}
	for st.Broker().Subscribers() != len(reqs) {
		time.Sleep(time.Millisecond)
	}
	before := runsSent.Load()
	// Enough changes for several whole runs, findings among them.
	for gen := range 3 {
		for n := range 60 {
			txn := st.WriteTxn()
			node := fmt.Sprintf("n%02d", n)
			var rows []*state.Component
			for i := range 20 {
				rows = append(rows, state.NewComponent(&v1.ComponentInstance{Cluster: "c", Node: node, Component: v1.ComponentKubelet,
					Id: fmt.Sprintf("%s/%d", node, i), RestartCount: int32(gen), Flags: []*v1.Flag{{Name: "v", Values: []string{"2"}}}}))
			}
			if _, err := txn.ReplaceComponents("c", node, rows, func(a, b *state.Component) bool { return proto.Equal(a.Instance(), b.Instance()) }); err != nil {
				t.Fatal(err)
			}
			if err := txn.PutFinding(state.NewFinding(&v1.Finding{Cluster: "c", Node: node, Id: fmt.Sprintf("%s/f", node), Summary: fmt.Sprint(gen)})); err != nil {
				t.Fatal(err)
			}
			txn.Commit()
		}
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	got := make([][]*v1.WatchResponse, len(reqs))
	for range reqs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i, ws := range streams {
		var ms []*v1.WatchResponse
		for len(ws.sent) > 0 {
			ms = append(ms, <-ws.sent)
		}
		for _, m := range ms {
			if len(m.Batch) > int(max(reqs[i].MaxBatch, 1)) {
				t.Fatalf("watcher %d: a batch of %d events, max %d", i, len(m.Batch), reqs[i].MaxBatch)
			}
		}
		got[i] = flatten(ms)[1:] // after SYNCED
	}
	if len(got[0]) != 3*60*21 {
		t.Fatalf("%d events, want %d", len(got[0]), 3*60*21)
	}
	for i, req := range reqs[1:] {
		var want []*v1.WatchResponse
		for _, ev := range got[0] {
			if (ev.GetComponent() != nil && req.SkipComponents) || (ev.GetFinding() != nil && req.SkipFindings) {
				continue
			}
			if c := ev.GetComponent(); c != nil && req.View == v1.ComponentView_COMPONENT_VIEW_BASIC {
				ev = proto.CloneOf(ev)
				ev.GetComponent().Flags = nil
			}
			want = append(want, ev)
		}
		if len(got[i+1]) != len(want) {
			t.Fatalf("watcher %v: %d events, want %d", req, len(got[i+1]), len(want))
		}
		for j := range want {
			if !proto.Equal(got[i+1][j], want[j]) {
				t.Fatalf("watcher %v: event %d:\n got %v\nwant %v", req, j, got[i+1][j], want[j])
			}
		}
	}
	if runsSent.Load() == before {
		t.Fatal("no run of events was shared")
	}
}

// A watcher of every event holds back the start of a run until the run is
// whole, so that changes committed a few at a time still go out as shared
// runs, and sends what it held once RunHold has passed.
// commitInstances commits n kubelet instances on a node of cluster c, in
// one transaction: n events.
func commitInstances(t *testing.T, st *state.Store, node string, n int) {
	t.Helper()
	var rows []*state.Component
	for i := range n {
		rows = append(rows, state.NewComponent(&v1.ComponentInstance{Cluster: "c", Node: node, Component: v1.ComponentKubelet,
			Id: fmt.Sprintf("%s/%d", node, i)}))
	}
	txn := st.WriteTxn()
	if _, err := txn.ReplaceComponents("c", node, rows, func(a, b *state.Component) bool { return false }); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
}

func TestWatchHoldsBackARunUntilItIsWhole(t *testing.T) {
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Two servers on one store: one holds back for an hour, one briefly.
	long, brief := NewServer(st), NewServer(st)
	long.RunHold, brief.RunHold = time.Hour, 5*time.Millisecond
	type watcher struct {
		ws   *watchStream
		seen int // events received after SYNCED
	}
	ws := []*watcher{{ws: &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 10000)}},
		{ws: &watchStream{ctx: ctx, sent: make(chan *v1.WatchResponse, 10000)}}}
	done := make(chan error, 2)
	go func() { done <- long.Watch(&v1.WatchRequest{MaxBatch: 1000}, ws[0].ws) }()
	go func() { done <- brief.Watch(&v1.WatchRequest{MaxBatch: 1000}, ws[1].ws) }()
	// receive counts each watcher's events until it has want, or fails.
	receive := func(w *watcher, want int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for w.seen < want {
			select {
			case m := <-w.ws.sent:
				for _, ev := range flatten([]*v1.WatchResponse{m}) {
					if ev.GetComponent() != nil {
						w.seen++
					}
				}
			case <-deadline:
				t.Fatalf("%d events of %d", w.seen, want)
			}
		}
	}
	for st.Broker().Subscribers() != 2 {
		time.Sleep(time.Millisecond)
	}
	commits := 0
	commit := func(n int) {
		t.Helper()
		commits++
		commitInstances(t, st, fmt.Sprintf("n%d", commits), n)
	}
	// Up to a run's start: sent at once, by both.
	total := int(state.GroupEvents - (st.Broker().Last()+1)%state.GroupEvents)
	commit(total)
	receive(ws[0], total)
	receive(ws[1], total)
	// A run committed in two parts goes out whole, one shared part.
	before := runsSent.Load()
	commit(100)
	receive(ws[1], total+100) // the brief hold sends the first part alone
	time.Sleep(50 * time.Millisecond)
	if ws[0].seen != total || len(ws[0].ws.sent) != 0 {
		t.Fatal("the start of a run went out before the run was whole")
	}
	commit(state.GroupEvents - 100)
	total += state.GroupEvents
	receive(ws[0], total)
	receive(ws[1], total)
	if got := runsSent.Load() - before; got != 1 {
		t.Fatalf("%d shared runs sent, want 1", got)
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// An instance its aggregator encoded otherwise than protobuf would (here a
// field twice, which decodes as its last) is sent as it was published and
// sized as it is sent, whichever read sizes it first: a filter that decodes
// it, or a list that sends it as it is.
func TestEncodedRowsAreSizedAsSent(t *testing.T) {
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	in := &v1.ComponentInstance{Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: "n/kubelet", Version: "v1.30.0",
		How: v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS, Flags: []*v1.Flag{{Name: "v", Values: []string{"2"}}}}
	raw, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	raw = protowire.AppendString(protowire.AppendTag(raw, 14, protowire.BytesType), "v1.31.0") // version again
	want := proto.CloneOf(in)
	want.Version = "v1.31.0"
	b := apply.New(st, apply.Config{}).FleetBatch()
	if err := b.PutNode("c", &v1.Node{Cluster: "c", Name: "n"}, [][]byte{raw}, nil); err != nil {
		t.Fatal(err)
	}
	b.Commit()
	s := NewServer(st)
	for _, view := range []v1.ComponentView{v1.ComponentView_COMPONENT_VIEW_FULL, v1.ComponentView_COMPONENT_VIEW_BASIC} {
		for _, req := range []*v1.ListComponentsRequest{{How: v1.DeploymentKind_DEPLOYMENT_KIND_HOST_PROCESS}, {}, {Filter: `component.version == "v1.31.0"`}} {
			req.View = view
			resp, err := s.ListComponents(context.Background(), req)
			if err != nil {
				t.Fatalf("%v: %v", req, err)
			}
			got, err := ComponentsOf(resp)
			if err != nil || len(got) != 1 {
				t.Fatalf("%v: %v, %v", req, got, err)
			}
			if view == v1.ComponentView_COMPONENT_VIEW_BASIC {
				want := proto.CloneOf(want)
				want.Flags = nil
				if !proto.Equal(got[0], want) {
					t.Fatalf("%v: %v", req, got[0])
				}
			} else if !proto.Equal(got[0], want) {
				t.Fatalf("%v: %v", req, got[0])
			}
		}
	}
}
