package apply

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/state"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func newEngine(t *testing.T, cfg Config) *Applier {
	t.Helper()
	st, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return New(st, cfg)
}

func report(t *testing.T, e *Applier, cluster, node string) {
	t.Helper()
	if err := e.ApplyInventory(Inventory{Cluster: cluster, Node: node, Identity: &v1.NodeIdentity{Cluster: cluster, NodeName: node},
		Processes: someProcesses(20), State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// someProcesses returns n processes: a kubelet, then ordinary ones.
func someProcesses(n int) []*v1.Process {
	out := []*v1.Process{{Pid: 1, Argv: []string{"/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"}}}
	for pid := int32(2); len(out) < n; pid++ {
		out = append(out, &v1.Process{Pid: pid, Argv: []string{"/usr/sbin/cron", "-f"}, StartTime: timestamppb.New(time.Unix(int64(pid), 0))})
	}
	return out
}

func nodeRow(e *Applier, cluster, node string) *state.Node {
	n, _ := e.Store().View().Node(nil, cluster, node)
	return n
}

func findingsOf(e *Applier, cluster, node string) []v1.FindingKind {
	var out []v1.FindingKind
	for f := range e.Store().View().FindingsOn(nil, cluster, node) {
		out = append(out, f.Finding.Kind)
	}
	return out
}

func TestDeletedNodeIsForgottenOnlyOnceItsAgentExpired(t *testing.T) {
	var forgotten []string
	e := newEngine(t, Config{Forgotten: func(c, n, reason string) { forgotten = append(forgotten, c+"/"+n+" "+reason) }})
	for _, n := range []string{"live", "gone"} {
		if err := e.UpsertNodeAPI("c", n, &state.NodeAPI{KubeletVersion: "v1.30.0"}); err != nil {
			t.Fatal(err)
		}
		report(t, e, "c", n)
	}
	if err := e.SetAgentState("c", "gone", v1.AgentState_AGENT_STATE_EXPIRED); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"live", "gone"} {
		if err := e.DeleteNodeAPI("c", n); err != nil {
			t.Fatal(err)
		}
	}
	if nodeRow(e, "c", "live") == nil || nodeRow(e, "c", "live").Agent == nil {
		t.Fatal("a reporting node's agent rows were dropped with its Node")
	}
	if nodeRow(e, "c", "gone") != nil {
		t.Fatal("an expired node deleted from the API is still there")
	}
	if ps, _ := e.Store().View().Processes(nil, "c", "gone"); ps != nil {
		t.Fatal("its processes are still there")
	}
	if len(forgotten) != 1 || forgotten[0] != "c/gone "+ReasonNodeDeleted {
		t.Fatalf("told %v", forgotten)
	}
}

func TestForgetNodeKeepsNodesTheAPIHas(t *testing.T) {
	e := newEngine(t, Config{})
	if err := e.UpsertNodeAPI("c", "in-api", &state.NodeAPI{}); err != nil {
		t.Fatal(err)
	}
	report(t, e, "c", "in-api")
	report(t, e, "c", "host")
	for _, n := range []string{"in-api", "host"} {
		if err := e.SetAgentState("c", n, v1.AgentState_AGENT_STATE_EXPIRED); err != nil {
			t.Fatal(err)
		}
	}
	if gone, err := e.ForgetNode("c", "in-api"); err != nil || gone {
		t.Fatalf("forgot a node the API has: %v %v", gone, err)
	}
	if gone, err := e.ForgetNode("c", "host"); err != nil || !gone || nodeRow(e, "c", "host") != nil {
		t.Fatalf("an expired host with no Node was not forgotten: %v %v", gone, err)
	}
	report(t, e, "c", "fresh")
	if gone, _ := e.ForgetNode("c", "fresh"); gone {
		t.Fatal("forgot a reporting node")
	}
}

func TestNoAgentFindingsWaitForTheGracePeriod(t *testing.T) {
	e := newEngine(t, Config{AwaitAgents: true})
	if err := e.UpsertNodeAPI("c", "quiet", &state.NodeAPI{}); err != nil {
		t.Fatal(err)
	}
	report(t, e, "c", "talker")
	if f := findingsOf(e, "c", "quiet"); len(f) != 0 {
		t.Fatalf("findings before the grace period ended: %v", f)
	}
	if err := e.SettleAgents(); err != nil {
		t.Fatal(err)
	}
	if f := findingsOf(e, "c", "quiet"); len(f) != 1 || f[0] != v1.FindingKind_FINDING_KIND_NODE_WITHOUT_AGENT {
		t.Fatalf("after the grace period: %v", f)
	}
}

func TestDeltaLimits(t *testing.T) {
	e := newEngine(t, Config{})
	report(t, e, "c", "n")
	big := &v1.Delta{UpsertedProcesses: []*v1.Process{{Pid: 90001, Argv: []string{string(make([]byte, 5000))}}}}
	err := e.ApplyDelta("c", "n", big, time.Now(), 2, Limits{MaxBytes: 1000})
	if le, ok := err.(*LimitError); !ok || le.What != "bytes" {
		t.Fatalf("got %v, want a bytes LimitError", err)
	}
	err = e.ApplyDelta("c", "n", big, time.Now(), 2, Limits{MaxProcesses: 20})
	if le, ok := err.(*LimitError); !ok || le.What != "processes" {
		t.Fatalf("got %v, want a processes LimitError", err)
	}
	before, _ := e.Store().View().Processes(nil, "c", "n")
	if len(before.Procs) != 20 {
		t.Fatalf("a refused delta changed the node: %d processes", len(before.Procs))
	}
	// Bytes are counted across deltas, by what each adds and removes.
	rm := &v1.Delta{RemovedProcesses: []*v1.ProcessKey{{Pid: before.Procs[0].Pid, StartTime: before.Procs[0].StartTime}}}
	if err := e.ApplyDelta("c", "n", rm, time.Now(), 2, Limits{}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.Store().View().Processes(nil, "c", "n")
	if after.Bytes != sizeOf(after.Procs) {
		t.Fatalf("counted %d bytes, the records have %d", after.Bytes, sizeOf(after.Procs))
	}
}
