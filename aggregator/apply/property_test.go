package apply_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/kube"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/internal/synth"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

const seedDir = "../../examples/seed-cluster"

// world is the reference cluster as engine inputs.
type world struct {
	uid       string
	workloads []*state.Workload
	nodes     map[string]*state.NodeAPI
	pods      []*state.Pod
	invs      map[string]*v1.NodeInventory
}

func loadWorld(t *testing.T) *world {
	t.Helper()
	objs, err := kube.ReadObjects(filepath.Join(seedDir, "api"))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{nodes: map[string]*state.NodeAPI{}, invs: map[string]*v1.NodeInventory{}}
	for _, ns := range objs.Namespaces {
		if ns.Name == "kube-system" {
			w.uid = string(ns.UID)
		}
	}
	for _, o := range objs.Workloads {
		w.workloads = append(w.workloads, kube.WorkloadRow("c", o))
	}
	for _, n := range objs.Nodes {
		w.nodes[n.Name] = kube.NodeAPI(n)
	}
	for _, p := range objs.Pods {
		w.pods = append(w.pods, kube.PodRow("c", p))
	}
	entries, err := os.ReadDir(filepath.Join(seedDir, "nodes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		inv, err := bundle.ReadSnapshot(filepath.Join(seedDir, "nodes", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Clocks are not what this test is about: without them both paths
		// agree on skew by construction.
		inv.Identity.WallClock = nil
		w.invs[inv.Identity.NodeName] = inv
	}
	return w
}

var seenAt = time.Unix(1_700_000_000, 0)

func inventory(node string, inv *v1.NodeInventory, procs []*v1.Process, mans []*v1.StaticPodManifest) apply.Inventory {
	return apply.Inventory{Cluster: "c", Node: node, Identity: inv.Identity, Kubelet: inv.Kubelet, Processes: procs, Manifests: mans,
		State: v1.AgentState_AGENT_STATE_REPORTING, SeenAt: seenAt, Reference: seenAt}
}

// fromScratch loads the world's final state in one fixed order.
func fromScratch(t *testing.T, w *world) *apply.Applier {
	t.Helper()
	e := synth.NewApplier()
	must(t, e.SetAPI("c", w.uid, "", true))
	for _, wl := range w.workloads {
		must(t, e.UpsertWorkload(wl))
	}
	for _, n := range sortedKeys(w.nodes) {
		must(t, e.UpsertNodeAPI("c", n, w.nodes[n]))
	}
	for _, p := range w.pods {
		must(t, e.UpsertPod(p))
	}
	for _, n := range sortedKeys(w.invs) {
		inv := w.invs[n]
		must(t, e.ApplyInventory(inventory(n, inv, inv.Processes, inv.Manifests)))
	}
	return e
}

// incrementally reaches the same final state by a random path: events in a
// random order, detours (a pod that changes and comes back, a node deleted
// and added again, a workload first seen wrong), and inventories that start
// from a random part of the node and reach the rest by deltas.
func incrementally(t *testing.T, w *world, r *rand.Rand) *apply.Applier {
	t.Helper()
	e := synth.NewApplier()
	var events []func()
	add := func(steps ...func()) {
		// Steps of one object keep their order; objects interleave.
		events = append(events, func() {
			for _, s := range steps {
				s()
			}
		})
	}
	// The API connects at a random moment.
	add(func() { must(t, e.SetAPI("c", w.uid, "", true)) })
	for _, wl := range w.workloads {
		wrong := *wl
		wrong.Images = []string{"wrong:0"}
		add(func() { must(t, e.UpsertWorkload(&wrong)) }, func() { must(t, e.UpsertWorkload(wl)) })
	}
	for _, n := range sortedKeys(w.nodes) {
		api := w.nodes[n]
		if r.IntN(3) == 0 {
			add(func() { must(t, e.UpsertNodeAPI("c", n, api)) }, func() { must(t, e.DeleteNodeAPI("c", n)) }, func() { must(t, e.UpsertNodeAPI("c", n, api)) })
		} else {
			add(func() { must(t, e.UpsertNodeAPI("c", n, api)) })
		}
	}
	for _, p := range w.pods {
		switch r.IntN(3) {
		case 0:
			changed := *p
			changed.Phase = "Pending"
			changed.Containers = nil
			add(func() { must(t, e.UpsertPod(&changed)) }, func() { must(t, e.UpsertPod(p)) })
		case 1:
			add(func() { must(t, e.UpsertPod(p)) }, func() { must(t, e.DeletePod("c", p.Namespace, p.Name)) }, func() { must(t, e.UpsertPod(p)) })
		default:
			add(func() { must(t, e.UpsertPod(p)) })
		}
	}
	for _, n := range sortedKeys(w.invs) {
		inv := w.invs[n]
		// Start from a random part of the node, plus a process that goes away.
		var part []*v1.Process
		for _, p := range inv.Processes {
			if r.IntN(2) == 0 {
				part = append(part, p)
			}
		}
		stray := &v1.Process{Pid: 999_999, StartTime: timestamppb.New(seenAt), Argv: []string{"/usr/bin/stray"}}
		part = append(part, stray)
		var mans []*v1.StaticPodManifest
		if len(inv.Manifests) > 0 && r.IntN(2) == 0 {
			mans = inv.Manifests[:len(inv.Manifests)/2]
		}
		have := map[int32]bool{}
		for _, p := range part {
			have[p.Pid] = true
		}
		d := &v1.Delta{RemovedProcesses: []*v1.ProcessKey{{Pid: stray.Pid, StartTime: stray.StartTime}}}
		for _, p := range inv.Processes {
			if !have[p.Pid] {
				d.UpsertedProcesses = append(d.UpsertedProcesses, p)
			}
		}
		d.UpsertedManifests = inv.Manifests
		add(func() { must(t, e.ApplyInventory(inventory(n, inv, part, mans))) },
			func() { must(t, e.ApplyDelta("c", n, d, seenAt, 2, apply.Limits{})) })
	}
	r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	for _, ev := range events {
		ev()
	}
	return e
}

// TestIncrementalEqualsFromScratch: any path of API events and agent
// snapshots and deltas to the reference cluster's final state gives the
// same instances, findings and cluster answer as loading that state at once.
func TestIncrementalEqualsFromScratch(t *testing.T) {
	w := loadWorld(t)
	want := rows(fromScratch(t, w))
	if len(want) < 30 {
		t.Fatalf("the reference cluster gave only %d rows", len(want))
	}
	for seed := uint64(1); seed <= 25; seed++ {
		got := rows(incrementally(t, w, rand.New(rand.NewPCG(seed, seed*7))))
		if diff := compare(want, got); diff != "" {
			t.Fatalf("seed %d: incremental differs from scratch:\n%s", seed, diff)
		}
	}
}

// rows are the engine's answers, each as a comparable string.
func rows(e *apply.Applier) map[string]proto.Message {
	out := map[string]proto.Message{}
	view := e.Store().View()
	for c := range view.Components(nil, state.ByCluster, "") {
		out["component "+c.ID()] = c.Instance()
	}
	for f := range view.Findings(nil) {
		out["finding "+f.ID] = f.Finding
	}
	for c := range view.Clusters(nil, "") {
		out["cluster "+c.Name] = &v1.Cluster{Name: c.Name, Mode: c.Mode, ModeEvidence: c.ModeEvidence, ControlPlaneNodes: c.ControlPlaneNodes,
			KubernetesVersion: c.APIServerVersion, ApiConnected: c.APIConnected}
	}
	return out
}

func compare(want, got map[string]proto.Message) string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case !proto.Equal(w, g):
			diffs = append(diffs, fmt.Sprintf("differs %s:\n  want %v\n  got  %v", k, w, g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
