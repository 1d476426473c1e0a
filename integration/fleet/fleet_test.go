// Package fleet tests the fleet tier with real processes: a three-server
// NATS cluster with JetStream (replicas 3) on loopback, three aggregators
// fed by simulated agents over gRPC, each publishing its clusters with its
// own nkey, and a fleet view serving them all.
package fleet

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/agent/stream"
	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/integration/webview"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

type user struct{ pub, seedFile string }

func newUser(t *testing.T, dir, name string) user {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	path := filepath.Join(dir, name+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return user{pub, path}
}

func perms(pub, sub []string) *server.Permissions {
	return &server.Permissions{Publish: &server.SubjectPermission{Allow: pub}, Subscribe: &server.SubjectPermission{Allow: sub}}
}

// startCluster starts three clustered NATS servers with JetStream. Servers
// do not advertise each other to clients, so a client reaches only the URLs
// it is given (a proxy in front of one can cut it off).
func startCluster(t *testing.T, users []*server.NkeyUser) []*server.Server {
	t.Helper()
	var client, route [3]int
	for i := range 3 {
		client[i], route[i] = harness.FreePort(t), harness.FreePort(t)
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(route[i]))
	}
	var servers []*server.Server
	for i := range 3 {
		opts := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i), Host: "127.0.0.1", Port: client[i],
			JetStream: true, StoreDir: t.TempDir(), Nkeys: users, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "kubeatlas-fleet", Host: "127.0.0.1", Port: route[i], NoAdvertise: true},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("NATS server %d did not start", i)
		}
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	return servers
}

func urls(servers []*server.Server) string {
	var u []string
	for _, s := range servers {
		if s.Running() {
			u = append(u, s.ClientURL())
		}
	}
	return strings.Join(u, ",")
}

// agent is a simulated node agent: synthetic processes streamed to an
// aggregator over gRPC by the agent's own stream client.
type agent struct {
	mu            sync.Mutex
	cluster, node string
	procs         []*v1.Process
}

func (a *agent) Scan(context.Context) (*v1.NodeInventory, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &v1.NodeInventory{
		Identity:  &v1.NodeIdentity{Cluster: a.cluster, NodeName: a.node, Hostname: a.node, WallClock: timestamppb.Now()},
		Kubelet:   &v1.KubeletInfo{StaticPodPath: "/etc/kubernetes/manifests"},
		Processes: append([]*v1.Process(nil), a.procs...),
	}, nil
}

// addEtcd makes the node run etcd as a host daemon: a new instance.
func (a *agent) addEtcd() {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &v1.Process{Pid: 4242, Ppid: 1, StartTime: timestamppb.New(time.Unix(1_700_000_100, 0)), User: "etcd",
		Argv: []string{"/usr/local/bin/etcd", "--name=" + a.node}, CgroupPath: "/system.slice/etcd.service", SystemdUnit: "etcd.service",
		Components: []*v1.HostedComponent{{Component: "etcd", Implementation: "etcd"}}}
	a.procs = append(a.procs, p)
}

func startAgent(t *testing.T, addr string, a *agent) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := stream.NewClient(conn, a, stream.Config{ScanInterval: 200 * time.Millisecond, HeartbeatInterval: 500 * time.Millisecond,
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
}

// answer is what an InventoryService says of one cluster, without what
// only a fleet view adds or what changes with every heartbeat.
func answer(ctx context.Context, c v1.InventoryServiceClient, cluster string) (string, error) {
	var b strings.Builder
	cl, err := c.GetCluster(ctx, &v1.GetClusterRequest{Name: cluster})
	if err != nil {
		return "", err
	}
	x := proto.CloneOf(cl.Cluster)
	x.Publisher, x.UpdatedAt, x.Freshness = "", nil, 0
	fmt.Fprintf(&b, "cluster %v\n", x)
	nodes, err := c.ListNodes(ctx, &v1.ListNodesRequest{Cluster: cluster, PageSize: 1000})
	if err != nil {
		return "", err
	}
	for _, n := range nodes.Nodes {
		fmt.Fprintf(&b, "node %s %v %v processes=%d\n", n.Name, n.Roles, n.AgentState, n.ProcessCount)
	}
	comps, err := c.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: cluster, PageSize: 1000})
	if err != nil {
		return "", err
	}
	for _, in := range comps.Components {
		data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(in)
		fmt.Fprintf(&b, "instance %s %x\n", in.Id, data)
	}
	finds, err := c.ListFindings(ctx, &v1.ListFindingsRequest{Cluster: cluster, PageSize: 1000})
	if err != nil {
		return "", err
	}
	for _, f := range finds.Findings {
		data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
		fmt.Fprintf(&b, "finding %s %x\n", f.Id, data)
	}
	return b.String(), nil
}

func freshness(ctx context.Context, c v1.InventoryServiceClient, cluster string) (v1.Freshness, string, error) {
	cl, err := c.GetCluster(ctx, &v1.GetClusterRequest{Name: cluster})
	if err != nil {
		return 0, "", err
	}
	return cl.Cluster.Freshness, cl.Cluster.Publisher, nil
}

