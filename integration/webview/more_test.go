package webview

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/server"
	"github.com/kubeatlas/kubeatlas/integration/harness"
	"github.com/kubeatlas/kubeatlas/integration/load"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/tlsfiles"
)

// TestSignIn: behind TLS, a browser without credentials gets the sign-in
// form and nothing the aggregator holds; with the token it gets the fleet;
// a wrong token is refused.
func TestSignIn(t *testing.T) {
	dir := t.TempDir()
	ca, err := auth.NewCA("kubeatlas-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	srv, err := ca.Issue(pkix.Name{CommonName: "kubeatlas-aggregator"}, true, []string{"127.0.0.1"}, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePEM(dir, "server", srv.Cert, srv.Key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := tlsfiles.Load(tlsfiles.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key")})
	if err != nil {
		t.Fatal(err)
	}
	const token = "web-view-token"
	agg := harness.RunAggregator(t, server.Config{
		Creds: src.ServerCredentials(), UIAddr: "127.0.0.1:0", UITLS: src.HTTPServerConfig(),
		Auth: auth.Policy{Enforce: true, Tokens: []string{token}}, Bundles: []string{seedDir},
	})
	if !strings.HasPrefix(agg.UIURL(), "https://") {
		t.Fatalf("a TLS aggregator serves its web view at %s", agg.UIURL())
	}
	b := NewBrowser(t)
	signin := func(what string) {
		t.Helper()
		if err := b.Do(30*time.Second, chromedp.WaitVisible(chromedp.CSS(`body[data-view="signin"] #token`))); err != nil {
			t.Fatalf("%s: no sign-in form: %v", what, err)
		}
		text, _ := Eval[string](b, `document.body.innerText`)
		for _, secret := range []string{"seed", "zzk-", "kube-apiserver", "static"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s: the page shows %q without credentials:\n%s", what, secret, text)
			}
		}
	}
	if err := b.Open(agg.UIURL() + "clusters/seed"); err != nil {
		t.Fatal(err)
	}
	signin("no credentials")
	b.Screenshot("sign-in")
	if err := b.Do(30*time.Second, chromedp.SendKeys(chromedp.CSS("#token"), "wrong"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	err = harness.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		text, _ := Eval[string](b, `document.body.dataset.view + ' ' + document.body.innerText`)
		if !strings.HasPrefix(text, "signin") || !strings.Contains(text, "refused this token") {
			return fmt.Errorf("page: %.200s", text)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a wrong token: %v", err)
	}
	signin("a wrong token")
	if err := b.Do(30*time.Second, chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	checkSeedMap(t, b, "with the token")
	b.Screenshot("signed-in")
	// The API itself refuses a client without credentials, whatever the page does.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", strings.TrimSuffix(agg.UIURL(), "/ui/")+"/kubeatlas.v1.InventoryService/ListComponents", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ListComponents without credentials: %d", resp.StatusCode)
	}
}

// TestOfflineBundles: `kubeatlas --bundle DIR ui` and `kubeatlas demo --ui`
// serve the same page from bundles.
func TestOfflineBundles(t *testing.T) {
	bins := harness.Build(t)
	b := NewBrowser(t)
	for _, c := range []struct {
		name string
		args func(addr string) []string
	}{
		{"ui", func(addr string) []string { return []string{"--bundle", seedDir, "ui", "--listen", addr} }},
		{"demo", func(addr string) []string { return []string{"demo", "--ui", addr} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
			p := harness.StartProcess(t, t.TempDir(), "kubeatlas-"+c.name, bins.CLI, c.args(addr)...)
			err := harness.Eventually(30*time.Second, 100*time.Millisecond, func() error {
				if p.Exited() {
					return fmt.Errorf("kubeatlas %s exited:\n%s", c.name, harness.Tail(p.Log, 20))
				}
				resp, err := http.Get("http://" + addr + "/ui/")
				if err != nil {
					return err
				}
				resp.Body.Close()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Open("http://" + addr + "/ui/clusters/seed"); err != nil {
				t.Fatal(err)
			}
			checkSeedMap(t, b, "kubeatlas "+c.name)
			b.Screenshot(c.name)
			p.Stop()
		})
	}
}

// TestFleetMapRender measures the map of a 1,000-node, 10-cluster fleet:
// how long headless Chromium takes to draw it and how many bytes it
// transfers, and, on the same data, how long the table CLI takes. The
// numbers are logged (BENCHMARKS.md records them); only the transfer
// budget, which is no timing, is checked.
func TestFleetMapRender(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 1,000-node fleet in -short mode")
	}
	bins := harness.Build(t)
	uiAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	agg := harness.StartAggregator(t, bins, "--ui-addr", uiAddr, "--stale-after", "1000")
	const clusters, nodes = 10, 1000
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := load.Run(ctx, load.Config{Server: agg.Addr, Clusters: clusters, Nodes: nodes, Processes: 300,
			Interval: 10 * time.Second, Steady: 10 * time.Minute, Conns: 8})
		done <- err
	}()
	t.Cleanup(func() { cancel(); <-done })
	err := harness.Eventually(3*time.Minute, 500*time.Millisecond, func() error {
		select {
		case err := <-done:
			return fmt.Errorf("the load stopped: %v", err)
		default:
		}
		resp, err := agg.Client.ListClusters(context.Background(), &v1.ListClustersRequest{})
		if err != nil {
			return err
		}
		reporting := 0
		for _, c := range resp.Clusters {
			reporting += int(c.ReportingNodeCount)
		}
		if len(resp.Clusters) != clusters || reporting != nodes {
			return fmt.Errorf("%d clusters, %d nodes reporting", len(resp.Clusters), reporting)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var instances int
	for tok := ""; ; {
		resp, err := agg.Client.ListComponents(context.Background(), &v1.ListComponentsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		instances += len(resp.Components)
		if tok = resp.NextPageToken; tok == "" {
			break
		}
	}
	b := NewBrowser(t)
	// Each run is a fresh navigation with an empty cache.
	for i := range 3 {
		if err := b.Open("about:blank"); err != nil {
			t.Fatal(err)
		}
		if err := b.ClearCache(); err != nil {
			t.Fatal(err)
		}
		b.ResetTransfer()
		start := time.Now()
		if err := b.Do(60*time.Second, chromedp.Navigate("http://"+uiAddr+"/ui/map")); err != nil {
			t.Fatal(err)
		}
		ms, err := b.WaitReady("map", 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wall := time.Since(start)
		bytes, reqs := b.Transfer()
		marks, _ := Eval[string](b, `document.body.dataset.marks`)
		cols, _ := Eval[int](b, `document.querySelectorAll('table.map th.node').length`)
		cells, _ := Eval[int](b, `document.querySelectorAll('td[data-cell]').length`)
		t.Logf("BENCH fleet map run %d: drawn %d ms after navigation start (%v wall from Navigate); %d bytes in %d requests; %d node columns, %d cells, %d instances; page marks (ms) %s",
			i+1, ms, wall.Round(time.Millisecond), bytes, reqs, cols, cells, instances, marks)
		if cols != nodes {
			t.Errorf("the map has %d node columns, want %d", cols, nodes)
		}
		if bytes > 1<<20 {
			t.Errorf("the map transferred %d bytes, over 1 MiB", bytes)
		}
		if i == 0 {
			b.Screenshot("fleet-map")
		}
	}
	// The same data as a table, from the CLI.
	for i := range 3 {
		start := time.Now()
		out, err := exec.Command(bins.CLI, "--server", agg.Addr, "--insecure", "get", "components").Output()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("BENCH table CLI run %d: kubeatlas get components took %v for %d lines", i+1, time.Since(start).Round(time.Millisecond), strings.Count(string(out), "\n"))
	}
}
