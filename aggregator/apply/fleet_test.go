package apply

import (
	"testing"
	"time"
	"unsafe"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// A fleet view's rows are as their aggregator published them: nothing that
// re-joins nodes (the end of the agent grace period, a certificate check)
// may replace them with a join over facts the view does not have.
func TestFleetRowsAreNeverJoined(t *testing.T) {
	e := newEngine(t, Config{AwaitAgents: true})
	inst := &v1.ComponentInstance{Cluster: "c", Node: "n", Component: "kubelet", Implementation: "kubelet", Id: "n/kubelet", HasProcess: true}
	if err := e.PutFleetCluster(&v1.FleetCluster{Cluster: &v1.Cluster{Name: "c"}, Publisher: "agg"}, time.Now(), v1.Freshness_FRESHNESS_LIVE); err != nil {
		t.Fatal(err)
	}
	if err := e.PutFleetNode("c", &v1.FleetNode{Node: &v1.Node{Cluster: "c", Name: "n"}, Components: []*v1.ComponentInstance{inst}}); err != nil {
		t.Fatal(err)
	}
	if err := e.SettleAgents(); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckCertificates(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range e.Store().View().ComponentsOn(nil, "c", "n") {
		n++
	}
	if n != 1 {
		t.Fatalf("%d instances after the grace period, want the one published", n)
	}
	// Freshness follows the record's age.
	changed, err := e.SetFleetFreshness(time.Now().Add(time.Minute), 15*time.Second, 5*time.Minute)
	if err != nil || len(changed) != 1 {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if c, _ := e.Store().View().Cluster(nil, "c"); c.Freshness != v1.Freshness_FRESHNESS_STALE {
		t.Errorf("freshness %v", c.Freshness)
	}
	if err := e.DeleteFleetNode("c", "n"); err != nil {
		t.Fatal(err)
	}
	for range e.Store().View().ComponentsOn(nil, "c", "n") {
		t.Fatal("a deleted node kept its instances")
	}
}

// A node updated again keeps its ID string: a fleet view holds one copy of
// it for the node's life, shared with its row of instances.
func TestFleetNodeKeepsItsID(t *testing.T) {
	e := newEngine(t, Config{})
	var ids []*byte
	for gen := range 3 {
		inst := &v1.ComponentInstance{Cluster: "c", Node: "n", Component: "kubelet", Id: "n/kubelet", RestartCount: int32(gen)}
		if err := e.PutFleetNode("c", &v1.FleetNode{Node: &v1.Node{Cluster: "c", Name: "n"}, Components: []*v1.ComponentInstance{inst}}); err != nil {
			t.Fatal(err)
		}
		n, _ := e.Store().View().Node(nil, "c", "n")
		if n.ID != "c/n" {
			t.Fatalf("ID %q", n.ID)
		}
		ids = append(ids, unsafe.StringData(n.ID))
	}
	if ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatal("an update made the node a new ID string")
	}
}
