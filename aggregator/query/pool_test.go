package query

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// poisonPool counts what it lends and gets back, and overwrites each
// buffer it gets back, so that any use of a buffer after its return shows
// in what a watcher receives.
type poisonPool struct {
	mem.BufferPool
	gets, puts atomic.Int64
}

func (p *poisonPool) Get(n int) *[]byte {
	p.gets.Add(1)
	return p.BufferPool.Get(n)
}

func (p *poisonPool) Put(b *[]byte) {
	p.puts.Add(1)
	full := (*b)[:cap(*b)]
	for i := range full {
		full[i] = 0xee
	}
	p.BufferPool.Put(b)
}

// poison puts a poisonPool in place of *pool until the test ends.
func poison(t *testing.T, pool *mem.BufferPool) *poisonPool {
	p := &poisonPool{BufferPool: *pool}
	*pool = p
	t.Cleanup(func() { *pool = p.BufferPool })
	return p
}

// serve serves s over gRPC on loopback until the test ends, and returns its
// address. Its end waits for the handlers, which read the pools, before any
// pool poison put in place earlier is taken away.
func serve(t *testing.T, s *Server) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(Codec{}), grpc.WaitForHandlers(true))
	v1.RegisterInventoryServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// A watcher's own events go out in pooled buffers that grpc returns once it
// has written them: over a real connection, every batch arrives intact, in
// both views and with rows encoded and decoded, and every buffer lent goes
// back to the pool.
func TestWatchLendsItsBuffersToGRPC(t *testing.T) {
	e := synth.NewApplier()
	if err := synth.LoadFleet(e, 2, 300, 5); err != nil {
		t.Fatal(err)
	}
	s := copyStore(t, NewServer(e.Store()), true)
	s.RunHold = 0
	pool := poison(t, &ownPool)
	addr := serve(t, s)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inv := v1.NewInventoryServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Per view, a watcher of single events, and batched ones beside it.
	type watcher struct {
		view   v1.ComponentView
		single bool
		events chan *v1.WatchResponse
	}
	var ws []*watcher
	for _, view := range []v1.ComponentView{v1.ComponentView_COMPONENT_VIEW_FULL, v1.ComponentView_COMPONENT_VIEW_BASIC} {
		for i := range 4 {
			w := &watcher{view: view, single: i == 0, events: make(chan *v1.WatchResponse, 1<<16)}
			req := &v1.WatchRequest{View: view, MaxBatch: 1000}
			if w.single {
				req.MaxBatch = 0
			}
			st, err := inv.Watch(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				defer close(w.events)
				for {
					m, err := st.Recv()
					if err != nil {
						return
					}
					for _, ev := range flatten([]*v1.WatchResponse{m}) {
						w.events <- ev
					}
				}
			}()
			ws = append(ws, w)
		}
	}
	// read takes a watcher's events until the one that satisfies last.
	read := func(w *watcher, last func(*v1.WatchResponse) bool) []*v1.WatchResponse {
		var got []*v1.WatchResponse
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-w.events:
				if !ok {
					t.Fatalf("watch ended after %d events", len(got))
				}
				got = append(got, ev)
				if last(ev) {
					return got
				}
			case <-timeout:
				t.Fatalf("only %d events, the last %v", len(got), got[len(got)-1])
			}
		}
	}
	synced := func(ev *v1.WatchResponse) bool { return ev.Type == v1.WatchEventType_WATCH_EVENT_TYPE_SYNCED }
	compare := func(what string, got map[*watcher][]*v1.WatchResponse) {
		t.Helper()
		for _, w := range ws {
			var ref *watcher
			for _, r := range ws {
				if r.single && r.view == w.view {
					ref = r
				}
			}
			a, b := got[w], got[ref]
			if len(a) != len(b) {
				t.Fatalf("%s, %v: %d events, single events %d", what, w.view, len(a), len(b))
			}
			for i := range a {
				if !proto.Equal(a[i], b[i]) {
					t.Fatalf("%s, %v: event %d:\n got %v\nwant %v", what, w.view, i, a[i], b[i])
				}
			}
		}
	}
	state0 := map[*watcher][]*v1.WatchResponse{}
	for _, w := range ws {
		state0[w] = read(w, synced)
	}
	if n := len(state0[ws[0]]); n < 1000 {
		t.Fatalf("a state of %d events is too small to fill batches", n)
	}
	compare("state", state0)

	// Changes a few at a time, which watchers copy into their own buffers.
	view := s.store.View()
	var nodes [][2]string
	for n := range view.Nodes(nil, "") {
		nodes = append(nodes, [2]string{n.Cluster, n.Name})
	}
	for i, n := range nodes[:20] {
		var rows []*state.Component
		for c := range view.ComponentsOn(nil, n[0], n[1]) {
			in := proto.CloneOf(c.Instance())
			in.RestartCount = int32(i + 1)
			rows = append(rows, state.NewComponent(in))
		}
		txn := s.store.WriteTxn()
		if _, err := txn.ReplaceComponents(n[0], n[1], rows, func(a, b *state.Component) bool { return proto.Equal(a.Instance(), b.Instance()) }); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
	}
	last, lastInstances := nodes[19], 0
	for range view.ComponentsOn(nil, nodes[19][0], nodes[19][1]) {
		lastInstances++
	}
	changes := map[*watcher][]*v1.WatchResponse{}
	for _, w := range ws {
		seen := 0
		changes[w] = read(w, func(ev *v1.WatchResponse) bool {
			if c := ev.GetComponent(); c != nil && c.Cluster == last[0] && c.Node == last[1] {
				seen++
			}
			return seen == lastInstances
		})
	}
	compare("changes", changes)

	// Every buffer lent comes back once grpc has written it.
	deadline := time.Now().Add(10 * time.Second)
	for pool.gets.Load() != pool.puts.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pool.gets.Load() == 0 || pool.gets.Load() != pool.puts.Load() {
		t.Fatalf("lent %d buffers, got back %d", pool.gets.Load(), pool.puts.Load())
	}
	cancel()
	for _, w := range ws {
		for range w.events {
		}
	}
}

