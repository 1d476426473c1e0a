package hostile

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeatlas/kubeatlas/aggregator/ingest"
	"github.com/kubeatlas/kubeatlas/aggregator/server"
	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/integration/load"
)

// nodeBudget is the aggregator's --max-node-bytes in the test; BENCHMARKS.md
// runs it with the default too (-args -budget 16777216).
var nodeBudget = flag.Int64("budget", 4<<20, "the aggregator's byte budget per node")

func startAggregator(t *testing.T) *server.Aggregator {
	t.Helper()
	return harness.RunAggregator(t, server.Config{
		MetricsAddr: "127.0.0.1:0", Profiling: true,
		Ingest: ingest.Config{HeartbeatInterval: time.Second, MaxNodeBytes: *nodeBudget},
	})
}

// TestHostileAgentBesideHonestOnes runs the honest load twice against one
// aggregator, the second time with a hostile agent attacking throughout.
// The honest nodes' answers stay exact, the hostile streams are refused,
// and the heap stays under the sum of the nodes' budgets.
func TestHostileAgentBesideHonestOnes(t *testing.T) {
	const nodes, procs = 100, 300
	run := func(agg *server.Aggregator, attack bool) (*load.Report, *Result) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var res *Result
		hostileDone := make(chan struct{})
		if attack {
			go func() {
				defer close(hostileDone)
				var err error
				res, err = Run(ctx, Config{Server: agg.Addr(), Cluster: "hostile", Node: "evil", Duration: time.Hour})
				if err != nil {
					t.Error(err)
				}
			}()
			time.Sleep(2 * time.Second) // the attack is under way before the honest load starts
		} else {
			close(hostileDone)
		}
		rep, err := load.Run(context.Background(), load.Config{
			Server: agg.Addr(), Clusters: 2, Nodes: nodes, Processes: procs, Interval: time.Second, Churn: 0.02,
			Steady: 5 * time.Second, Conns: 4, AggregatorPID: os.Getpid(), MetricsURL: "http://" + agg.MetricsAddr(),
		})
		cancel()
		<-hostileDone
		if err != nil {
			t.Fatal(err)
		}
		return rep, res
	}
	quiet, _ := run(startAggregator(t), false)
	agg := startAggregator(t)
	attacked, res := run(agg, true)
	t.Logf("without the hostile agent:\n%s", quiet)
	t.Logf("with the hostile agent:\n%s", attacked)
	t.Logf("the attack:\n%s", res)
	t.Logf("heap peak %0.f MiB quiet, %.0f MiB attacked (+%.0f MiB); ack p50 %v -> %v, p99 %v -> %v",
		float64(quiet.HeapPeak)/(1<<20), float64(attacked.HeapPeak)/(1<<20), (float64(attacked.HeapPeak)-float64(quiet.HeapPeak))/(1<<20),
		quiet.AckP50, attacked.AckP50, quiet.AckP99, attacked.AckP99)

	if attacked.Records != nodes*procs {
		t.Errorf("honest records %d, want %d", attacked.Records, nodes*procs)
	}
	// Every honest node holds its whole inventory, and nothing the hostile
	// agent sent holds its secret.
	view := agg.Store.View()
	honest, seen := 0, 0
	for ps := range view.ProcessSets(nil, "") {
		seen++
		if ps.Cluster != "hostile" {
			honest++
			if len(ps.Procs) != procs {
				t.Errorf("honest node %s/%s holds %d processes, want %d", ps.Cluster, ps.Node, len(ps.Procs), procs)
			}
		}
		for _, p := range ps.Procs {
			if strings.Contains(strings.Join(p.Argv, " "), "hostile-secret") {
				t.Fatalf("a secret was stored: node %s pid %d", ps.Node, p.Pid)
			}
		}
	}
	// The invalid UTF-8 was made valid, not refused whole.
	if ps, _ := view.Processes(nil, "hostile", "evil-utf8"); ps == nil ||
		!strings.Contains(strings.Join(ps.Procs[0].Argv, " "), "\uFFFD") {
		t.Errorf("the node that sent invalid UTF-8 holds %v", ps)
	}
	if honest != nodes {
		t.Errorf("%d honest nodes in the store, want %d", honest, nodes)
	}
	// The hostile streams were refused for what they did.
	for attack, want := range map[string]string{
		"flood":             "ResourceExhausted",
		"endless-snapshot":  "ResourceExhausted",
		"oversized-argv":    "ResourceExhausted",
		"lying-generations": "InvalidArgument",
	} {
		if res.Streams[attack][want] == 0 {
			t.Errorf("%s: no stream ended with %s: %v", attack, want, res.Streams[attack])
		}
	}
	// Budgets: each node that ever reported may hold its stored rows and
	// a snapshot in progress, each up to its budget.
	if limit := uint64(seen+len(attacks)) * 2 * uint64(*nodeBudget); attacked.HeapPeak > limit {
		t.Errorf("heap peak %d over the sum of the budgets %d", attacked.HeapPeak, limit)
	}
}

// heapSampler reads an aggregator's heap in use from its /metrics every
// 100 ms and keeps the largest value.
func heapSampler(t *testing.T, metricsAddr string) (peak func() uint64, now func() uint64) {
	t.Helper()
	read := func() uint64 {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "go_memstats_heap_inuse_bytes "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return uint64(f)
			}
		}
		return 0
	}
	var mu sync.Mutex
	var max uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				v := read()
				mu.Lock()
				max = maxU(max, v)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() uint64 { mu.Lock(); defer mu.Unlock(); v := max; max = 0; return v }, read
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestHostileNodeHeap measures the most heap a hostile agent makes a real
// aggregator process hold, over what it holds idle, and checks it is within
// the budgets of the node identities the attack uses at once.
func TestHostileNodeHeap(t *testing.T) {
	bins := harness.Build(t)
	agg := harness.StartAggregator(t, bins, "--max-node-bytes", strconv.FormatInt(*nodeBudget, 10))
	peak, _ := heapSampler(t, agg.MetricsAddr)
	time.Sleep(2 * time.Second)
	idle := peak()
	res, err := Run(context.Background(), Config{Server: agg.Addr, Cluster: "hostile", Node: "evil", Duration: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	attacked := peak()
	t.Logf("the attack:\n%s", res)
	t.Logf("budget %d MiB a node: heap in use idle %.1f MiB, peak under attack %.1f MiB (+%.1f MiB)",
		*nodeBudget>>20, float64(idle)/(1<<20), float64(attacked)/(1<<20), (float64(attacked)-float64(idle))/(1<<20))
	// The identities the attack uses at once, each with its stored rows and
	// a snapshot in progress.
	if limit := uint64(len(attacks)) * 2 * uint64(*nodeBudget); attacked > idle+limit {
		t.Errorf("the attack grew the heap by %d bytes, over the %d its identities' budgets allow", attacked-idle, limit)
	}
}
