package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// grpcurl runs every RPC of the API with the real grpcurl, through server
// reflection, as the README shows.
func grpcurl(t *testing.T, e *env) {
	run := func(args ...string) string {
		t.Helper()
		out, err := grpcurlRun(e.bins.Grpcurl, args...)
		if err != nil {
			t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	a := e.agg.Addr
	list := run(a, "list")
	for _, s := range []string{"kubeatlas.v1.AgentService", "kubeatlas.v1.InventoryService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(list, s) {
			t.Errorf("list lacks %s:\n%s", s, list)
		}
	}
	if d := run(a, "describe", "kubeatlas.v1.InventoryService"); !strings.Contains(d, "ListComponents lists component instances") {
		t.Errorf("describe shows no comments:\n%s", d)
	}
	if d := run(a, "describe", "kubeatlas.v1.ListComponentsRequest"); !strings.Contains(d, "A CEL expression over each component") {
		t.Errorf("describe shows no comment for filter:\n%s", d)
	}
	if out, err := grpcurlRun(e.bins.Grpcurl, "-d", `{"filter":"component.nope"}`, a, "kubeatlas.v1.InventoryService/ListComponents"); err == nil ||
		!strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "undefined field 'nope'") {
		t.Errorf("a bad filter: %v\n%s", err, out)
	}
	if d := run(a, "describe", "kubeatlas.v1.DeploymentKind"); !strings.Contains(d, "DEPLOYMENT_KIND_STATIC_POD") {
		t.Errorf("describe enum:\n%s", d)
	}
	if h := run(a, "grpc.health.v1.Health/Check"); !strings.Contains(h, "SERVING") {
		t.Errorf("health: %s", h)
	}
	checks := []struct {
		method, body, want string
	}{
		{"ListClusters", `{}`, `"name": "seed"`},
		{"GetCluster", `{"name":"seed"}`, `CLUSTER_MODE_STATIC_POD`},
		{"ListNodes", `{"cluster":"seed"}`, `"name": "zzk-5"`},
		{"GetNode", `{"cluster":"seed","name":"test"}`, `"component": "kube-apiserver"`},
		{"ListComponents", `{"component":"kube-proxy","how":"DEPLOYMENT_KIND_DAEMONSET"}`, `"name": "kube-proxy"`},
		{"ListProcesses", `{"cluster":"seed","components_only":true}`, `"kube-scheduler"`},
		{"ListManifests", `{"cluster":"seed"}`, `"mirrorPod": "kube-system/etcd-test"`},
		{"ListFindings", `{"min_severity":"SEVERITY_WARNING"}`, `FINDING_KIND_HIGH_RESTART_COUNT`},
		// A CEL filter, and the datastore the cluster answers with.
		{"ListComponents", `{"filter":"component.implementation == \"flannel\" && component.node == \"zzk-3\""}`, `"node": "zzk-3"`},
		{"ListClusters", `{"filter":"cluster.datastore.implementation == \"etcd\""}`, `"implementation": "etcd"`},
	}
	for _, c := range checks {
		out := run("-d", c.body, a, "kubeatlas.v1.InventoryService/"+c.method)
		if !strings.Contains(out, c.want) {
			t.Errorf("%s %s: no %s in:\n%.2000s", c.method, c.body, c.want, out)
		}
	}
	// Watch streams the current state, then SYNCED; grpcurl stops at its deadline.
	// grpcurl exits non-zero when -max-time ends the stream.
	w, _ := grpcurlRun(e.bins.Grpcurl, "-max-time", "3", "-d", `{"cluster":"seed","component":"etcd"}`, a, "kubeatlas.v1.InventoryService/Watch")
	if !strings.Contains(w, "WATCH_EVENT_TYPE_ADDED") || !strings.Contains(w, "WATCH_EVENT_TYPE_SYNCED") {
		t.Errorf("watch:\n%s", w)
	}
}

func grpcurlRun(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-plaintext"}, args...)...).CombinedOutput()
	return string(out), err
}
