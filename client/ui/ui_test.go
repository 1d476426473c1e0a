package ui_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/bundle"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/client/ui"
	seedcluster "github.com/kubeatlas/kubeatlas/examples/seed-cluster"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// seedServer is a gRPC server of the reference cluster's bundle, with the
// query authorization of policy.
func seedServer(t *testing.T, policy auth.Policy) *grpc.Server {
	t.Helper()
	store, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.LoadFS(apply.New(store, apply.Config{}), seedcluster.FS, "seed"); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(query.Codec{}),
		grpc.UnaryInterceptor(policy.UnaryInterceptor()), grpc.StreamInterceptor(policy.StreamInterceptor()))
	qs := query.NewServer(store)
	v1.RegisterInventoryServiceServer(gs, qs)
	v1.RegisterAgentServiceServer(gs, v1.UnimplementedAgentServiceServer{})
	t.Cleanup(func() { qs.Shutdown(); gs.Stop() })
	return gs
}

func newHandler(t *testing.T, gs *grpc.Server) http.Handler {
	t.Helper()
	h, err := ui.NewHandler(gs)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, method, path string, header map[string]string) *http.Response {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestPage(t *testing.T) {
	h := newHandler(t, seedServer(t, auth.Policy{}))
	index := get(h, "GET", "/ui/", nil)
	body, _ := io.ReadAll(index.Body)
	if index.StatusCode != 200 || !strings.HasPrefix(index.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte(`src="/ui/static/app.js"`)) {
		t.Fatalf("/ui/: %d %s %.80s", index.StatusCode, index.Header.Get("Content-Type"), body)
	}
	for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "ETag"} {
		if index.Header.Get(hdr) == "" {
			t.Errorf("/ui/ lacks %s", hdr)
		}
	}
	if csp := index.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// Every URL the page names is the page: links can be shared.
	for _, p := range []string{"/ui/map", "/ui/clusters/seed", "/ui/clusters/seed/nodes/zzk-1", "/ui/clusters/seed/nodes/test/components/etcd", "/ui/findings?cluster=seed"} {
		r := get(h, "GET", p, nil)
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || !bytes.Equal(b, body) {
			t.Errorf("%s: %d, not the page", p, r.StatusCode)
		}
	}
	for p, want := range map[string]string{"/ui/static/app.js": "javascript", "/ui/static/api.js": "javascript", "/ui/static/style.css": "text/css", "/ui/static/words.json": "application/json"} {
		r := get(h, "GET", p, nil)
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Type"), want) {
			t.Errorf("%s: %d %s", p, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/ui/static/missing.js", 404},
		{"POST", "/ui/", 405},
		{"GET", "/", 302},
		{"GET", "/elsewhere", 404},
	}
	for _, c := range cases {
		if r := get(h, c.method, c.path, nil); r.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.StatusCode, c.status)
		}
	}
	// Revalidation costs a 304; gzip is served to who asks for it.
	if r := get(h, "GET", "/ui/static/app.js", map[string]string{"If-None-Match": get(h, "GET", "/ui/static/app.js", nil).Header.Get("ETag")}); r.StatusCode != 304 {
		t.Errorf("revalidating app.js: %d", r.StatusCode)
	}
	plain, _ := io.ReadAll(get(h, "GET", "/ui/static/app.js", nil).Body)
	gz := get(h, "GET", "/ui/static/app.js", map[string]string{"Accept-Encoding": "gzip, deflate"})
	zr, err := gzip.NewReader(gz.Body)
	if err != nil || gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %v %q", err, gz.Header.Get("Content-Encoding"))
	}
	unzipped, _ := io.ReadAll(zr)
	if !bytes.Equal(unzipped, plain) {
		t.Error("gzipped app.js differs from app.js")
	}
}

