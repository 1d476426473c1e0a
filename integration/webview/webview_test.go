package webview

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kubeatlas/kubeatlas/integration/harness"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestMain(m *testing.M) { harness.RunTests(m) }

var seedDir = filepath.Join("..", "..", "examples", "seed-cluster")

// seed is the reference cluster, live: a real API server loaded with its
// objects, its six nodes simulated with real processes in real cgroups, each
// with a real agent, and an aggregator serving the web view.
type seed struct {
	bins  harness.Binaries
	agg   *harness.Aggregator
	ui    string // the web view's base URL
	nodes map[string]*harness.Node
}

func startSeed(t *testing.T) *seed {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the simulated nodes need root for namespaces and cgroups")
	}
	s := &seed{bins: harness.Build(t)}
	cg := harness.TestCgroups(t, "webview")
	cp := harness.StartControlPlane(t, s.bins)
	api, err := harness.LoadAPI(context.Background(), cp.Client, filepath.Join(seedDir, "api"))
	if err != nil {
		t.Fatal(err)
	}
	uiAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	s.ui = "http://" + uiAddr
	s.agg = harness.StartAggregator(t, s.bins, "--kube", "seed="+cp.Kubeconfig, "--ui-addr", uiAddr)
	s.nodes, _ = harness.StartSeed(t, s.bins, cg, seedDir, api, func(string) string { return s.agg.Addr })
	// Every node reports and the static pods are joined before the page looks.
	err = harness.Eventually(60*time.Second, 250*time.Millisecond, func() error {
		resp, err := s.agg.Client.GetCluster(context.Background(), &v1.GetClusterRequest{Name: "seed"})
		if err != nil {
			return err
		}
		if c := resp.Cluster; c.ReportingNodeCount != 6 || c.Mode != v1.ClusterMode_CLUSTER_MODE_STATIC_POD {
			return fmt.Errorf("%d of 6 nodes report, mode %v", c.ReportingNodeCount, c.Mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// answerCells is the reference answer (shared/reference/seed-cluster.md) as
// map cells: "node|component" -> how it runs there, with a count when more
// than one instance does.
func answerCells() map[string]string {
	all := []string{"test", "zzk-1", "zzk-2", "zzk-3", "zzk-4", "zzk-5"}
	cells := map[string]string{}
	for _, c := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"} {
		cells["test|"+c] = "DEPLOYMENT_KIND_STATIC_POD"
	}
	for _, n := range all {
		cells[n+"|kubelet"] = "DEPLOYMENT_KIND_HOST_PROCESS"
		cells[n+"|kube-proxy"] = "DEPLOYMENT_KIND_DAEMONSET"
		cells[n+"|cni"] = "DEPLOYMENT_KIND_DAEMONSET"
		// containerd and dockerd, both host processes.
		cells[n+"|container-runtime"] = "DEPLOYMENT_KIND_HOST_PROCESS×2"
	}
	cells["test|cluster-dns"] = "DEPLOYMENT_KIND_DEPLOYMENT×2"
	return cells
}

// checkSeedMap waits for the seed cluster's map and compares its cells with
// the reference answer.
func checkSeedMap(t *testing.T, b *Browser, what string) {
	t.Helper()
	if _, err := b.WaitReady("cluster", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := gotCells(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffCells(got, answerCells()); d != "" {
		t.Errorf("%s: the map differs from the reference answer:\n%s", what, d)
	}
}

// gotCells reads the map's cells from the page.
func gotCells(b *Browser) (map[string]string, error) {
	rows, err := Eval[[][]string](b, `[...document.querySelectorAll('td[data-cell]')].map(td =>
		[td.dataset.cell, [...td.querySelectorAll('[data-how]')].map(s => s.dataset.how + (s.textContent.includes('×') ? '×' + s.textContent.split('×')[1] : '')).join(',')])`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r[0]] = r[1]
	}
	return out, nil
}

// apiCells is the same map drawn from the gRPC answer.
func apiCells(ctx context.Context, inv v1.InventoryServiceClient, cluster string) (map[string]string, error) {
	resp, err := inv.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: cluster, PageSize: 1000})
	if err != nil {
		return nil, err
	}
	counts := map[string]map[string]int{}
	for _, in := range resp.Components {
		k := in.Node + "|" + in.Component
		if counts[k] == nil {
			counts[k] = map[string]int{}
		}
		counts[k][in.How.String()]++
	}
	out := map[string]string{}
	for k, hows := range counts {
		var parts []string
		for h, n := range hows {
			if n > 1 {
				h += "×" + strconv.Itoa(n)
			}
			parts = append(parts, h)
		}
		sort.Strings(parts)
		out[k] = strings.Join(parts, ",")
	}
	return out, nil
}

func diffCells(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, fmt.Sprintf("%s: page %q, want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: page %q, not in the answer", k, v))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// TestReferenceCluster walks the page over the live reference cluster: the
// map against the answer, a cell's evidence chain, the keyboard, live
// updates, a stale agent, the fleet, a node and the findings.
func TestReferenceCluster(t *testing.T) {
	s := startSeed(t)
	ctx := context.Background()
	b := NewBrowser(t)

	t.Run("map matches the answer", func(t *testing.T) {
		if err := b.Open(s.ui + "/ui/clusters/seed"); err != nil {
			t.Fatal(err)
		}
		ms, err := b.WaitReady("cluster", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the seed map drew %d ms after navigation", ms)
		b.Screenshot("seed-map")
		got, err := gotCells(b)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffCells(got, answerCells()); d != "" {
			t.Errorf("the map differs from the reference answer:\n%s", d)
		}
		api, err := apiCells(ctx, s.agg.Client, "seed")
		if err != nil {
			t.Fatal(err)
		}
		if d := diffCells(got, api); d != "" {
			t.Errorf("the map differs from ListComponents:\n%s", d)
		}
		// Control-plane nodes come first, under their role.
		heads, err := Eval[[]string](b, `[...document.querySelectorAll('table.map th.node')].map(th => th.dataset.node)`)
		if err != nil || len(heads) != 6 || heads[0] != "test" {
			t.Errorf("node columns %v (%v); want test first, then the five workers", heads, err)
		}
		legend, err := Eval[string](b, `document.querySelector('.legend').innerText`)
		if err != nil || !strings.Contains(legend, "static pod") || !strings.Contains(legend, "DaemonSet") || !strings.Contains(legend, "host process") {
			t.Errorf("legend %q (%v)", legend, err)
		}
	})

	t.Run("a cell opens its evidence chain", func(t *testing.T) {
		resp, err := s.agg.Client.ListComponents(ctx, &v1.ListComponentsRequest{Cluster: "seed", Node: "test", Component: "kube-apiserver", View: v1.ComponentView_COMPONENT_VIEW_FULL})
		if err != nil || len(resp.Components) != 1 {
			t.Fatalf("kube-apiserver on test: %v %v", resp, err)
		}
		want := resp.Components[0]
		if err := b.Do(30*time.Second, chromedp.Click(chromedp.CSS(`td[data-cell="test|kube-apiserver"] a`))); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("instance", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		b.Screenshot("kube-apiserver-on-test")
		url, _ := Eval[string](b, `location.pathname`)
		if url != "/ui/clusters/seed/nodes/test/components/kube-apiserver" {
			t.Errorf("URL %s does not name the instance", url)
		}
		chain, err := Eval[[]string](b, `[...document.querySelectorAll('.chain li:not(.arrow)')].map(li => li.innerText.replace(/\s+/g, ' '))`)
		if err != nil {
			t.Fatal(err)
		}
		wantChain := []string{
			"manifest " + want.ManifestPath,
			"mirror pod " + want.Pod.Namespace + "/" + want.Pod.Name,
			"container " + want.Container + " " + want.ContainerId[:12],
			"PID " + strconv.Itoa(int(want.Pid)),
		}
		if strings.Join(chain, " ⇄ ") != strings.Join(wantChain, " ⇄ ") {
			t.Errorf("evidence chain\n got %q\nwant %q", chain, wantChain)
		}
		if want.ManifestPath != "/etc/kubernetes/manifests/kube-apiserver.yaml" || want.Pid == 0 {
			t.Errorf("the answer itself is off: %v", want)
		}
		flags, err := Eval[[]string](b, `[...document.querySelectorAll('table.flags tbody tr')].map(tr => tr.cells[0].innerText + '=' + tr.cells[1].innerText)`)
		if err != nil {
			t.Fatal(err)
		}
		if len(flags) != len(want.Flags) {
			t.Errorf("%d flags on the page, %d in the answer", len(flags), len(want.Flags))
		}
		for i, f := range want.Flags {
			v := strings.Join(f.Values, ", ")
			if f.Redacted {
				v = "redacted"
			}
			if i < len(flags) && flags[i] != "--"+f.Name+"="+v {
				t.Errorf("flag %d: page %q, answer --%s=%s", i, flags[i], f.Name, v)
			}
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		// Back to the map, then a cell reached by focus and opened with Enter.
		if err := b.Do(30*time.Second, chromedp.NavigateBack()); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("cluster", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Do(30*time.Second, chromedp.Focus(chromedp.CSS(`td[data-cell="zzk-3|kube-proxy"] a`)), chromedp.KeyEvent(kb.Enter)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("instance", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		h1, _ := Eval[string](b, `document.querySelector('h1').innerText`)
		if h1 != "kube-proxy on zzk-3" {
			t.Errorf("Enter on a focused cell opened %q", h1)
		}
		// After a change of view the focus is on the content, so the next
		// Tab stays in it rather than starting over at the header.
		if err := b.Do(10*time.Second, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		inMain, _ := Eval[bool](b, `document.getElementById('main').contains(document.activeElement) && document.activeElement.tagName === 'A'`)
		if !inMain {
			focused, _ := Eval[string](b, `document.activeElement.outerHTML.slice(0, 120)`)
			t.Errorf("Tab after opening an instance focused %s, not a link in the content", focused)
		}
	})

	t.Run("follows changes without reloading", func(t *testing.T) {
		if err := b.Open(s.ui + "/ui/clusters/seed"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("cluster", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := Eval[int](b, `window.kubeatlasMarker = 42`); err != nil {
			t.Fatal(err)
		}
		// An etcd appears on zzk-4 as a host daemon.
		s.nodes["zzk-4"].Start(t, "extra-etcd", strings.Fields("etcd --name zzk-4 --data-dir /var/lib/etcd --listen-client-urls https://127.0.0.1:2379"), "system.slice/etcd.service")
		err := harness.Eventually(60*time.Second, 250*time.Millisecond, func() error {
			got, err := gotCells(b)
			if err != nil {
				return err
			}
			if got["zzk-4|etcd"] != "DEPLOYMENT_KIND_HOST_PROCESS" {
				return fmt.Errorf("zzk-4|etcd is %q", got["zzk-4|etcd"])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		marker, _ := Eval[int](b, `window.kubeatlasMarker || 0`)
		if marker != 42 {
			t.Error("the page reloaded instead of updating")
		}
		b.Screenshot("etcd-appears-on-zzk-4")
		s.nodes["zzk-4"].Stop(t, "extra-etcd")
		err = harness.Eventually(60*time.Second, 250*time.Millisecond, func() error {
			got, err := gotCells(b)
			if err != nil {
				return err
			}
			if v, ok := got["zzk-4|etcd"]; ok {
				return fmt.Errorf("zzk-4|etcd is still %q", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a stale agent is marked", func(t *testing.T) {
		s.nodes["zzk-5"].StopAgent(t)
		err := harness.Eventually(90*time.Second, 500*time.Millisecond, func() error {
			stale, err := Eval[bool](b, `!!document.querySelector('th.node.stale[data-node="zzk-5"]')`)
			if err != nil {
				return err
			}
			if !stale {
				return fmt.Errorf("zzk-5's column is not marked stale")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b.Screenshot("zzk-5-stale")
		others, _ := Eval[int](b, `document.querySelectorAll('th.node.stale').length`)
		if others != 1 {
			t.Errorf("%d node columns marked stale, want zzk-5's alone", others)
		}
	})

	t.Run("fleet", func(t *testing.T) {
		if err := b.Open(s.ui + "/ui/"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("fleet", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		b.Screenshot("fleet")
		row, err := Eval[[]string](b, `[...document.querySelector('tr[data-cluster="seed"]').cells].map(c => c.innerText.trim())`)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.agg.Client.ListFindings(ctx, &v1.ListFindingsRequest{Cluster: "seed"})
		if err != nil {
			t.Fatal(err)
		}
		sev := map[v1.Severity]int{}
		for _, f := range resp.Findings {
			sev[f.Severity]++
		}
		cl, err := s.agg.Client.GetCluster(ctx, &v1.GetClusterRequest{Name: "seed"})
		if err != nil {
			t.Fatal(err)
		}
		agents := fmt.Sprintf("%d/%d", cl.Cluster.ReportingNodeCount, cl.Cluster.NodeCount)
		if len(row) < 11 || !strings.HasPrefix(row[0], "seed") || row[1] != "static-pod" || row[3] != "6" || !strings.HasPrefix(row[4], agents) || row[8] != cl.Cluster.KubernetesVersion {
			t.Errorf("fleet row %q; want seed, static-pod, 6 nodes, %s agents, Kubernetes %s", row, agents, cl.Cluster.KubernetesVersion)
		}
		for i, s := range []v1.Severity{v1.Severity_SEVERITY_CRITICAL, v1.Severity_SEVERITY_WARNING, v1.Severity_SEVERITY_INFO} {
			if len(row) > 5+i && !strings.HasSuffix(row[5+i], strconv.Itoa(sev[s])) {
				t.Errorf("%v findings: page %q, answer %d", s, row[5+i], sev[s])
			}
		}
	})

	t.Run("node", func(t *testing.T) {
		if err := b.Open(s.ui + "/ui/clusters/seed/nodes/test"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("node", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		b.Screenshot("node-test")
		got, err := s.agg.Client.GetNode(ctx, &v1.GetNodeRequest{Cluster: "seed", Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		comps, _ := Eval[int](b, `document.querySelectorAll('#components tbody tr').length`)
		if comps != len(got.Components) {
			t.Errorf("%d components on the page, %d in the answer", comps, len(got.Components))
		}
		procs, _ := Eval[int](b, `document.querySelectorAll('#processes tbody tr').length`)
		if want := min(50, int(got.Node.ProcessCount)); procs != want {
			t.Errorf("%d processes on the first page, want %d", procs, want)
		}
	})

	t.Run("findings", func(t *testing.T) {
		if err := b.Open(s.ui + `/ui/findings?cluster=seed&filter=` + strings.ReplaceAll(`finding.node == "zzk-5"`, " ", "%20")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("findings", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		b.Screenshot("findings-zzk-5")
		resp, err := s.agg.Client.ListFindings(ctx, &v1.ListFindingsRequest{Cluster: "seed", Filter: `finding.node == "zzk-5"`})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := Eval[[]string](b, `[...document.querySelectorAll('#findings tbody tr[data-finding]')].map(tr => tr.dataset.finding)`)
		var want []string
		for _, f := range resp.Findings {
			want = append(want, f.Id)
		}
		sort.Strings(rows)
		sort.Strings(want)
		if len(want) == 0 || strings.Join(rows, ",") != strings.Join(want, ",") {
			t.Errorf("findings on the page %v, answer %v", rows, want)
		}
		// A filter that does not compile is an error on the page, not an empty list.
		if err := b.Open(s.ui + `/ui/findings?filter=finding.nod%20==%201`); err != nil {
			t.Fatal(err)
		}
		err = harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			msg, err := Eval[string](b, `document.body.dataset.error || ''`)
			if err != nil || msg == "" {
				return fmt.Errorf("no error shown (%v)", err)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		// The severity and kind selectors, as a user sets them: the URL
		// names the filter, and the rows are the API's.
		if err := b.Open(s.ui + "/ui/findings"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitReady("findings", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := Eval[bool](b, `document.querySelector('select[name="severity"]').value = 'SEVERITY_WARNING';
			document.querySelector('select[name="kind"]').value = 'FINDING_KIND_CLOCK_SKEW'; true`); err != nil {
			t.Fatal(err)
		}
		if err := b.Do(30*time.Second, chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`))); err != nil {
			t.Fatal(err)
		}
		err = harness.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			url, _ := Eval[string](b, `location.search`)
			if !strings.Contains(url, "severity=SEVERITY_WARNING") || !strings.Contains(url, "kind=FINDING_KIND_CLOCK_SKEW") {
				return fmt.Errorf("the URL does not name the filter: %s", url)
			}
			if ready, _ := Eval[bool](b, `!!document.body.dataset.ready`); !ready {
				return fmt.Errorf("not drawn yet")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		kinds, err := s.agg.Client.ListFindings(ctx, &v1.ListFindingsRequest{MinSeverity: v1.Severity_SEVERITY_WARNING, Kind: v1.FindingKind_FINDING_KIND_CLOCK_SKEW})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ = Eval[[]string](b, `[...document.querySelectorAll('#findings tbody tr[data-finding]')].map(tr => tr.dataset.finding)`)
		want = want[:0]
		for _, f := range kinds.Findings {
			want = append(want, f.Id)
		}
		sort.Strings(rows)
		sort.Strings(want)
		if strings.Join(rows, ",") != strings.Join(want, ",") {
			t.Errorf("warning clock-skew findings on the page %v, answer %v", rows, want)
		}
	})

	t.Run("a page left closes its streams", func(t *testing.T) {
		// Every view holds a Watch stream. A page the browser keeps in its
		// back-forward cache must not keep it: a browser allows six
		// connections to a server, and a few pages visited would block the
		// next one.
		for _, p := range []string{"/ui/", "/ui/clusters/seed", "/ui/findings", "/ui/clusters/seed/nodes/test", "/ui/map", "/ui/clusters/seed", "/ui/findings"} {
			if err := b.Do(30*time.Second, chromedp.Navigate(s.ui+p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Do(30*time.Second, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		port := s.ui[strings.LastIndex(s.ui, ":")+1:]
		err := harness.Eventually(10*time.Second, 250*time.Millisecond, func() error {
			out, err := exec.Command("ss", "-tnH", "state", "established", "( sport = :"+port+" )").Output()
			if err != nil {
				return err
			}
			if n := strings.Count(string(out), "\n"); n > 2 {
				return fmt.Errorf("%d connections to the web view stay open after its pages were left", n)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}