func TestFleet(t *testing.T) {
	bins := harness.Build(t)
	dir := t.TempDir()
	admin := newUser(t, dir, "admin")
	view := newUser(t, dir, "fleet-view")
	clusters := []string{"east.prod", "west", "north"}
	var aggUsers []user
	users := []*server.NkeyUser{{Nkey: admin.pub}, {Nkey: view.pub, Permissions: perms(fleet.ViewSubjects(fleet.DefaultBucket))}}
	for i, c := range clusters {
		u := newUser(t, dir, fmt.Sprintf("agg-%d", i))
		aggUsers = append(aggUsers, u)
		users = append(users, &server.NkeyUser{Nkey: u.pub, Permissions: perms(fleet.PublisherSubjects(fleet.DefaultBucket, c))})
	}
	servers := startCluster(t, users)
	all := urls(servers)

	// The operator makes the bucket, three copies.
	seedOpt, err := nats.NkeyOptionFromSeed(admin.seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(all, seedOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.DefaultBucket, History: 1, Replicas: 3, Storage: jetstream.FileStorage})
		return err
	}); err != nil {
		t.Fatalf("creating the bucket: %v", err)
	}

	// Three aggregators, each with two simulated agents. The second
	// reaches NATS through a proxy that can cut it off.
	proxy := harness.StartProxy(t, strings.TrimPrefix(servers[1].ClientURL(), "nats://"))
	var aggs []*harness.Aggregator
	agents := map[string][]*agent{}
	for i, c := range clusters {
		natsURL := all
		if i == 1 {
			natsURL = "nats://" + proxy.Addr
		}
		a := harness.StartAggregator(t, bins, "--fleet-publish", natsURL, "--fleet-name", fmt.Sprintf("agg-%d", i),
			"--fleet-nkey-seed", aggUsers[i].seedFile, "--fleet-heartbeat", "500ms", "--fleet-stale-after", "2s")
		aggs = append(aggs, a)
		for n := range 2 {
			ag := &agent{cluster: c, node: fmt.Sprintf("node-%d", n), procs: synth.SyntheticProcesses(40, i*10+n)}
			agents[c] = append(agents[c], ag)
			startAgent(t, a.Addr, ag)
		}
	}
	uiAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	fv := harness.StartAggregator(t, bins, "--fleet-from", all, "--fleet-name", "fleet-view", "--fleet-nkey-seed", view.seedFile,
		"--fleet-heartbeat", "500ms", "--fleet-stale-after", "4s", "--fleet-unreachable-after", "120s", "--ui-addr", uiAddr)
	// The fleet view's web page, in a real browser: it marks a stale cluster.
	browser := webview.NewBrowser(t)
	if err := browser.Open("http://" + uiAddr + "/ui/"); err != nil {
		t.Fatal(err)
	}
	// pageRow is a cluster's row on the fleet page: its state, publisher and
	// whether it is marked stale.
	pageRow := func(c string) (state, publisher string, marked bool, err error) {
		row, err := webview.Eval[[]string](browser, fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-cluster=%q]');
			return r ? [r.querySelector('[data-state]').innerText, r.cells[r.cells.length - 2].innerText, String(r.classList.contains('stale'))] : []; })()`, c))
		if err != nil || len(row) != 3 {
			return "", "", false, fmt.Errorf("no row for %s on the page (%v)", c, err)
		}
		return row[0], row[1], row[2] == "true", nil
	}

	ctx := context.Background()
	exact := func(timeout time.Duration, only ...int) error {
		return harness.Eventually(timeout, 250*time.Millisecond, func() error {
			for i, c := range clusters {
				if len(only) > 0 && !contains(only, i) {
					continue
				}
				want, err := answer(ctx, aggs[i].Client, c)
				if err != nil {
					return err
				}
				if !strings.Contains(want, "instance ") {
					return fmt.Errorf("aggregator %d has no instances yet", i)
				}
				got, err := answer(ctx, fv.Client, c)
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("cluster %s differs:\nfleet view:\n%s\naggregator:\n%s", c, got, want)
				}
			}
			return nil
		})
	}
	t.Run("equal", func(t *testing.T) {
		if err := exact(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		for i, c := range clusters {
			f, pub, err := freshness(ctx, fv.Client, c)
			if err != nil || f != v1.Freshness_FRESHNESS_LIVE || pub != fmt.Sprintf("agg-%d", i) {
				t.Errorf("%s: %v by %q, %v", c, f, pub, err)
			}
		}
		if _, err := fv.Client.ListProcesses(ctx, &v1.ListProcessesRequest{Cluster: "west"}); err == nil || !strings.Contains(err.Error(), "west by agg-1") {
			t.Errorf("ListProcesses on the fleet view: %v", err)
		}
	})
	t.Run("aggregator-cut-off", func(t *testing.T) {
		// Every cluster is live before the cut.
		if err := harness.Eventually(30*time.Second, 100*time.Millisecond, func() error {
			for _, c := range clusters {
				if f, _, err := freshness(ctx, fv.Client, c); err != nil || f != v1.Freshness_FRESHNESS_LIVE {
					return fmt.Errorf("%s is %v (%v)", c, f, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		proxy.Cut()
		start := time.Now()
		if err := harness.Eventually(20*time.Second, 100*time.Millisecond, func() error {
			f, _, err := freshness(ctx, fv.Client, "west")
			if err != nil {
				return err
			}
			if f != v1.Freshness_FRESHNESS_STALE {
				return fmt.Errorf("west is %v", f)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("west stale %v after its aggregator was cut off", time.Since(start).Round(100*time.Millisecond))
		if err := harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			state, pub, marked, err := pageRow("west")
			if err != nil {
				return err
			}
			if !marked || !strings.Contains(state, "stale") || pub != "agg-1" {
				return fmt.Errorf("west on the page: state %q, publisher %q, marked %v", state, pub, marked)
			}
			for _, c := range []string{"east.prod", "north"} {
				if _, _, marked, err := pageRow(c); err != nil || marked {
					return fmt.Errorf("%s is marked stale on the page (%v)", c, err)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		browser.Screenshot("west-stale")
		for _, c := range []string{"east.prod", "north"} {
			if f, _, err := freshness(ctx, fv.Client, c); err != nil || f != v1.Freshness_FRESHNESS_LIVE {
				t.Errorf("%s is %v while west is cut off (%v)", c, f, err)
			}
		}
		// Its rows stay, marked; its aggregator's answer moves on meanwhile.
		if got, err := answer(ctx, fv.Client, "west"); err != nil || !strings.Contains(got, "instance ") {
			t.Errorf("a stale cluster lost its rows: %v", err)
		}
		agents["west"][1].addEtcd()
		time.Sleep(cutFor())
		if err := proxy.Heal(); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		if err := exact(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("exact again %v after healing", time.Since(healed).Round(100*time.Millisecond))
		if f, _, _ := freshness(ctx, fv.Client, "west"); f != v1.Freshness_FRESHNESS_LIVE {
			t.Errorf("west is %v after healing", f)
		}
		if err := harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			if _, _, marked, err := pageRow("west"); err != nil || marked {
				return fmt.Errorf("west is still marked stale on the page (%v)", err)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	t.Run("nats-server-killed", func(t *testing.T) {
		servers[2].Shutdown()
		start := time.Now()
		agents["east.prod"][0].addEtcd()
		if err := exact(30*time.Second, 0, 2); err != nil {
			t.Fatal(err)
		}
		// A view whose watch ran through the lost server may mark clusters
		// stale for a moment; they are live again once it has moved on.
		if err := harness.Eventually(60*time.Second, 100*time.Millisecond, func() error {
			for _, c := range []string{"east.prod", "north"} {
				if f, _, err := freshness(ctx, fv.Client, c); err != nil || f != v1.Freshness_FRESHNESS_LIVE {
					return fmt.Errorf("%s is %v (%v)", c, f, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("exact and live %v after a NATS server was killed", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("fleet-view-restarted", func(t *testing.T) {
		fv.Proc.Kill()
		start := time.Now()
		fv.Start(t)
		if err := exact(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("a restarted fleet view caught up in %v", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("publish-refused", func(t *testing.T) {
		// The first aggregator's credentials, writing the second's cluster.
		opt, err := nats.NkeyOptionFromSeed(aggUsers[0].seedFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := nats.Connect(urls(servers), opt)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ajs, _ := jetstream.New(c)
		kv, err := ajs.KeyValue(ctx, fleet.DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := kv.Put(pctx, "west.node.node-0", []byte("forged")); err == nil {
			t.Fatal("an aggregator wrote another aggregator's cluster")
		} else {
			t.Logf("refused: %v", err)
		}
		// A record under its own cluster's key that names another cluster
		// is refused by the view, and counted.
		east, _ := proto.Marshal(&v1.FleetNode{Node: &v1.Node{Cluster: "west", Name: "node-0"}})
		if _, err := kv.Put(ctx, "east_prod.node.node-9", east); err != nil {
			t.Fatal(err)
		}
		if err := harness.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			if n := metric(t, fv.MetricsAddr, "kubeatlas_fleet_records_refused_total"); n < 1 {
				return fmt.Errorf("refused %v", n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n := metric(t, fv.MetricsAddr, "kubeatlas_fleet_records_applied_total"); n < 6 {
			t.Errorf("the view applied %v records", n)
		}
		if err := exact(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// metric reads one value from a process's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// cutFor is how long the aggregator stays cut off: 60 s as the fleet
// tier's promise says, shorter with KUBEATLAS_FLEET_CUT for a quick run.
func cutFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KUBEATLAS_FLEET_CUT")); err == nil {
		return d
	}
	return 60 * time.Second
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
