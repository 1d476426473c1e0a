package load

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/ingest"
	"github.com/kubeatlas/kubeatlas/aggregator/server"
	"github.com/kubeatlas/kubeatlas/integration/harness"
)

// A small run of the harness against a real aggregator server on loopback:
// every phase runs, and what it reports adds up.
func TestSmallRun(t *testing.T) {
	agg := harness.RunAggregator(t, server.Config{
		MetricsAddr: "127.0.0.1:0", Profiling: true,
		Ingest: ingest.Config{HeartbeatInterval: time.Second},
	})
	const nodes, procs = 50, 300
	dir := t.TempDir()
	rep, err := Run(context.Background(), Config{
		Server: agg.Addr(), Clusters: 2, Nodes: nodes, Processes: procs, Interval: time.Second, Churn: 0.02,
		Steady: 3 * time.Second, Conns: 4, Watchers: 2, WatchBatch: 100,
		AggregatorPID: os.Getpid(), MetricsURL: "http://" + agg.MetricsAddr(), ProfileDir: dir, LoadProfile: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.String())
	if rep.Records != nodes*procs || rep.FullLoad <= 0 || rep.AckP99 <= 0 {
		t.Errorf("full load not measured: %+v", rep)
	}
	if rep.EtcdQueries == 0 || rep.WhereP50 <= 0 {
		t.Errorf("no queries under load: %+v", rep)
	}
	if rep.HeapPeak == 0 || rep.HeapLive == 0 {
		t.Errorf("heap not read: peak %d, live %d", rep.HeapPeak, rep.HeapLive)
	}
	if rep.DeltaBytes == 0 || rep.SnapshotBytesPerNodeMinute <= rep.DeltaBytesPerNodeMinute {
		t.Errorf("wire bytes: deltas %.0f, snapshots %.0f per node-minute", rep.DeltaBytesPerNodeMinute, rep.SnapshotBytesPerNodeMinute)
	}
	// Each node adds at least its kubelet, runtime, CNI and kube-proxy: every
	// watcher counts them all, in batches, without a resync.
	if rep.WatchResyncs != 0 || rep.WatchEvents < 2*4*nodes || rep.WatchMessages >= rep.WatchEvents {
		t.Errorf("watchers: %d events in %d messages, %d resyncs", rep.WatchEvents, rep.WatchMessages, rep.WatchResyncs)
	}
	for _, f := range []string{"cpu-load.pprof", "cpu-steady.pprof", "heap.pprof", "steady.trace"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s not saved: %v", f, err)
		}
	}
}
