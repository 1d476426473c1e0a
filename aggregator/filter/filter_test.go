package filter

import (
	"strings"
	"testing"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func flannel() *v1.ComponentInstance {
	return &v1.ComponentInstance{Cluster: "seed", Node: "zzk-1", Component: "cni", Implementation: "flannel",
		How: v1.DeploymentKind_DEPLOYMENT_KIND_DAEMONSET, Owner: &v1.ObjectRef{Kind: "DaemonSet", Namespace: "kube-flannel", Name: "kube-flannel-ds"},
		Flags: []*v1.Flag{{Name: "ip-masq", Values: []string{"true"}}, {Name: "iface", Values: []string{"eth0", "eth1"}}}, Pid: 77}
}

func TestComponentExpressions(t *testing.T) {
	in := flannel()
	for expr, want := range map[string]bool{
		`component.implementation == "flannel"`:                               true,
		`component.how == "DEPLOYMENT_KIND_DAEMONSET"`:                        true,
		`component.owner.kind == "DaemonSet" && component.pid > 10`:           true,
		`component.flags["ip-masq"] == "true"`:                                true,
		`component.flags["iface"] == "eth0,eth1"`:                             true,
		`component.flags["anonymous-auth"] == "true"`:                         false, // a missing key: no match
		`"anonymous-auth" in component.flags`:                                 false,
		`component.flags[?"anonymous-auth"].orValue("true") == "true"`:        true,
		`component.implementation.startsWith("flan")`:                         true,
		`component.node in ["zzk-1", "zzk-2"] && component.cluster == "seed"`: true,
		`component.cluster == "other"`:                                        false,
	} {
		f, err := Compile(Components, expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		got, err := f.Component(in)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", expr, got, err, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for expr, want := range map[string]string{
		`component.implementaton == "flannel"`: "undefined field 'implementaton'",
		`component.pid == "x"`:                 "no matching overload",
		`component.implementation`:             "not a bool",
		`node.name == "a"`:                     "undeclared reference to 'node'",
		`component.implementation == `:         "Syntax error",
		strings.Repeat("a", MaxBytes+1):        "over the limit",
	} {
		_, err := Compile(Components, expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: %v, want %q", expr, err, want)
		}
	}
	// Errors say where: CEL's line:column.
	_, err := Compile(Components, `component.cluster == "a" && component.nope`)
	if err == nil || !strings.Contains(err.Error(), "1:38") {
		t.Errorf("no position in %v", err)
	}
}

func TestCostIsBounded(t *testing.T) {
	f, err := Compile(Components, `[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(g, component.implementation + string(a+b+c+d+e+g) != ""))))))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Component(flannel()); err != ErrTooCostly {
		t.Fatalf("a million-step expression: %v", err)
	}
}

func TestPushDown(t *testing.T) {
	for expr, want := range map[string]struct {
		pushed string
		rest   bool
	}{
		`component.component == "etcd"`:                                      {"component=etcd", false},
		`component.cluster == "prod" && "cni" == component.component`:        {"cluster=prod component=cni", false},
		`component.cluster == "prod" && component.flags["x"] == "y"`:         {"cluster=prod", true},
		`component.cluster == "prod" || component.cluster == "dev"`:          {"", true},
		`component.how == "DEPLOYMENT_KIND_STATIC_POD" && component.pid > 1`: {"how=DEPLOYMENT_KIND_STATIC_POD", true},
		`component.image == "x"`:                                             {"", true},
	} {
		f, err := Compile(Components, expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		var got []string
		for _, k := range Indexed {
			if v, ok := f.Pushed[k]; ok {
				got = append(got, k+"="+v)
			}
		}
		if strings.Join(got, " ") != want.pushed || (f.prg != nil) != want.rest {
			t.Errorf("%s: pushed %v, rest %v; want %q, %v", expr, got, f.prg != nil, want.pushed, want.rest)
		}
	}
	// The rest is still the expression's: pushed equalities plus the rest
	// give the same answer as the whole.
	f, _ := Compile(Components, `component.cluster == "seed" && component.flags["ip-masq"] == "true"`)
	if ok, err := f.Component(flannel()); !ok || err != nil {
		t.Fatalf("rest: %v %v", ok, err)
	}
}

func TestOtherKinds(t *testing.T) {
	check := func(kind Kind, expr string, match func(*Filter) (bool, error), want bool) {
		t.Helper()
		f, err := Compile(kind, expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got, err := match(f); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", expr, got, err, want)
		}
	}
	check(Clusters, `cluster.mode == "CLUSTER_MODE_STATIC_POD" && cluster.datastore.implementation == "etcd"`, func(f *Filter) (bool, error) {
		return f.Cluster(&v1.Cluster{Name: "seed", Mode: v1.ClusterMode_CLUSTER_MODE_STATIC_POD, Datastore: &v1.Datastore{Implementation: "etcd"}})
	}, true)
	check(Nodes, `node.agent_state == "AGENT_STATE_REPORTING" && "control-plane" in node.roles`, func(f *Filter) (bool, error) {
		return f.Node(&v1.Node{Name: "test", AgentState: v1.AgentState_AGENT_STATE_REPORTING, Roles: []string{"control-plane"}})
	}, true)
	check(Processes, `process.argv.exists(a, a.startsWith("--anonymous-auth"))`, func(f *Filter) (bool, error) {
		return f.Process("c", "n", &v1.Process{Pid: 1, Argv: []string{"kube-apiserver", "--anonymous-auth=true"}})
	}, true)
	check(Manifests, `manifest.images.exists(i, i.contains("etcd"))`, func(f *Filter) (bool, error) {
		return f.Manifest("c", "n", "", &v1.StaticPodManifest{Path: "/e.yaml", Containers: []*v1.ManifestContainer{{Image: "registry.k8s.io/etcd:3.5"}}})
	}, true)
	check(Findings, `finding.severity == "SEVERITY_CRITICAL"`, func(f *Filter) (bool, error) {
		return f.Finding(&v1.Finding{Severity: v1.Severity_SEVERITY_WARNING})
	}, false)
	// Watch: the other kind's variable is an empty row.
	check(Events, `component.implementation == "flannel"`, func(f *Filter) (bool, error) { return f.Event(nil, &v1.Finding{Id: "x"}) }, false)
	check(Events, `component.implementation == "flannel" || finding.kind == "FINDING_KIND_CLOCK_SKEW"`, func(f *Filter) (bool, error) {
		return f.Event(nil, &v1.Finding{Kind: v1.FindingKind_FINDING_KIND_CLOCK_SKEW})
	}, true)
}
