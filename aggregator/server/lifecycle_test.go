package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/aggregator/kube"
	"github.com/kubeatlas/kubeatlas/aggregator/query"
	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

func TestStreamEndsWhenItsCertificateExpires(t *testing.T) {
	agg, p := startTLS(t)
	// A certificate that expires two seconds from now.
	short, err := p.ca.Issue(auth.AgentSubject("c1", "n1"), false, nil, time.Now().Add(-time.Minute), time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, agg, p, short, "")
	st, err := v1.NewAgentServiceClient(conn).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: "c1", NodeName: "n1"}}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("stream ended with %v, want Unauthenticated naming the expiry", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the stream outlived its certificate by %v", d)
	}
}

func TestGracefulStopEndsStreamsAtOnce(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agg, err := New(Config{Listener: lis, ShutdownGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	conn, err := grpc.NewClient(agg.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := v1.NewAgentServiceClient(conn).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{Identity: &v1.NodeIdentity{Cluster: "c1", NodeName: "n1"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	w, err := v1.NewInventoryServiceClient(conn).Watch(context.Background(), &v1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil { // SYNCED
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waits for streams to end")
	}
	t.Logf("stopped in %v with an agent stream and a watch open", time.Since(start).Round(time.Millisecond))
	for _, recv := range []func() error{func() error { _, err := st.Recv(); return err }, func() error { _, err := w.Recv(); return err }} {
		if err := recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("stream ended with %v, want Unavailable", err)
		}
	}
}

func TestReadyOnlyOnceSourcesSynced(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A source whose API server does not answer never syncs.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	dead.Close()
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+addr+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := kube.ParseSource("c=" + kc)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := New(Config{Listener: lis, MetricsAddr: "127.0.0.1:0", Kube: []kube.Source{src}, ShutdownGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var resp *http.Response
	for i := 0; i < 50; i++ {
		if resp, err = http.Get("http://" + agg.MetricsAddr() + "/readyz"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "0 of 1") {
		t.Fatalf("/readyz: %d %q, want 503 while the source has not synced", resp.StatusCode, body)
	}
	if agg.Ready() {
		t.Fatal("ready before the source synced")
	}
}

// A fleet view's watchers and bucket watch share one backlog; an
// aggregator's watchers have none.
func TestFleetViewWatchersYieldToItsIngest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		view        *fleet.View
		ingestFirst time.Duration
		want        time.Duration
	}{
		{"aggregator", nil, 0, query.DefaultIngestFirst},
		{"fleet view", &fleet.View{}, 0, query.DefaultIngestFirst},
		{"fleet view, 2s", &fleet.View{}, 2 * time.Second, 2 * time.Second},
		{"fleet view, never", &fleet.View{}, -1, 0},
	} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		agg, err := New(Config{Listener: lis, FleetView: tc.view, WatchIngestFirst: tc.ingestFirst})
		if err != nil {
			t.Fatal(err)
		}
		if tc.view == nil {
			if agg.query.Backlog != nil {
				t.Errorf("%s: watchers wait on a backlog", tc.name)
			}
		} else if tc.view.Backlog == nil || agg.query.Backlog != tc.view.Backlog {
			t.Errorf("%s: the watchers' backlog %p is not the view's %p", tc.name, agg.query.Backlog, tc.view.Backlog)
		}
		if agg.query.IngestFirst != tc.want {
			t.Errorf("%s: IngestFirst %v, want %v", tc.name, agg.query.IngestFirst, tc.want)
		}
		agg.close()
	}
}
