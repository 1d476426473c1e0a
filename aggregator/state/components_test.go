package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// model is what the store should hold: instances by "<cluster>/<node>/<id>".
type model map[string]*v1.ComponentInstance

func clusterKey(in *v1.ComponentInstance) string {
	return ComponentKeyPrefix(in.Cluster, in.Component) + in.Node + "\x00" + in.Id
}

func fleetKey(in *v1.ComponentInstance) string {
	return in.Component + "\x00" + in.Cluster + "\x00" + in.Node + "\x00" + in.Id
}

// checkOrders compares every read of the view's instances with the model.
func checkOrders(t *testing.T, v *View, m model, rng *rand.Rand) {
	t.Helper()
	var want []*v1.ComponentInstance
	for _, in := range m {
		want = append(want, in)
	}
	for _, o := range []struct {
		order ComponentOrder
		key   func(*v1.ComponentInstance) string
		row   func(*Component) string
	}{{ByCluster, clusterKey, (*Component).ClusterSortKey}, {ByComponent, fleetKey, (*Component).FleetSortKey}} {
		slices.SortFunc(want, func(a, b *v1.ComponentInstance) int { return strings.Compare(o.key(a), o.key(b)) })
		var got []string
		for c := range v.Components(nil, o.order, "") {
			if c.Instance().Id != c.InstanceID || o.row(c) != o.key(c.Instance()) {
				t.Fatalf("row %q holds instance %q", o.row(c), o.key(c.Instance()))
			}
			got = append(got, o.row(c))
		}
		var keys []string
		for _, in := range want {
			keys = append(keys, o.key(in))
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("order %d:\n got %q\nwant %q", o.order, got, keys)
		}
		// Reading from any key starts at the first key not before it.
		for range 20 {
			from := ""
			if len(keys) > 0 {
				from = keys[rng.IntN(len(keys))]
				if rng.IntN(2) == 0 {
					from = from[:rng.IntN(len(from)+1)]
				}
			}
			i, _ := slices.BinarySearch(keys, from)
			var first []string
			for c := range v.Components(nil, o.order, from) {
				first = append(first, o.row(c))
				if len(first) == 3 {
					break
				}
			}
			if end := min(i+3, len(keys)); !slices.Equal(first, keys[i:end]) {
				t.Fatalf("from %q: got %q, want %q", from, first, keys[i:end])
			}
		}
	}
	// A role's instances within a cluster.
	for _, cluster := range []string{"a", "b"} {
		for _, comp := range []string{v1.ComponentKubelet, v1.ComponentEtcd, "csi"} {
			prefix := ComponentKeyPrefix(cluster, comp)
			var got, wantKeys []string
			for c := range v.ComponentsWithPrefix(nil, prefix) {
				got = append(got, c.ClusterSortKey())
			}
			for _, in := range want {
				if k := clusterKey(in); strings.HasPrefix(k, prefix) {
					wantKeys = append(wantKeys, k)
				}
			}
			slices.Sort(wantKeys)
			if !slices.Equal(got, wantKeys) {
				t.Fatalf("prefix %q: got %q, want %q", prefix, got, wantKeys)
			}
		}
	}
	// A node's instances, by ID.
	nodes := map[[2]string][]string{}
	for _, in := range m {
		k := [2]string{in.Cluster, in.Node}
		nodes[k] = append(nodes[k], in.Id)
	}
	for k, ids := range nodes {
		slices.Sort(ids)
		var got []string
		for c := range v.ComponentsOn(nil, k[0], k[1]) {
			got = append(got, c.InstanceID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("node %v: got %q, want %q", k, got, ids)
		}
	}
	if n := v.componentCount(); n != len(m) {
		t.Fatalf("%d instances counted, want %d", n, len(m))
	}
}

func randomInstance(rng *rand.Rand, cluster, node string, gen int) *v1.ComponentInstance {
	comps := []string{v1.ComponentKubelet, v1.ComponentEtcd, v1.ComponentKubeProxy, "csi", v1.ComponentAPIServer, "vendor-agent"}
	comp := comps[rng.IntN(len(comps))]
	return &v1.ComponentInstance{Cluster: cluster, Node: node, Component: comp, Id: fmt.Sprintf("%s/%s/%d", node, comp, rng.IntN(3)),
		RestartCount: int32(gen), Pid: int32(rng.IntN(5))}
}

// Every order, prefix and node read agrees with a model through random
// replacements, encoded and decoded rows mixed; a view keeps its snapshot
// while later transactions change the store, and an aborted one changes
// nothing.
func TestComponentOrdersFollowReplacements(t *testing.T) {
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	type snapshot struct {
		v *View
		m model
	}
	var snaps []snapshot
	for gen := range 300 {
		txn := s.WriteTxn()
		next := maps(m)
		for range 1 + rng.IntN(3) {
			cluster, node := []string{"a", "b"}[rng.IntN(2)], fmt.Sprintf("n%d", rng.IntN(8))
			var rows []*Component
			for k := range next {
				if strings.HasPrefix(k, cluster+"/"+node+"/") {
					delete(next, k)
				}
			}
			for range rng.IntN(5) {
				in := randomInstance(rng, cluster, node, gen)
				if rng.IntN(2) == 0 {
					raw, err := proto.Marshal(in)
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, NewEncodedComponent(cluster, node, raw, in))
				} else {
					rows = append(rows, NewComponent(in))
				}
				next[cluster+"/"+in.Id] = in
			}
			if _, err := txn.ReplaceComponents(cluster, node, rows, func(a, b *Component) bool {
				return proto.Equal(a.Instance(), b.Instance())
			}); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(5) == 0 {
			txn.Abort()
			checkOrders(t, s.View(), m, rng)
			continue
		}
		txn.Commit()
		m = next
		checkOrders(t, s.View(), m, rng)
		if gen%50 == 0 {
			snaps = append(snaps, snapshot{s.View(), m})
		}
	}
	for _, sn := range snaps {
		checkOrders(t, sn.v, sn.m, rng)
	}
}

func maps(m model) model {
	out := make(model, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// A replacement publishes exactly what changed: a new instance ADDED, a
// changed one MODIFIED, a gone one DELETED, an unchanged one nothing. An
// encoded row lets go of its decoded form once committed, and reads decode
// it again.
func TestReplaceComponentsPublishesOnlyChanges(t *testing.T) {
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Broker().Subscribe()
	defer sub.Close()
	inst := func(id string, restarts int32) *v1.ComponentInstance {
		return &v1.ComponentInstance{Cluster: "c", Node: "n", Component: v1.ComponentKubelet, Id: "n/" + id, RestartCount: restarts,
			Flags: []*v1.Flag{{Name: "v", Values: []string{"2"}}}}
	}
	replace := func(ins ...*v1.ComponentInstance) []*Component {
		t.Helper()
		var rows []*Component
		for _, in := range ins {
			raw, err := proto.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, NewEncodedComponent("c", "n", raw, in))
		}
		txn := s.WriteTxn()
		defer txn.Abort()
		if _, err := txn.ReplaceComponents("c", "n", rows, SameEncoding); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
		return rows
	}
	events := func() []string {
		t.Helper()
		evs, _ := sub.Read(nil, 100)
		var out []string
		for _, e := range evs {
			out = append(out, strings.TrimPrefix(e.Type.String(), "WATCH_EVENT_TYPE_")+" "+e.Component.Id+" "+fmt.Sprint(e.Component.RestartCount))
		}
		return out
	}
	rows := replace(inst("x", 0), inst("y", 0), inst("z", 0))
	if got := events(); !slices.Equal(got, []string{"ADDED n/x 0", "ADDED n/y 0", "ADDED n/z 0"}) {
		t.Fatalf("first put: %q", got)
	}
	for _, r := range rows {
		if r.inst != nil {
			t.Fatal("a committed encoded row kept its decoded form")
		}
	}
	replace(inst("y", 1), inst("x", 0), inst("w", 0))
	if got := events(); !slices.Equal(got, []string{"ADDED n/w 0", "MODIFIED n/y 1", "DELETED n/z 0"}) {
		t.Fatalf("second put: %q", got)
	}
	replace(inst("w", 0), inst("x", 0), inst("y", 1))
	if got := events(); len(got) != 0 {
		t.Fatalf("an unchanged node published %q", got)
	}
	var got []*v1.ComponentInstance
	for c := range s.View().ComponentsOn(nil, "c", "n") {
		got = append(got, c.Instance())
	}
	if len(got) != 3 || !proto.Equal(got[2], inst("y", 1)) {
		t.Fatalf("read back %v", got)
	}
	// Of two rows with one ID the last counts.
	replace(inst("w", 0), inst("w", 5))
	if got := events(); !slices.Equal(got, []string{"MODIFIED n/w 5", "DELETED n/x 0", "DELETED n/y 1"}) {
		t.Fatalf("duplicate IDs: %q", got)
	}
	// Rows of another node are refused.
	txn := s.WriteTxn()
	defer txn.Abort()
	if _, err := txn.ReplaceComponents("c", "other", []*Component{NewComponent(inst("v", 0))}, SameEncoding); err == nil {
		t.Fatal("a row of node n was written to node other")
	}
}
