package state

import (
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-memdb"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// newTestStore is a new, empty store.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCommitPublishesAndAbortDoesNot(t *testing.T) {
	s := newTestStore(t)
	sub := s.Broker().Subscribe()
	defer sub.Close()
	inst := &v1.ComponentInstance{Id: "n1/kubelet", Cluster: "c", Node: "n1", Component: v1.ComponentKubelet}

	// Aborted: nothing is stored, nothing is published.
	txn := s.WriteTxn()
	if err := putComponent(txn, NewComponent(inst)); err != nil {
		t.Fatal(err)
	}
	txn.Abort()
	if evs, _ := sub.Read(nil, 10); len(evs) != 0 {
		t.Fatalf("an aborted transaction published %d events", len(evs))
	}
	for range s.View().ComponentsOn(nil, "c", "n1") {
		t.Fatal("an aborted transaction stored a row")
	}

	// Committed: stored, published once, with the next sequence number.
	before := s.Broker().Last()
	txn = s.WriteTxn()
	defer txn.Abort() // after Commit, does nothing
	if err := putComponent(txn, NewComponent(inst)); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	evs, lagged := sub.Read(nil, 10)
	if lagged || len(evs) != 1 || evs[0].Type != v1.WatchEventType_WATCH_EVENT_TYPE_ADDED || evs[0].Component.Id != inst.Id {
		t.Fatalf("published %v (lagged %v)", evs, lagged)
	}
	if evs[0].Seq != before+1 || s.Broker().Last() != before+1 {
		t.Fatalf("event numbered %d (last %d), want %d", evs[0].Seq, s.Broker().Last(), before+1)
	}

	// A transaction that changes nothing publishes nothing.
	txn = s.WriteTxn()
	txn.Commit()
	if evs, _ := sub.Read(nil, 10); len(evs) != 0 || s.Broker().Last() != before+1 {
		t.Fatal("an empty transaction published")
	}

	// Deleting publishes DELETED.
	txn = s.WriteTxn()
	if err := deleteComponent(txn, NewComponent(inst)); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	if evs, _ := sub.Read(nil, 10); len(evs) != 1 || evs[0].Type != v1.WatchEventType_WATCH_EVENT_TYPE_DELETED {
		t.Fatalf("delete published %v", evs)
	}
}

// A view and its subscription are taken together: the view holds every change
// numbered up to its position, and the subscription every one after it.
func TestSubscribeSeesEveryChangeOnce(t *testing.T) {
	s := newTestStore(t)
	put := func(id string) {
		txn := s.WriteTxn()
		defer txn.Abort()
		if err := putComponent(txn, NewComponent(&v1.ComponentInstance{Id: id, Cluster: "c", Node: "n", Component: v1.ComponentKubelet})); err != nil {
			t.Error(err)
		}
		txn.Commit()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			put(fmt.Sprintf("n/k%03d", i))
		}
	}()
	view, sub, pos := s.Subscribe()
	defer sub.Close()
	seen := map[string]int{}
	for c := range view.Components(nil, ByCluster, "") {
		seen[c.Instance().Id]++
	}
	<-done
	evs, lagged := sub.Read(nil, 1000)
	if lagged {
		t.Fatal("lagged")
	}
	for i, ev := range evs {
		if ev.Seq != pos+1+uint64(i) {
			t.Fatalf("event %d numbered %d after a view at %d", i, ev.Seq, pos)
		}
		seen[ev.Component.Id]++
	}
	if len(seen) != 200 {
		t.Fatalf("saw %d of 200 components", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", id, n)
		}
	}
}

// putComponent writes one instance's row over the row of the same ID, if
// any.
func putComponent(t *Txn, c *Component) error {
	rows := slices.Collect(t.ComponentsOn(nil, c.Cluster, c.Node))
	_, err := t.ReplaceComponents(c.Cluster, c.Node, append(rows, c), func(_, _ *Component) bool { return false })
	return err
}

// deleteComponent removes the row of c's instance ID.
func deleteComponent(t *Txn, c *Component) error {
	var rows []*Component
	for r := range t.ComponentsOn(nil, c.Cluster, c.Node) {
		if r.InstanceID != c.InstanceID {
			rows = append(rows, r)
		}
	}
	_, err := t.ReplaceComponents(c.Cluster, c.Node, rows, func(a, b *Component) bool { return a == b })
	return err
}

// A cluster's nodes are exactly those whose cluster is that cluster, in ID
// order, even beside clusters whose names share its prefix, and a watch on
// them fires when one of them changes.
func TestNodesOfOneCluster(t *testing.T) {
	s := newTestStore(t)
	txn := s.WriteTxn()
	for _, c := range []string{"a", "a/b", "ab", "a-b", "b"} {
		for _, n := range []string{"n2", "n1", "b/n3"} {
			if err := txn.PutNode(&Node{ID: NodeID(c, n), Cluster: c, Name: n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn.Commit()
	for _, c := range []string{"a", "a/b", "ab", "b", "c", ""} {
		var got []string
		for n := range s.View().NodesOf(nil, c) {
			if n.Cluster != c {
				t.Fatalf("cluster %q: a node of %q", c, n.Cluster)
			}
			got = append(got, n.Name)
		}
		want := []string{"b/n3", "n1", "n2"}
		if c == "c" || c == "" {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Fatalf("cluster %q: %v, want %v", c, got, want)
		}
	}
	ws := memdb.NewWatchSet()
	for range s.View().NodesOf(ws, "a") {
	}
	txn = s.WriteTxn()
	if err := txn.PutNode(&Node{ID: NodeID("a", "n4"), Cluster: "a", Name: "n4"}); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	if ws.Watch(time.After(time.Second)) {
		t.Fatal("a new node of the cluster did not fire its watch")
	}
}

// A node's row of instances takes its ID from the node's row, so that the
// two hold one copy of it.
func TestNodeRowsShareTheirID(t *testing.T) {
	s := newTestStore(t)
	txn := s.WriteTxn()
	id := NodeID("c", "n")
	if err := txn.PutNode(&Node{ID: id, Cluster: "c", Name: "n"}); err != nil {
		t.Fatal(err)
	}
	for gen := range 2 {
		in := &v1.ComponentInstance{Id: "n/kubelet", Cluster: "c", Node: "n", Component: v1.ComponentKubelet, RestartCount: int32(gen)}
		if _, err := txn.ReplaceComponents("c", "n", []*Component{NewComponent(in)}, nil); err != nil {
			t.Fatal(err)
		}
		if got := txn.nodeComponents(nil, "c", "n").ID; got != id || unsafe.StringData(got) != unsafe.StringData(id) {
			t.Fatalf("the row of instances has its own ID %q", got)
		}
	}
	txn.Commit()
}