// An answer of kept encodings goes out in a lent buffer that grpc returns
// once written: over a real connection, answers asked by several clients at
// once arrive exactly as the in-process answers, and every buffer lent comes
// back. An answer never marshalled (an in-process caller's) is forgotten
// once it is collected.
func TestListAnswersLendTheirBuffers(t *testing.T) {
	e := synth.NewApplier()
	if err := synth.LoadFleet(e, 2, 300, 5); err != nil {
		t.Fatal(err)
	}
	s := copyStore(t, NewServer(e.Store()), true)
	ctx := context.Background()
	reqs := []*v1.ListComponentsRequest{
		{PageSize: 1000}, {PageSize: 1000, View: v1.ComponentView_COMPONENT_VIEW_BASIC},
		{Component: "kube-proxy", PageSize: 100}, {Cluster: "cluster-01", PageSize: 50, View: v1.ComponentView_COMPONENT_VIEW_BASIC},
		{Implementation: "flannel"}, {Node: "node-00007"},
	}
	want := make([][]*v1.ComponentInstance, len(reqs))
	lends := 0 // over the rounds below
	for i, req := range reqs {
		resp, err := s.ListComponents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ProtoReflect().GetUnknown()) > 0 {
			lends += 4 * 30 / len(reqs)
		}
		if want[i], err = ComponentsOf(resp); err != nil || len(want[i]) == 0 {
			t.Fatalf("%v: %d instances, %v", req, len(want[i]), err)
		}
	}
	pool := poison(t, &answerPool)
	addr := serve(t, s)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			inv := v1.NewInventoryServiceClient(conn)
			for round := range 30 {
				i := round % len(reqs)
				resp, err := inv.ListComponents(ctx, reqs[i])
				if err != nil {
					errs <- err
					return
				}
				if len(resp.Components) != len(want[i]) {
					errs <- fmt.Errorf("%v: %d instances, want %d", reqs[i], len(resp.Components), len(want[i]))
					return
				}
				for j := range want[i] {
					if !proto.Equal(resp.Components[j], want[i][j]) {
						errs <- fmt.Errorf("%v: instance %d:\n got %v\nwant %v", reqs[i], j, resp.Components[j], want[i][j])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pool.gets.Load() != pool.puts.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pool.gets.Load() != int64(lends) || pool.puts.Load() != int64(lends) {
		t.Fatalf("lent %d buffers, got back %d; want %d", pool.gets.Load(), pool.puts.Load(), lends)
	}

	// In process: the answers keep their instances, and are forgotten once
	// collected.
	for range 20 {
		resp, err := s.ListComponents(ctx, reqs[0])
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ComponentsOf(resp); err != nil || len(got) != len(want[0]) {
			t.Fatalf("in process: %d instances, %v", len(got), err)
		}
	}
	lent := func() int {
		n := 0
		lentAnswers.Range(func(any, any) bool { n++; return true })
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); lent() > 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runtime.GC()
	}
	if n := lent(); n > 0 {
		t.Fatalf("%d answers never marshalled are still held", n)
	}
}