func TestWords(t *testing.T) {
	var w map[string]any
	r := get(newHandler(t, seedServer(t, auth.Policy{})), "GET", "/ui/static/words.json", nil)
	if err := json.NewDecoder(r.Body).Decode(&w); err != nil {
		t.Fatal(err)
	}
	how := w["how"].(map[string]any)
	if how["DEPLOYMENT_KIND_STATIC_POD"] != "static pod" || how["DEPLOYMENT_KIND_DAEMONSET"] != "DaemonSet" {
		t.Errorf("how: %v", how)
	}
	// Every value of every enum the page shows has its words.
	for key, n := range map[string]int{"how": len(v1.DeploymentKind_name), "mode": len(v1.ClusterMode_name), "severity": len(v1.Severity_name),
		"findingKind": len(v1.FindingKind_name), "agentState": len(v1.AgentState_name), "evidenceKind": len(v1.EvidenceKind_name), "freshness": len(v1.Freshness_name)} {
		m, _ := w[key].(map[string]any)
		if len(m) != n {
			t.Errorf("%s: %d words for %d values", key, len(m), n)
		}
		for k, v := range m {
			if s, _ := v.(string); s == "" {
				t.Errorf("%s %s has no words", key, k)
			}
		}
	}
	if comps, _ := w["components"].([]any); len(comps) != len(v1.Components) {
		t.Errorf("components: %v", w["components"])
	}
}

