package state

import (
	"fmt"
	stdmaps "maps"
	"math/rand/v2"
	"testing"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// scanCounts counts every table's rows by reading them all, as Counts
// once did.
func scanCounts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	txn := s.db.Txn(false)
	out := map[string]int{}
	for _, table := range countedTables {
		it, err := txn.Get(table, indexID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for raw := it.Next(); raw != nil; raw = it.Next() {
			switch r := raw.(type) {
			case *Processes:
				n += len(r.Procs)
			case *Manifests:
				n += len(r.Manifests)
			default:
				n++
			}
		}
		out[table] = n
	}
	out[tableComponents] = Reads{txn}.componentCount()
	return out
}

// The counts kept as transactions commit equal a scan of every table,
// through puts, replacements, deletions, node-wide deletes and aborts.
func TestCountsFollowCommits(t *testing.T) {
	s := newTestStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 400 {
		txn := s.WriteTxn()
		for range 1 + rng.IntN(4) {
			c, n := fmt.Sprintf("c%d", rng.IntN(2)), fmt.Sprintf("n%d", rng.IntN(5))
			var err error
			switch rng.IntN(10) {
			case 0:
				err = txn.PutCluster(&Cluster{Name: c})
			case 1:
				err = txn.PutNode(&Node{ID: NodeID(c, n), Cluster: c, Name: n})
			case 2:
				if old, _ := txn.Node(nil, c, n); old != nil {
					err = txn.DeleteNode(old)
				}
			case 3:
				procs := make([]*v1.Process, rng.IntN(4))
				for i := range procs {
					procs[i] = &v1.Process{Pid: int32(i + 1)}
				}
				err = txn.PutProcesses(&Processes{ID: NodeID(c, n), Cluster: c, Node: n, Procs: procs})
			case 4:
				err = txn.PutManifests(&Manifests{ID: NodeID(c, n), Cluster: c, Node: n, Manifests: make([]*v1.StaticPodManifest, rng.IntN(3))})
			case 5:
				err = txn.DeleteAgentRows(c, n)
			case 6:
				p := fmt.Sprintf("p%d", rng.IntN(4))
				err = txn.PutPod(&Pod{ID: PodID(c, "ns", p), Cluster: c, Namespace: "ns", Name: p, NodeName: n, UID: "u-" + p})
			case 7:
				w := fmt.Sprintf("w%d", rng.IntN(3))
				err = txn.PutWorkload(&Workload{ID: WorkloadID(c, "DaemonSet", "ns", w), Cluster: c, Kind: "DaemonSet", Namespace: "ns", Name: w, UID: "u-" + w})
			case 8:
				err = txn.PutFinding(NewFinding(&v1.Finding{Cluster: c, Node: n, Id: fmt.Sprintf("f%d", rng.IntN(4))}))
			case 9:
				rows := make([]*Component, rng.IntN(3))
				for i := range rows {
					rows[i] = NewComponent(&v1.ComponentInstance{Cluster: c, Node: n, Component: v1.ComponentKubelet, Id: fmt.Sprintf("%s/%d", n, i)})
				}
				_, err = txn.ReplaceComponents(c, n, rows, func(a, b *Component) bool { return false })
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(5) == 0 {
			txn.Abort()
		} else {
			txn.Commit()
		}
		if got, want := s.Counts(), scanCounts(t, s); !stdmaps.Equal(got, want) {
			t.Fatalf("step %d: counts %v, scan %v", step, got, want)
		}
	}
	if got := s.Counts(); got[tableProcesses] == 0 || got[tablePods] == 0 || got[tableComponents] == 0 {
		t.Fatalf("the run left too little to count: %v", got)
	}
}
