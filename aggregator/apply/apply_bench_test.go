package apply_test

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// BenchmarkIngestSnapshot applies 300-process snapshots of distinct nodes and
// reports process records per second.
func BenchmarkIngestSnapshot(b *testing.B) {
	e := synth.NewApplier()
	invs := make([]apply.Inventory, 64)
	now := time.Now()
	for i := range invs {
		invs[i] = apply.Inventory{Cluster: "c", Identity: &v1.NodeIdentity{WallClock: timestamppb.New(now)}, Processes: synth.SyntheticProcesses(300, i),
			State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: now, Reference: now}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv := invs[i%len(invs)]
		inv.Node = fmt.Sprintf("node-%06d", i)
		if err := e.ApplyInventory(inv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(300*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFleetLoad loads 1,000 nodes × 300 processes and reports seconds per fleet.
func BenchmarkFleetLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := synth.LoadFleet(synth.NewApplier(), 1, 1000, 300); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/fleet")
}

// BenchmarkRejoinOneNode applies a one-process delta to one node of a loaded
// fleet. Compare the sizes to see that the cost does not grow with the fleet.
func BenchmarkRejoinOneNode(b *testing.B) {
	for _, nodes := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			e := synth.NewApplier()
			if err := synth.LoadFleet(e, 1, nodes, 300); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := &v1.Delta{UpsertedProcesses: synth.SyntheticProcesses(6, i)[5:]}
				d.UpsertedProcesses[0].Pid = int32(100000 + i%1000)
				node := fmt.Sprintf("node-%05d", i%nodes)
				t := time.Now()
				if err := e.ApplyDelta("cluster-00", node, d, time.Now(), uint64(i+2), apply.Limits{}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkHeapPerRecord loads 10,000 nodes × 300 processes (3,000,000
// records) and reports live heap bytes per record.
func BenchmarkHeapPerRecord(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e := synth.NewApplier()
		if err := synth.LoadFleet(e, 10, 1000, 300); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/3e6, "heap-bytes/record")
		runtime.KeepAlive(e)
	}
}
