package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"google.golang.org/protobuf/proto"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// startNATS runs an embedded NATS server with JetStream on a loopback port.
func startNATS(t *testing.T, opts *server.Options) string {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

func newStore(t *testing.T) (*state.Store, *apply.Applier) {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return st, apply.New(st, apply.Config{})
}

func run(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers is what a query server says of every cluster: clusters without
// their fleet fields, nodes without last_seen, every instance and finding.
func answers(t *testing.T, s *query.Server) string {
	t.Helper()
	ctx := context.Background()
	cl, err := s.ListClusters(ctx, &v1.ListClustersRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for _, c := range cl.Clusters {
		c = proto.CloneOf(c)
		c.Publisher, c.UpdatedAt, c.Freshness = "", nil, 0
		out += fmt.Sprintf("cluster %v\n", c)
	}
	nodes, err := s.ListNodes(ctx, &v1.ListNodesRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Nodes {
		n = proto.CloneOf(n)
		n.LastSeen = nil
		if n.Identity != nil {
			n.Identity.WallClock = nil
		}
		out += fmt.Sprintf("node %s/%s %v %v %d %d\n", n.Cluster, n.Name, n.Roles, n.AgentState, n.ProcessCount, n.ManifestCount)
	}
	comps, err := s.ListComponents(ctx, &v1.ListComponentsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	insts, err := query.ComponentsOf(comps)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range insts {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		out += fmt.Sprintf("component %s %x\n", c.Id, b)
	}
	finds, err := s.ListFindings(ctx, &v1.ListFindingsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range finds.Findings {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
		out += fmt.Sprintf("finding %s %x\n", f.Id, b)
	}
	return out
}

// The fleet view answers as the cluster's own aggregator does, follows its
// changes, and marks the cluster stale when its aggregator stops.
func TestFleetViewEqualsTheAggregator(t *testing.T) {
	url := startNATS(t, nil)
	src, srcApply := newStore(t)
	if _, err := bundle.Load(srcApply, "../../examples/seed-cluster"); err != nil {
		t.Fatal(err)
	}
	pub := &Publisher{Conn: Conn{URL: url, Name: "region-a"}, Store: src, CreateBucket: true, Heartbeat: 200 * time.Millisecond, Sweep: 300 * time.Millisecond}
	pctx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.Run(pctx) }()
	t.Cleanup(func() { stopPub(); <-pubDone })
	eventually(t, 10*time.Second, func() error {
		if !pub.Synced.Load() {
			return errors.New("the publisher has not synced")
		}
		return nil
	})

	dst, dstApply := newStore(t)
	view := &View{Conn: Conn{URL: url, Name: "fleet"}, Applier: dstApply, StaleAfter: time.Second, UnreachableAfter: 3 * time.Second}
	run(t, view.Run)
	want := answers(t, query.NewServer(src))
	fv := query.NewServer(dst)
	fv.FleetView = true
	eventually(t, 10*time.Second, func() error {
		if got := answers(t, fv); got != want {
			return fmt.Errorf("the fleet view differs:\n%s\nwant:\n%s", got, want)
		}
		return nil
	})
	c, err := fv.GetCluster(context.Background(), &v1.GetClusterRequest{Name: "seed"})
	if err != nil || c.Cluster.Publisher != "region-a" || c.Cluster.Freshness != v1.Freshness_FRESHNESS_LIVE || c.Cluster.UpdatedAt == nil {
		t.Fatalf("the fleet view's cluster: %v, %v", c, err)
	}
	if _, err := fv.ListProcesses(context.Background(), &v1.ListProcessesRequest{Cluster: "seed"}); err == nil ||
		!strings.Contains(err.Error(), "seed by region-a") {
		t.Errorf("ListProcesses on a fleet view: %v", err)
	}

	// A change on the aggregator reaches the view.
	if err := srcApply.DeletePod("seed", "kube-system", "kube-proxy-xgvz8"); err != nil {
		t.Fatal(err)
	}
	want = answers(t, query.NewServer(src))
	eventually(t, 10*time.Second, func() error {
		if got := answers(t, fv); got != want {
			return fmt.Errorf("the fleet view did not follow the change")
		}
		return nil
	})

	// The aggregator stops: its cluster turns stale, then unreachable,
	// and keeps its rows.
	stopPub()
	<-pubDone
	pubDone <- nil
	for _, f := range []v1.Freshness{v1.Freshness_FRESHNESS_STALE, v1.Freshness_FRESHNESS_UNREACHABLE} {
		eventually(t, 10*time.Second, func() error {
			c, err := fv.GetCluster(context.Background(), &v1.GetClusterRequest{Name: "seed"})
			if err != nil {
				return err
			}
			if c.Cluster.Freshness != f {
				return fmt.Errorf("freshness %v, want %v", c.Cluster.Freshness, f)
			}
			return nil
		})
	}
	comps, _ := fv.ListComponents(context.Background(), &v1.ListComponentsRequest{Cluster: "seed"})
	if insts, _ := query.ComponentsOf(comps); len(insts) == 0 {
		t.Error("an unreachable cluster lost its rows")
	}

	// A restarted view catches up from the bucket.
	dst2, dstApply2 := newStore(t)
	synced := make(chan time.Duration, 1)
	view2 := &View{Conn: Conn{URL: url, Name: "fleet-2"}, Applier: dstApply2, OnSynced: func(d time.Duration) { synced <- d }}
	run(t, view2.Run)
	select {
	case d := <-synced:
		t.Logf("a new fleet view caught up in %v", d)
	case <-time.After(10 * time.Second):
		t.Fatal("the second view never caught up")
	}
	if got, want := answers(t, query.NewServer(dst2)), answers(t, fv); got != want {
		t.Errorf("the second view differs from the first")
	}
}

func perms(pub, sub []string) *server.Permissions {
	return &server.Permissions{Publish: &server.SubjectPermission{Allow: pub}, Subscribe: &server.SubjectPermission{Allow: sub}}
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

// An aggregator's credentials let it write its own clusters' keys only;
// the fleet view's let it read and write nothing.
func TestPermissions(t *testing.T) {
	kp := func() (nkeys.KeyPair, string, string) {
		k, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := k.PublicKey()
		seed, _ := k.Seed()
		path := t.TempDir() + "/seed.nk"
		if err := writeFile(path, seed); err != nil {
			t.Fatal(err)
		}
		return k, pub, path
	}
	_, adminPub, adminSeed := kp()
	_, aPub, aSeed := kp()
	_, viewPub, viewSeed := kp()
	opts := &server.Options{Nkeys: []*server.NkeyUser{
		{Nkey: adminPub},
		{Nkey: aPub, Permissions: perms(PublisherSubjects(DefaultBucket, "alpha"))},
		{Nkey: viewPub, Permissions: perms(ViewSubjects(DefaultBucket))},
	}}
	url := startNATS(t, opts)
	// The operator makes the bucket.
	admin, err := (&Conn{URL: url, NkeySeedFile: adminSeed}).connect(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: DefaultBucket}); err != nil {
		t.Fatal(err)
	}

	src, srcApply := newStore(t)
	if err := srcApply.UpsertNodeAPI("alpha", "n1", &state.NodeAPI{KubeletVersion: "v1.30.0"}); err != nil {
		t.Fatal(err)
	}
	pub := &Publisher{Conn: Conn{URL: url, Name: "a", NkeySeedFile: aSeed}, Store: src, Heartbeat: 100 * time.Millisecond}
	run(t, pub.Run)
	eventually(t, 10*time.Second, func() error {
		if !pub.Synced.Load() {
			return errors.New("not synced")
		}
		return nil
	})
	// The same credentials, writing another cluster's key: refused.
	nc, err := (&Conn{URL: url, NkeySeedFile: aSeed}).connect(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ajs, _ := jetstream.New(nc)
	kv, err := ajs.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	put := func(kv jetstream.KeyValue, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := kv.Put(ctx, key, []byte("x"))
		return err
	}
	if err := put(kv, nodeKey("beta", "n1")); err == nil {
		t.Error("a publisher wrote another cluster's key")
	}
	if err := put(kv, nodeKey("alpha", "n9")); err != nil {
		t.Errorf("a publisher could not write its own cluster's key: %v", err)
	}
	// The view reads, and cannot write.
	dst, dstApply := newStore(t)
	view := &View{Conn: Conn{URL: url, Name: "fleet", NkeySeedFile: viewSeed}, Applier: dstApply}
	run(t, view.Run)
	eventually(t, 10*time.Second, func() error {
		if n, _ := dst.View().Node(nil, "alpha", "n1"); n == nil {
			return errors.New("the view has not read alpha/n1")
		}
		return nil
	})
	vc, err := (&Conn{URL: url, NkeySeedFile: viewSeed}).connect(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	vjs, _ := jetstream.New(vc)
	vkv, err := vjs.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := put(vkv, nodeKey("alpha", "n1")); err == nil {
		t.Error("the fleet view wrote a key")
	}
}

// Records applied together in one transaction: one refused, whether by its
// checks or by its writes, takes none of the others with it.
func TestApplyBatchRefusesOneRecordAlone(t *testing.T) {
	st, e := newStore(t)
	v := &View{Applier: e}
	v.defaults()
	put := func(node int, edit func(*v1.FleetNode)) jetstream.KeyValueEntry {
		rec := benchNode("c", node, 100)
		if edit != nil {
			edit(rec)
		}
		data, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return entry{key: nodeKey("c", rec.Node.Name), value: data}
	}
	v.applyBatch([]jetstream.KeyValueEntry{
		put(1, nil),
		put(2, func(r *v1.FleetNode) { r.Components[3].Id = "" }),       // no ID: refused by the writes' checks
		put(3, func(r *v1.FleetNode) { r.Components[0].Cluster = "d" }), // another cluster's instance
		entry{key: nodeKey("c", "node-000004"), value: []byte{0xff}},    // undecodable
		put(5, nil),
	})
	if v.Applied.Load() != 2 || v.Refused.Load() != 3 {
		t.Fatalf("applied %d, refused %d; want 2 and 3", v.Applied.Load(), v.Refused.Load())
	}
	for n, want := range map[string]int{"node-000001": 12, "node-000002": 0, "node-000003": 0, "node-000005": 12} {
		got := 0
		for range st.View().ComponentsOn(nil, "c", n) {
			got++
		}
		if got != want {
			t.Errorf("%s: %d instances, want %d", n, got, want)
		}
		if row, _ := st.View().Node(nil, "c", n); (row != nil) != (want > 0) {
			t.Errorf("%s: node row %v", n, row)
		}
	}
}

// The view marks its backlog while records wait behind one another, as in
// a catch-up, and clears it once none has waited for a while, counted from
// the end of a batch: a catch-up whose batches take longer to apply than
// that is one backlog, not one a batch. Records that come one at a time
// never mark it.
func TestViewMarksItsBacklog(t *testing.T) {
	url, putRestarts := benchBucket(t)
	put := func(node int) { t.Helper(); putRestarts(node, 0) }
	const nodes = 3000
	for n := range nodes {
		put(n)
	}
	_, e := newStore(t)
	backlog := &state.Backlog{}
	synced := make(chan struct{})
	view := &View{Conn: Conn{URL: url, Name: "fleet"}, Applier: e, Backlog: backlog, OnSynced: func(time.Duration) { close(synced) }}
	// watch polls the backlog until stop, and reports whether it was ever busy.
	watch := func(stop <-chan struct{}) bool {
		for {
			if backlog.Busy() {
				return true
			}
			select {
			case <-stop:
				return backlog.Busy()
			case <-time.After(100 * time.Microsecond):
			}
		}
	}
	seenBusy := make(chan bool, 1)
	go func() { seenBusy <- watch(synced) }()
	run(t, view.Run)
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the view never caught up")
	}
	if !<-seenBusy {
		t.Fatal("records waiting for a new view did not mark its backlog")
	}
	if p := backlog.Periods(); p > 2 {
		t.Fatalf("the catch-up of %d records was %d backlogs", nodes, p)
	}
	eventually(t, 5*time.Second, func() error {
		if backlog.Busy() {
			return errors.New("the backlog did not clear after the catch-up")
		}
		return nil
	})
	stop := make(chan struct{})
	go func() { seenBusy <- watch(stop) }()
	for n := range 20 {
		put(n)
		time.Sleep(30 * time.Millisecond)
	}
	eventually(t, 5*time.Second, func() error {
		if view.Applied.Load() < nodes+20 {
			return fmt.Errorf("%d records applied of %d", view.Applied.Load(), nodes+20)
		}
		return nil
	})
	close(stop)
	if <-seenBusy {
		t.Fatal("records one at a time marked the backlog")
	}
}

// Records that arrive one at a time, a few milliseconds apart, share
// transactions: each waits up to CommitWait for the next. Records are never
// lost to the wait, and a record alone is applied when its wait is over.
func TestViewSharesTransactionsAmongLoneRecords(t *testing.T) {
	url, put := benchBucket(t)
	const nodes = 50
	for n := range nodes {
		put(n, 0)
	}
	st, e := newStore(t)
	synced := make(chan struct{})
	view := &View{Conn: Conn{URL: url, Name: "fleet"}, Applier: e, CommitWait: 300 * time.Millisecond,
		OnSynced: func(time.Duration) { close(synced) }}
	run(t, view.Run)
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the view never caught up")
	}
	restarts := func(node int) int32 {
		for c := range st.View().ComponentsOn(nil, "c", fmt.Sprintf("node-%06d", node)) {
			if strings.HasSuffix(c.InstanceID, "/0") {
				return c.Instance().RestartCount
			}
		}
		return -1
	}
	applied := func(want int64) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if got := view.Applied.Load(); got != want {
				return fmt.Errorf("%d records applied, want %d", got, want)
			}
			return nil
		})
	}
	applied(nodes)

	before := view.Commits.Load()
	const lone = 20
	for n := range lone {
		put(n, 1)
		time.Sleep(3 * time.Millisecond)
	}
	applied(nodes + lone)
	if got := view.Commits.Load() - before; got > lone/4 {
		t.Errorf("%d records arriving 3 ms apart took %d transactions, want at most %d", lone, got, lone/4)
	}
	for n := range lone {
		if got := restarts(n); got != 1 {
			t.Fatalf("node %d: restart count %d after its update, want 1", n, got)
		}
	}

	// One record alone is applied once its wait is over.
	put(nodes-1, 2)
	applied(nodes + lone + 1)
	if got := restarts(nodes - 1); got != 2 {
		t.Fatalf("a lone record was not applied: restart count %d, want 2", got)
	}
}

// benchBucket starts a NATS server with the fleet bucket and returns its
// URL and a put of node's benchNode record in cluster "c", whose first
// instance has restarted restarts times.
func benchBucket(t *testing.T) (string, func(node, restarts int)) {
	t.Helper()
	url := startNATS(t, nil)
	nc, err := (&Conn{URL: url, Name: "publisher"}).connect(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: DefaultBucket})
	if err != nil {
		t.Fatal(err)
	}
	return url, func(node, restarts int) {
		t.Helper()
		rec := benchNode("c", node, 100)
		rec.Components[0].RestartCount = int32(restarts)
		data, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(context.Background(), nodeKey("c", fmt.Sprintf("node-%06d", node)), data); err != nil {
			t.Fatal(err)
		}
	}
}