// connect makes one Connect-protocol unary call with JSON.
func connect(h http.Handler, method, body string, header map[string]string) *http.Response {
	r := httptest.NewRequest("POST", ui.APIPrefix+method, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connect-Protocol-Version", "1")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestBridge(t *testing.T) {
	h := newHandler(t, seedServer(t, auth.Policy{}))
	resp := connect(h, "ListClusters", `{}`, nil)
	var lc struct {
		Clusters []struct{ Name, Mode string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&lc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ListClusters: %d %v", resp.StatusCode, err)
	}
	if len(lc.Clusters) != 1 || lc.Clusters[0].Name != "seed" || lc.Clusters[0].Mode != "CLUSTER_MODE_STATIC_POD" {
		t.Errorf("clusters: %+v", lc.Clusters)
	}
	// Answers are gzipped for clients that accept it, and only for them.
	full := connect(h, "ListComponents", `{"view":"COMPONENT_VIEW_FULL"}`, nil)
	plain, _ := io.ReadAll(full.Body)
	zipped := connect(h, "ListComponents", `{"view":"COMPONENT_VIEW_FULL"}`, map[string]string{"Accept-Encoding": "gzip"})
	zbody, _ := io.ReadAll(zipped.Body)
	if zipped.Header.Get("Content-Encoding") != "gzip" || len(zbody)*4 > len(plain) {
		t.Errorf("gzip: %q, %d bytes for %d", zipped.Header.Get("Content-Encoding"), len(zbody), len(plain))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, plain) {
		t.Error("the gzipped answer differs")
	}
	// A request error keeps its code.
	bad := connect(h, "ListFindings", `{"filter":"finding.nod == 1"}`, nil)
	var e struct{ Code, Message string }
	_ = json.NewDecoder(bad.Body).Decode(&e)
	if bad.StatusCode != 400 || e.Code != "invalid_argument" {
		t.Errorf("bad filter: %d %+v", bad.StatusCode, e)
	}
	// Only the InventoryService is bridged.
	for _, p := range []string{"/kubeatlas.v1.AgentService/Connect", "/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		r := httptest.NewRequest("POST", p, strings.NewReader(`{}`))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 404 {
			t.Errorf("%s: %d, want 404", p, w.Code)
		}
	}
}

// envelopes reads Connect stream envelopes until the end-of-stream one.
func envelopes(t *testing.T, r io.Reader, each func(flags byte, msg []byte) bool) {
	t.Helper()
	br := bufio.NewReader(r)
	for {
		var head [5]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("reading an envelope: %v", err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(br, msg); err != nil {
			t.Fatal(err)
		}
		if !each(head[0], msg) || head[0]&2 != 0 {
			return
		}
	}
}

func TestWatchStream(t *testing.T) {
	srv := httptest.NewServer(newHandler(t, seedServer(t, auth.Policy{})))
	defer srv.Close()
	req := []byte(`{"maxBatch":500,"view":"COMPONENT_VIEW_BASIC"}`)
	body := append([]byte{0, 0, 0, 0, 0}, req...)
	binary.BigEndian.PutUint32(body[1:], uint32(len(req)))
	hr, _ := http.NewRequest("POST", srv.URL+ui.APIPrefix+"Watch", bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/connect+json")
	// Go's client asks for gzip and undoes it, as browsers do.
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Uncompressed {
		t.Fatalf("Watch: %d, gzipped %v", resp.StatusCode, resp.Uncompressed)
	}
	added, synced := 0, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		envelopes(t, resp.Body, func(flags byte, msg []byte) bool {
			var ev struct {
				Type  string
				Batch []struct{ Type string }
			}
			if err := json.Unmarshal(msg, &ev); err != nil {
				t.Errorf("event %q: %v", msg, err)
				return false
			}
			for _, b := range ev.Batch {
				if b.Type == "WATCH_EVENT_TYPE_ADDED" {
					added++
				}
			}
			synced = ev.Type == "WATCH_EVENT_TYPE_SYNCED"
			return !synced
		})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no SYNCED within 30s: the stream is not flushed message by message")
	}
	lc := connect(newHandler(t, seedServer(t, auth.Policy{})), "ListComponents", `{}`, nil)
	var comps struct{ Components []json.RawMessage }
	_ = json.NewDecoder(lc.Body).Decode(&comps)
	lf := connect(newHandler(t, seedServer(t, auth.Policy{})), "ListFindings", `{}`, nil)
	var finds struct{ Findings []json.RawMessage }
	_ = json.NewDecoder(lf.Body).Decode(&finds)
	if !synced || added != len(comps.Components)+len(finds.Findings) {
		t.Errorf("the stream gave %d ADDED (synced %v); the state holds %d components and %d findings", added, synced, len(comps.Components), len(finds.Findings))
	}
}

// TestAuth: behind TLS, the page's calls meet the same policy as gRPC
// clients': a query client's certificate or a token, nothing else.
func TestAuth(t *testing.T) {
	ca, err := auth.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(subject pkix.Name, server bool, hosts []string) tls.Certificate {
		is, err := ca.Issue(subject, server, hosts, now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key}
	}
	server := issue(pkix.Name{CommonName: "server"}, true, []string{"127.0.0.1"})
	client := issue(auth.ClientSubject("ops"), false, nil)
	agent := issue(auth.AgentSubject("seed", "zzk-1"), false, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	srv := httptest.NewUnstartedServer(newHandler(t, seedServer(t, auth.Policy{Enforce: true, Tokens: []string{"s3cret"}})))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()
	call := func(cert *tls.Certificate, token string) (int, string) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", srv.URL+ui.APIPrefix+"ListClusters", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name   string
		cert   *tls.Certificate
		token  string
		status int
		has    string
	}{
		{"nothing", nil, "", 401, "unauthenticated"},
		{"a wrong token", nil, "guess", 401, "unknown bearer token"},
		{"the token", nil, "s3cret", 200, `"seed"`},
		{"a query client's certificate", &client, "", 200, `"seed"`},
		{"an agent's certificate", &agent, "", 403, "permission_denied"},
	}
	for _, c := range cases {
		status, body := call(c.cert, c.token)
		if status != c.status || !strings.Contains(body, c.has) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, status, body, c.status, c.has)
		}
		if c.status != 200 && strings.Contains(body, "seed") {
			t.Errorf("%s: the refusal tells what the server holds: %s", c.name, body)
		}
	}
}

// A request body over the bound is refused before anything is buffered or
// asked, with or without its length declared; the server answers on.
func TestRequestBound(t *testing.T) {
	srv := httptest.NewServer(newHandler(t, seedServer(t, auth.Policy{})))
	defer srv.Close()
	// Valid JSON, an answer without the bound: blanks make it 2 MiB.
	big := `{"cluster":"seed"` + strings.Repeat(" ", 2<<20) + `}`
	for _, declared := range []bool{true, false} {
		var body io.Reader = strings.NewReader(big)
		if !declared {
			body = io.MultiReader(strings.NewReader(big)) // no length: chunked
		}
		req, _ := http.NewRequest("POST", srv.URL+ui.APIPrefix+"ListFindings", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("declared %v: %v", declared, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode == http.StatusInternalServerError {
			t.Errorf("a 2 MiB request (length declared %v): %d", declared, resp.StatusCode)
		}
	}
	if r := connect(newHandler(t, seedServer(t, auth.Policy{})), "ListClusters", `{}`, nil); r.StatusCode != 200 {
		t.Errorf("after the refusals: %d", r.StatusCode)
	}
}
